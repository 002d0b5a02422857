#!/usr/bin/env bash
# GRE tunnels end to end, with the real daemons: an eyeball sends to a
# customer address, the metal steers it into the customer namespace, the
# namespace routes it into its tunnels, and origin routers (BPF GRE played by
# gre_lab_loader with the endpoints swapped) decapsulate it for origin
# servers that answer the eyeball directly (direct server return).
#
#   mtx-tt-eye --\                     /-- mtx-tt-o1 (198.18.21.2) -- mtx-tt-s1
#                 mtx-tt-up (router) -+                                 203.0.113.10
#                     |                \-- mtx-tt-o2 (198.18.22.2) -- mtx-tt-s2
#                 mtx-tt (metal: mt-fastpath, mt-agent)                203.0.113.10
#                     |                                               203.0.113.140
#                 mttt-acme   gre1 -> o1, gre2 -> o2 (203.0.113.0/25)
#                 mttt-globex gre1 -> o2, key 7      (203.0.113.128/25)
#
# Checks: the wire format of what leaves the metal (scapy: standard GRE,
# key, valid outer and inner checksums), ECMP by weight (1:3) with flows
# kept on one tunnel, a priority change moving traffic, anti-spoofing drops
# counted by reason, ICMP fragmentation-needed from a routable source,
# fragmentation and reassembly, the MSS clamp, and that adding and removing
# a tunnel and deleting the customers leave nothing behind. Prints ok:/FAIL:
# lines; exit 1 on any failure, 77 when not root or tools are missing.
#
# MT_TT_FAKE_EDGE=1 builds the customer side by hand (gre_lab_loader, ip,
# nft: what mt is expected to build) instead of running mt, and skips the
# checks that need mt: for telling a test problem from a product problem.
T_HERE=$(cd "$(dirname "$0")" && pwd)
. "$T_HERE/lib.sh"
. "$T_HERE/lib_checks.sh"

PY=/usr/bin/python3 # Debian's python3-scapy imports only there
for tool in tcpdump curl bpftool ethtool; do
	if ! command -v "$tool" >/dev/null; then
		echo "SKIP: $tool not installed (deploy/install-deps.sh)"
		exit 77
	fi
done
if ! "$PY" -c 'import scapy.all' 2>/dev/null; then
	echo "SKIP: python3-scapy not installed (deploy/install-deps.sh)"
	exit 77
fi
LOADER="$MT_BUILD/tests/bpf/gre_lab_loader"
TRAFFIC="$T_HERE/tunnel_traffic.py"
WIRE_CHECK="$T_HERE/../bpf/gre_wire_check.py"
FAKE=${MT_TT_FAKE_EDGE:-0}

mt_test_init tt
. "$T_HERE/lib_lab.sh"
set +e # every step is checked; a failing check must not end the test
UP=$T_UP # the internet router
EYE=mtx-tt-eye
O1=mtx-tt-o1
O2=mtx-tt-o2
S1=mtx-tt-s1
S2=mtx-tt-s2
ACME=${T_PREFIX}acme
GLOBEX=${T_PREFIX}globex
PINS="$MT_RUN_DIR/bpf" # mt-fastpath's bpffs (lib.sh unmounts it)

# the origin side's BPF GRE, and a reader of mt's own maps
L() { "$LOADER" --pin-root "$PINS" --instance origin "$@"; }
LE() { "$LOADER" --pin-root "$PINS" --instance edge "$@"; } # fake edge
Lmt() { "$LOADER" --pin-root "$PINS" --instance "$T_INST" "$@"; }

# ---- topology -----------------------------------------------------------
for ns in "$EYE" "$O1" "$O2" "$S1" "$S2"; do
	setup ip netns add "$ns"
	setup ip -n "$ns" link set lo up
done
link "$UP" to-eye 198.18.11.1/24 "$EYE" eth0 198.18.11.2/24
link "$UP" to-o1 198.18.21.1/24 "$O1" eth0 198.18.21.2/24
link "$UP" to-o2 198.18.22.1/24 "$O2" eth0 198.18.22.2/24
link "$O1" srv0 198.18.31.1/24 "$S1" eth0 198.18.31.2/24
link "$O2" srv0 198.18.32.1/24 "$S2" eth0 198.18.32.2/24
setup ip -n "$S1" addr add 203.0.113.10/32 dev eth0
setup ip -n "$S2" addr add 203.0.113.10/32 dev eth0
setup ip -n "$S2" addr add 203.0.113.140/32 dev eth0
setup ip -n "$EYE" route add default via 198.18.11.1
setup ip -n "$O1" route add default via 198.18.21.1
setup ip -n "$O2" route add default via 198.18.22.1
setup ip -n "$S1" route add default via 198.18.31.1
setup ip -n "$S2" route add default via 198.18.32.1
setup ip -n "$O1" route add 203.0.113.10/32 via 198.18.31.2
setup ip -n "$O2" route add 203.0.113.10/32 via 198.18.32.2
setup ip -n "$O2" route add 203.0.113.140/32 via 198.18.32.2
# What BGP would do: the customer prefixes and endpoints go to the metal.
setup ip -n "$UP" route add 203.0.113.0/24 via 198.18.0.2
setup ip -n "$UP" route add 192.0.2.0/24 via 198.18.0.2
# Direct server return: replies from 203.0.113.x enter the internet router
# from the origins although it routes 203.0.113.0/24 to the metal.
for ns in "$UP" "$O1" "$O2"; do
	setup in_ns "$ns" sysctl -qw net.ipv4.ip_forward=1
	setup in_ns "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0
done
# The metal's uplink is a veth standing in for a NIC: mt's GRE path keeps
# offloads on and hands it GSO packets with partial inner checksums, which
# a NIC segments and checksums; with tx offload off the veth does that in
# software (bpf/mt_gre.bpf.c, "Offloads"). The origin routers' uplinks too
# (origin_tunnel: attaching their decap turns it on).
setup in_ns "$T_METAL" ethtool -K uplink tx off

# ---- the origin routers: BPF GRE with the endpoints swapped --------------
origin_tunnel() { # NS NAME LOCAL REMOTE INNER [key=K]
	local ns=$1 name=$2 local=$3 remote=$4 inner=$5
	shift 5
	setup L up "$ns" "$name" "$local" "$remote" uplink=eth0 "$@"
	setup in_ns "$ns" ethtool -K eth0 tx off
	setup ip -n "$ns" addr add "$inner" dev "$name"
	setup in_ns "$ns" sysctl -qw "net.ipv4.conf.$name.rp_filter=0"
	# reply-style health probes come from the router's own inner address
	setup in_ns "$ns" sysctl -qw "net.ipv4.conf.$name.accept_local=1"
}
origin_tunnel "$O1" rgre1 198.18.21.2 192.0.2.1 10.1.1.1/31
origin_tunnel "$O2" rgre2 198.18.22.2 192.0.2.1 10.1.2.1/31
origin_tunnel "$O2" rgx 198.18.22.2 192.0.2.2 10.2.1.1/31 key=7

# ---- origin servers ----------------------------------------------------
# http.server's server_bind does a reverse DNS lookup that hangs in a
# namespace without DNS: skip it.
for s in 1 2; do
	mkdir -p "$T_DIR/www$s"
	echo "origin server srv$s" >"$T_DIR/www$s/index.html"
	head -c 1000000 /dev/urandom >"$T_DIR/www$s/blob"
	ns=mtx-tt-s$s
	# (background processes: nsenter directly, so that $! is the process)
	nsenter --net="/run/netns/$ns" "$PY" -c '
import functools, http.server, socketserver, sys
class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "srv", self.server_address[1]
handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                            directory=sys.argv[1])
Server(("0.0.0.0", 8080), handler).serve_forever()
' "$T_DIR/www$s" >"$T_DIR/http$s.log" 2>&1 &
	BG+=($!)
	: >"$T_DIR/sink$s"
	nsenter --net="/run/netns/$ns" "$PY" "$TRAFFIC" udp_sink 0.0.0.0 5001 "$T_DIR/sink$s" \
		>"$T_DIR/sink$s.log" 2>&1 &
	BG+=($!)
done

# ---- the customers ------------------------------------------------------
# acme_json PRIO1 PRIO2 [gre3]: acme with gre1 (-> o1, weight 1) and gre2
# (-> o2, weight 3) for 203.0.113.0/25 at the given priorities; "gre3" adds
# a third tunnel (-> o1's second address) for 203.0.113.64/26.
acme_json() {
	"$PY" - "$@" <<'PY'
import json, sys
p1, p2 = int(sys.argv[1]), int(sys.argv[2])
c = {"id": 1, "name": "acme", "prefixes": ["203.0.113.0/25"],
     "tunnelEndpoints": ["192.0.2.1"],
     "tunnels": [
         {"name": "gre1", "edgeEndpoint": "192.0.2.1",
          "routerEndpoint": "198.18.21.2", "innerAddress": "10.1.1.0/31"},
         {"name": "gre2", "edgeEndpoint": "192.0.2.1",
          "routerEndpoint": "198.18.22.2", "innerAddress": "10.1.2.0/31"}],
     "routes": [
         {"prefix": "203.0.113.0/25", "tunnel": "gre1", "priority": p1,
          "weight": 1},
         {"prefix": "203.0.113.0/25", "tunnel": "gre2", "priority": p2,
          "weight": 3}]}
if sys.argv[3:] == ["gre3"]:
    c["tunnels"].append({"name": "gre3", "edgeEndpoint": "192.0.2.1",
                         "routerEndpoint": "198.18.21.3",
                         "innerAddress": "10.1.3.0/31", "mss": 1300})
    c["routes"].append({"prefix": "203.0.113.64/26", "tunnel": "gre3",
                        "priority": 10, "weight": 1})
print(json.dumps(c))
PY
}
cat >"$T_DIR/globex.json" <<'JSON'
{"id": 2, "name": "globex", "prefixes": ["203.0.113.128/25"],
 "tunnelEndpoints": ["192.0.2.2"],
 "tunnels": [{"name": "gre1", "edgeEndpoint": "192.0.2.2",
              "routerEndpoint": "198.18.22.2", "innerAddress": "10.2.1.0/31",
              "key": 7}],
 "routes": [{"prefix": "203.0.113.128/25", "tunnel": "gre1",
             "priority": 100, "weight": 1}]}
JSON

# ---- fake edge (MT_TT_FAKE_EDGE=1): what mt is expected to build ----------
fake_customer() { # NAME ID ENDPOINT PREFIX
	local ns=$T_PREFIX$1 id=$2 ep=$3 prefix=$4
	local m="169.254.0.$((2 * id))" c="169.254.0.$((2 * id + 1))"
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip -n "$T_METAL" link add "$ns" type veth peer name metal0 netns "$ns"
	ip -n "$T_METAL" addr add "$m/31" dev "$ns"
	ip -n "$ns" addr add "$c/31" dev metal0
	ip -n "$ns" addr add "$ep/32" dev lo
	ip -n "$T_METAL" link set "$ns" up
	ip -n "$ns" link set metal0 up
	ip -n "$ns" route add default via "$m" src "$ep"
	ip -n "$T_METAL" route add "$ep/32" via "$c"
	ip -n "$T_METAL" route add "$prefix" via "$c"
	in_ns "$ns" sysctl -qw net.ipv4.ip_forward=1
	in_ns "$ns" sysctl -qw net.ipv4.fib_multipath_hash_policy=1
	in_ns "$ns" nft -f - <<-NFT
	table inet mtfake {
		chain mss {
			type filter hook forward priority mangle;
			oifname "gre*" tcp flags syn tcp option maxseg size > 1436 tcp option maxseg size set 1436
		}
	}
	NFT
}
fake_tunnel() { # CUSTOMER NAME LOCAL REMOTE INNER [key=K]
	local ns=$T_PREFIX$1 name=$2 local=$3 remote=$4 inner=$5
	shift 5
	LE up "$ns" "$name" "$local" "$remote" "$@"
	ip -n "$ns" addr replace "$inner" dev "$name"
}
fake_acme() { # PRIO1 PRIO2 [gre3]: acme_json done by hand
	local ns=$ACME
	if ! ip netns list | grep -q "^$ns\b"; then
		fake_customer acme 1 192.0.2.1 203.0.113.0/25
		fake_tunnel acme gre1 192.0.2.1 198.18.21.2 10.1.1.0/31
		fake_tunnel acme gre2 192.0.2.1 198.18.22.2 10.1.2.0/31
	fi
	ip -n "$ns" route flush 203.0.113.0/25 2>/dev/null
	if [ "$1" -eq "$2" ]; then
		ip -n "$ns" route add 203.0.113.0/25 metric "$1" \
			nexthop via 10.1.1.1 dev gre1 weight 1 \
			nexthop via 10.1.2.1 dev gre2 weight 3
	else
		ip -n "$ns" route add 203.0.113.0/25 metric "$1" via 10.1.1.1 dev gre1
		ip -n "$ns" route add 203.0.113.0/25 metric "$2" via 10.1.2.1 dev gre2
	fi
	if [ "${3:-}" = gre3 ]; then
		fake_tunnel acme gre3 192.0.2.1 198.18.21.3 10.1.3.0/31
		ip -n "$ns" route replace 203.0.113.64/26 via 10.1.3.1 dev gre3
		in_ns "$ns" nft -f - <<-NFT
		table inet mtfake3 {
			chain mss {
				type filter hook forward priority mangle - 1;
				oifname "gre3" tcp flags syn tcp option maxseg size > 1300 tcp option maxseg size set 1300
			}
		}
		NFT
	else
		LE down "$ns" gre3
		in_ns "$ns" nft delete table inet mtfake3 2>/dev/null
	fi
}
fake_globex() {
	fake_customer globex 2 192.0.2.2 203.0.113.128/25
	fake_tunnel globex gre1 192.0.2.2 198.18.22.2 10.2.1.0/31 key=7
	ip -n "$GLOBEX" route add 203.0.113.128/25 via 10.2.1.1 dev gre1
}

# ---- mt (or the fake) ---------------------------------------------------
if [ "$FAKE" = 1 ]; then
	echo "MT_TT_FAKE_EDGE=1: the customer side is built by hand, not by mt"
	setup in_ns "$T_METAL" sysctl -qw net.ipv4.ip_forward=1
else
	start_daemons || { echo "setup failed: daemons"; exit 1; }
fi

# tunnels_json EXPR: python EXPR over d (mtctl tunnels -o json) and the
# helpers t(customer, name) -> tunnel, n(x) -> int of a proto3 JSON number,
# drop(tunnel, reason) -> count; prints the value.
tunnels_json() {
	mtctl -o json tunnels | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
def t(c, name):
    for x in d.get("tunnels", []):
        if x.get("customer") == c and x.get("name") == name:
            return x
    return {}
def n(x):
    return int(x or 0)
def cnt(c, name, field):
    return n(t(c, name).get("counters", {}).get(field))
def drop(c, name, reason):
    for x in t(c, name).get("counters", {}).get("drops", []):
        if x.get("reason") == reason:
            return n(x.get("packets"))
    return 0
print(eval("(" + sys.argv[1] + ")"))' "$1"
}
# jtest EXPR: tunnels_json EXPR prints True; otherwise shows the JSON
jtest() {
	local out
	out=$(tunnels_json "$1" 2>&1)
	[ "$out" = True ] && return 0
	echo "mtctl -o json tunnels: $(mtctl -o json tunnels 2>&1 | tr -d ' \n' | cut -c1-3000)"
	[ "$out" = False ] || echo "$out"
	return 1
}

# apply_acme PRIO1 PRIO2 [gre3]: puts acme (or builds it by hand) and waits
# until the agent reports it converged.
apply_acme() {
	if [ "$FAKE" = 1 ]; then
		fake_acme "$@"
		return 0
	fi
	acme_json "$@" >"$T_DIR/acme.json"
	mtctl put "$T_DIR/acme.json" >/dev/null && wait_for 20 all_converged
}

# ---- customers up ---------------------------------------------------------
if [ "$FAKE" = 1 ]; then
	fake_acme 100 100
	fake_globex
	skip "mtctl put / converge (fake edge)"
else
	acme_json 100 100 >"$T_DIR/acme.json"
	tcheck "put acme (2 tunnels) and globex (1 tunnel, key)" \
		mtctl put "$T_DIR/acme.json" "$T_DIR/globex.json"
	tcheck "both customers converge" wait_for 20 all_converged
fi
devs_ok=1
for d in "$ACME gre1" "$ACME gre1.t" "$ACME gre2" "$ACME gre2.t" \
	"$GLOBEX gre1" "$GLOBEX gre1.t"; do
	set -- $d
	if ! ip -n "$1" link show "$2" >/dev/null 2>&1; then
		fail "tunnel device $2 in $1 missing"
		devs_ok=0
	fi
done
[ "$devs_ok" = 1 ] && ok "tunnel devices gre1, gre2 (acme) and gre1 (globex) with their wire ends"
if ! ip -n "$ACME" link show gre1 >/dev/null 2>&1; then
	echo "the tunnels are not there: no point in the traffic checks"
	mtctl status
	mtctl tunnels
	exit 1
fi
route=$(ip -n "$ACME" -d route show table all 203.0.113.0/25 2>&1)
echo "acme's route: $(tr '\n' ' ' <<<"$route")"
tcheck "acme's route is multipath gre1 weight 1 + gre2 weight 3" \
	"$PY" -c '
import json, subprocess, sys
rs = json.loads(subprocess.run(["ip", "-n", sys.argv[1], "-j", "route", "show",
    "table", "all", "203.0.113.0/25"], capture_output=True, text=True).stdout)
hops = sorted((h["dev"], h.get("weight", 1)) for r in rs for h in r.get("nexthops", []))
sys.exit(0 if hops == [("gre1", 1), ("gre2", 3)] else 1)' "$ACME"
echo "acme fib_multipath_hash_policy: $(in_ns "$ACME" sysctl -n net.ipv4.fib_multipath_hash_policy)"
if [ "$FAKE" != 1 ]; then
	mtctl tunnels
	tcheck "mtctl tunnels -o json: 3 tunnels, bpf, endpoints, key, mtu/mss defaults" \
		jtest 'len(d.get("tunnels", [])) == 3 and
		t("acme", "gre1").get("driver") == "bpf" and
		t("acme", "gre1").get("edgeEndpoint") == "192.0.2.1" and
		t("acme", "gre1").get("routerEndpoint") == "198.18.21.2" and
		t("acme", "gre2").get("routerEndpoint") == "198.18.22.2" and
		t("globex", "gre1").get("hasKey") is True and
		t("globex", "gre1").get("key") == 7 and
		t("acme", "gre1").get("mtu") == 1476 and
		t("acme", "gre1").get("mss") == 1436 and
		t("globex", "gre1").get("mtu") == 1472'
	tcheck "mtctl tunnels -o json: routes installed at priority 100, weights 1 and 3" \
		jtest '[(r.get("prefix"), r.get("priority"), r.get("effectivePriority"), r.get("weight"), r.get("installed")) for r in t("acme", "gre1").get("routes", [])] == [("203.0.113.0/25", 100, 100, 1, True)] and
		[(r.get("weight"), r.get("installed")) for r in t("acme", "gre2").get("routes", [])] == [(3, True)]'
fi

# ---- captures ----------------------------------------------------------------
# capture_start NAME NS DEV FILTER / capture_stop NAME: tcpdump into
# $T_DIR/NAME.pcap
declare -A CAP
capture_start() {
	local name=$1 ns=$2 dev=$3 filter=$4
	: >"$T_DIR/$name.tcpdump"
	nsenter --net="/run/netns/$ns" tcpdump -i "$dev" --immediate-mode -B 16384 -s 0 -U \
		-w "$T_DIR/$name.pcap" "$filter" 2>"$T_DIR/$name.tcpdump" &
	CAP[$name]=$!
	BG+=($!)
	wait_for 5 grep -q 'listening on' "$T_DIR/$name.tcpdump"
}
capture_stop() {
	sleep 0.5 # let tcpdump drain its ring before the kill
	kill "${CAP[$1]}" 2>/dev/null
	wait "${CAP[$1]}" 2>/dev/null
}

# ---- end to end: a download through the tunnels, answered directly -------
capture_start o1 "$UP" to-o1 'ip proto 47'
capture_start o2 "$UP" to-o2 'ip proto 47 and host 192.0.2.1'
capture_start gx "$UP" to-o2 'ip proto 47 and host 192.0.2.2'
served=""
n_ok=0
for _ in 1 2 3 4 5 6; do
	out=$(in_ns "$EYE" curl -sS -m 5 --retry 3 --retry-connrefused \
		http://203.0.113.10:8080/index.html 2>&1)
	case "$out" in
	"origin server srv"[12]) n_ok=$((n_ok + 1)); served="$served ${out##* }" ;;
	*) echo "curl: $out" ;;
	esac
done
tcheck "6 HTTP requests from the eyeball to 203.0.113.10 answered (by:$served)" \
	test "$n_ok" -eq 6
sum1=$(sha256sum <"$T_DIR/www1/blob" | cut -d' ' -f1)
sum2=$(sha256sum <"$T_DIR/www2/blob" | cut -d' ' -f1)
got=$(in_ns "$EYE" curl -sS -m 20 http://203.0.113.10:8080/blob | sha256sum | cut -d' ' -f1)
tcheck "1 MB download through a tunnel, the answer by direct server return" \
	test "$got" = "$sum1" -o "$got" = "$sum2"
# The answers took the origins' default routes, never the metal.
tcheck "direct server return: no reply traffic crossed the metal" \
	test "$(ip -n "$T_METAL" -s -j link show "$ACME" | "$PY" -c '
import json, sys; print(json.load(sys.stdin)[0]["stats64"]["rx"]["bytes"])')" -lt 500000
in_ns "$EYE" "$PY" "$TRAFFIC" flows 203.0.113.10 9 20 1 40000
in_ns "$EYE" ping -q -c 3 -i 0.1 -W 1 203.0.113.10 >/dev/null 2>&1
out=$(in_ns "$EYE" curl -sS -m 5 http://203.0.113.140:8080/index.html 2>&1)
tcheck "HTTP from the eyeball to globex's 203.0.113.140 through its keyed tunnel" \
	test "$out" = "origin server srv2"
in_ns "$EYE" "$PY" "$TRAFFIC" flows 203.0.113.140 9 10 1 40000
capture_stop o1
capture_stop o2
capture_stop gx

# ---- wire format ----------------------------------------------------------------
wire() { # NAME KEY SRC DST: every packet of NAME.pcap is good GRE SRC>DST
	"$PY" "$WIRE_CHECK" "$T_DIR/$1.pcap" "$2" >"$T_DIR/$1.json" 2>"$T_DIR/$1.bad" &&
		"$PY" - "$T_DIR/$1.json" "$3>$4" <<-'PY'
	import json, sys
	c = json.load(open(sys.argv[1]))
	sys.exit(0 if set(c["directions"]) == {sys.argv[2]} else 1)
	PY
}
wire_check() { # NAME KEY SRC DST DESC
	if wire "$1" "$2" "$3" "$4"; then
		ok "wire format $5: $(cat "$T_DIR/$1.json")"
	else
		fail "wire format $5: $(cat "$T_DIR/$1.json" "$T_DIR/$1.bad" 2>/dev/null | tr '\n' ' ')"
	fi
}
wire_check o1 none 192.0.2.1 198.18.21.2 "acme gre1 (no key)"
wire_check o2 none 192.0.2.1 198.18.22.2 "acme gre2 (no key)"
wire_check gx 7 192.0.2.2 198.18.22.2 "globex gre1 (key 7)"
tcheck "the captures carried TCP, UDP and ICMP inside GRE" "$PY" - \
	"$T_DIR/o1.json" "$T_DIR/o2.json" <<-'PY'
	import json, sys
	c = [json.load(open(f)) for f in sys.argv[1:]]
	s = lambda k: sum(x.get(k, 0) for x in c)
	sys.exit(0 if s("tcp") >= 20 and s("udp") >= 20 and s("icmp") >= 3 else 1)
	PY

# ---- ECMP by weight -----------------------------------------------------------
# ecmp_round NAME NFLOWS PKTS SPORT0: flows from the eyeball, captured on
# the way to each origin router; prints tunnel_traffic.py ecmp's JSON.
ecmp_round() {
	capture_start "$1-o1" "$UP" to-o1 'ip proto 47 and host 192.0.2.1'
	capture_start "$1-o2" "$UP" to-o2 'ip proto 47 and host 192.0.2.1'
	in_ns "$EYE" "$PY" "$TRAFFIC" flows 203.0.113.10 9 "$2" "$3" "$4"
	capture_stop "$1-o1"
	capture_stop "$1-o2"
	"$PY" "$TRAFFIC" ecmp "$4" "$2" 9 "$T_DIR/$1-o1.pcap" "$T_DIR/$1-o2.pcap"
}
if [ "$FAKE" != 1 ]; then
	tx0=$(tunnels_json 'cnt("acme", "gre1", "txPackets"), cnt("acme", "gre2", "txPackets")')
fi
res=$(ecmp_round ecmp 4000 2 20000)
echo "ECMP, 4000 flows x 2 packets, weights 1:3: $res"
tcheck "ECMP: every flow arrived, each on one tunnel only" "$PY" -c '
import json, sys
r = json.loads(sys.argv[1])
sys.exit(0 if r["missing"] == 0 and r["split"] == 0 and sum(r["packets"]) == 8000 else 1)' "$res"
# Within 10% of the weights' shares (1000 and 3000 flows): the standard
# deviation of 1000 is 27 flows for a fair hash, so +-100 is 3.6 of them.
tcheck "ECMP: flows split by weight 1:3 within +-10% (900..1100 on gre1)" "$PY" -c '
import json, sys
r = json.loads(sys.argv[1])
sys.exit(0 if 900 <= r["flows"][0] <= 1100 and 2700 <= r["flows"][1] <= 3300 else 1)' "$res"
if [ "$FAKE" != 1 ]; then
	tx1=$(tunnels_json 'cnt("acme", "gre1", "txPackets"), cnt("acme", "gre2", "txPackets")')
	tcheck "mtctl tunnels counters: txPackets of gre1 and gre2 count the ECMP traffic ($tx0 -> $tx1)" \
		"$PY" -c '
import json, sys
a, b, r = eval(sys.argv[1]), eval(sys.argv[2]), json.loads(sys.argv[3])
d = [b[0] - a[0], b[1] - a[1]]
sys.exit(0 if d[0] >= r["packets"][0] and d[1] >= r["packets"][1] and
         d[0] <= r["packets"][0] + 50 and d[1] <= r["packets"][1] + 50 else 1)' \
		"$tx0" "$tx1" "$res"
fi

# ---- a priority change moves the traffic ---------------------------------------
tcheck "put acme with gre1 at priority 200 (gre2 stays at 100)" apply_acme 200 100
if [ "$FAKE" != 1 ]; then
	tcheck "mtctl tunnels: gre1's route at effective priority 200" \
		jtest '[(r.get("priority"), r.get("effectivePriority")) for r in t("acme", "gre1").get("routes", [])] == [(200, 200)]'
fi
res=$(ecmp_round prio2 100 2 30000)
tcheck "priority 200/100: all 100 flows on gre2 ($res)" "$PY" -c '
import json, sys
r = json.loads(sys.argv[1])
sys.exit(0 if r["flows"] == [0, 100] and r["missing"] == 0 else 1)' "$res"
tcheck "put acme with gre1 at priority 50" apply_acme 50 100
res=$(ecmp_round prio1 100 2 31000)
tcheck "priority 50/100: all 100 flows back on gre1 ($res)" "$PY" -c '
import json, sys
r = json.loads(sys.argv[1])
sys.exit(0 if r["flows"] == [100, 0] and r["missing"] == 0 else 1)' "$res"

# ---- MTU: fragmentation, frag-needed, MSS clamp (all via gre1 now) ---------------
ip -n "$EYE" route flush cache
in_ns "$EYE" "$PY" "$TRAFFIC" nodf 203.0.113.10 5001 1500
wait_for 3 grep -qx 1472 "$T_DIR/sink1"
tcheck "a 1500-byte packet without DF is fragmented for the tunnel and reassembled at the server (got: $(tr '\n' ' ' <"$T_DIR/sink1"))" \
	grep -qx 1472 "$T_DIR/sink1"
res=$(in_ns "$EYE" "$PY" "$TRAFFIC" df 203.0.113.10 5001 1500)
echo "ICMP for a 1500-byte DF packet: $res"
tcheck "a 1500-byte DF packet gets ICMP fragmentation needed, mtu 1476" "$PY" -c '
import json, sys
r = json.loads(sys.argv[1])
sys.exit(0 if (r.get("type"), r.get("code"), r.get("mtu")) == (3, 4, 1476) else 1)' "$res"
tcheck "the ICMP comes from the customer's edge endpoint 192.0.2.1 (routable)" "$PY" -c '
import json, sys
sys.exit(0 if json.loads(sys.argv[1]).get("src") == "192.0.2.1" else 1)' "$res"
wait_for 1 false # a moment: nothing of the DF packet may arrive
tcheck "the DF packet did not reach the server" test "$(grep -cx 1472 "$T_DIR/sink1")" -eq 1

capture_start syn "$S1" eth0 'tcp port 8080 and tcp[tcpflags] & tcp-syn != 0'
in_ns "$EYE" curl -sS -m 5 -o /dev/null http://203.0.113.10:8080/index.html
capture_stop syn
mss=$("$PY" "$TRAFFIC" syn_mss "$T_DIR/syn.pcap")
tcheck "the eyeball's SYN (MSS 1460) arrives at the server clamped to 1436: $mss" \
	test "$mss" = "[1436]"

# ---- anti-spoofing -----------------------------------------------------------------
rxp() { # NS DEV: packets received
	ip -n "$1" -s -j link show "$2" 2>/dev/null | "$PY" -c '
import json, sys; print(json.load(sys.stdin)[0]["stats64"]["rx"]["packets"])'
}
total_drop() { # REASON: drops of every mt tunnel (BPF map totals)
	if [ "$FAKE" = 1 ]; then
		LE drops | awk -v r="$1" '$1 == r { print $2 }'
	else
		Lmt drops | awk -v r="$1" '$1 == r { print $2 }'
	fi
}
tun_drop() { # CUSTOMER TUNNEL REASON: the tunnel's drops, per mtctl
	if [ "$FAKE" = 1 ]; then
		LE drops "$T_PREFIX$1" "$2" | awk -v r="$3" '$1 == r { print $2 }'
	else
		tunnels_json "drop(\"$1\", \"$2\", \"$3\")"
	fi
}
# spoof DESC FROM_NS CASE SRC DST KEY CUSTOMER REASON WHERE: 5 crafted GRE
# packets; CUSTOMER's gre1 must receive none, and REASON count +5 (WHERE
# "total": in the maps' totals, the drop happens before a tunnel matches;
# "tunnel": on CUSTOMER's gre1 in mtctl tunnels).
spoof() {
	local desc=$1 from=$2 case=$3 src=$4 dst=$5 key=$6 cust=$7 reason=$8 where=$9
	local ns=$T_PREFIX$cust d0 d1 r0 r1
	if [ "$where" = total ]; then d0=$(total_drop "$reason"); else d0=$(tun_drop "$cust" gre1 "$reason"); fi
	r0=$(rxp "$ns" gre1)
	in_ns "$from" "$PY" "$TRAFFIC" spoof "$case" "$src" "$dst" "$key" 5 198.18.11.2
	sleep 0.3
	if [ "$where" = total ]; then d1=$(total_drop "$reason"); else d1=$(tun_drop "$cust" gre1 "$reason"); fi
	r1=$(rxp "$ns" gre1)
	if [ $((d1 - d0)) -eq 5 ] && [ "$r1" -eq "$r0" ]; then
		ok "anti-spoofing: $desc: dropped, $reason +5 ($where), nothing on $cust gre1"
	else
		fail "anti-spoofing: $desc: $reason $d0 -> $d1 (want +5, $where), $cust gre1 rx $r0 -> $r1 (want +0)"
	fi
}
r0=$(rxp "$ACME" gre1)
in_ns "$O1" "$PY" "$TRAFFIC" spoof valid 198.18.21.2 192.0.2.1 none 5 198.18.11.2
sleep 0.3
r1=$(rxp "$ACME" gre1)
tcheck "positive control: valid GRE from acme's router arrives on gre1 ($r0 -> $r1)" \
	test $((r1 - r0)) -ge 5
if [ "$FAKE" != 1 ]; then
	rx0=$(tunnels_json 'cnt("acme", "gre1", "rxPackets")')
fi
spoof "wrong outer source for acme" "$O1" valid 198.18.21.99 192.0.2.1 none acme no_tunnel total
spoof "a key on acme's keyless tunnel" "$O1" add_key 198.18.21.2 192.0.2.1 none acme wrong_key tunnel
spoof "wrong key for globex" "$O2" wrong_key 198.18.22.2 192.0.2.2 7 globex wrong_key tunnel
spoof "no key for globex" "$O2" no_key 198.18.22.2 192.0.2.2 7 globex wrong_key tunnel
spoof "acme's router to globex's endpoint" "$O1" valid 198.18.21.2 192.0.2.2 7 globex no_tunnel total
if [ "$FAKE" != 1 ]; then
	rx1=$(tunnels_json 'cnt("acme", "gre1", "rxPackets")')
	tcheck "mtctl tunnels: acme gre1 rxPackets did not count the spoofed packets ($rx0 -> $rx1)" \
		test "$rx0" = "$rx1"
	tcheck "mtctl tunnels -o json: drops listed by reason" \
		jtest 'drop("acme", "gre1", "wrong_key") >= 5 and drop("globex", "gre1", "wrong_key") >= 10'
fi

# ---- add a tunnel, remove it, delete the customers: nothing left -------------------
map_count() { # MAP: entries in one of mt's pinned GRE maps
	local inst=$T_INST
	[ "$FAKE" = 1 ] && inst=edge
	bpftool -j map dump pinned "$PINS/$inst/$1" 2>/dev/null |
		"$PY" -c 'import json, sys; print(len(json.load(sys.stdin)))'
}
rx_has() { # REMOTE: an mt_gre_rx entry with that router endpoint exists
	local inst=$T_INST
	[ "$FAKE" = 1 ] && inst=edge
	bpftool -j map dump pinned "$PINS/$inst/mt_gre_rx" 2>/dev/null | "$PY" -c '
import json, socket, sys
want = socket.inet_aton(sys.argv[1])
for e in json.load(sys.stdin):
    k = e.get("formatted", {}).get("key") or {}
    if k:
        r = k.get("remote")
        if int(r).to_bytes(4, "little") == want:
            sys.exit(0)
    else:
        raw = bytes(int(x, 16) for x in e["key"])
        if raw[8:12] == want:
            sys.exit(0)
sys.exit(1)' "$1"
}
gre3_traces() { # what of gre3 is in acme's namespace (devices, routes, nft)
	ip -n "$ACME" -o link show 2>/dev/null | grep -o 'gre3[^:@]*'
	ip -n "$ACME" route show table all 2>/dev/null | grep gre3
	in_ns "$ACME" nft list ruleset 2>/dev/null | grep gre3
}
n_tx=$(map_count mt_gre_tx)
n_rx=$(map_count mt_gre_rx)
tcheck "mt_gre_tx and mt_gre_rx hold one entry per tunnel (tx $n_tx, rx $n_rx)" \
	test "$n_tx" = 3 -a "$n_rx" = 3
setup ip -n "$O1" addr add 198.18.21.3/24 dev eth0
origin_tunnel "$O1" rgre3 198.18.21.3 192.0.2.1 10.1.3.1/31
tcheck "put acme with a third tunnel gre3 (mss 1300, route 203.0.113.64/26)" \
	apply_acme 50 100 gre3
traces=$(gre3_traces | tr '\n' ' ')
tcheck "gre3 is there: devices, route, MSS clamp ($traces)" "$PY" -c '
import sys
t = sys.argv[1]
sys.exit(0 if "gre3.t" in t and "203.0.113.64/26" in t and "1300" in t else 1)' "$traces"
tcheck "gre3's map entries (tx $(map_count mt_gre_tx), rx for 198.18.21.3)" \
	bash -c '[ "$1" = 4 ] && "$2"' _ "$(map_count mt_gre_tx)" "$(rx_has 198.18.21.3 && echo true || echo false)"
if ip -n "$S1" addr show dev eth0 | grep -q 203.0.113.70 ||
	ip -n "$S1" addr add 203.0.113.70/32 dev eth0; then
	ip -n "$O1" route add 203.0.113.70/32 via 198.18.31.2
	out=$(in_ns "$EYE" curl -sS -m 5 http://203.0.113.70:8080/index.html 2>&1)
	tcheck "traffic to 203.0.113.70 takes gre3 (rgre3 rx $(rxp "$O1" rgre3))" \
		test "$out" = "origin server srv1" -a "$(rxp "$O1" rgre3)" -gt 0
fi
tcheck "put acme without gre3" apply_acme 50 100
traces=$(gre3_traces | tr '\n' ' ')
tcheck "nothing of gre3 left in acme's namespace (devices, routes, nft): '$traces'" \
	test -z "$traces"
n_tx=$(map_count mt_gre_tx)
tcheck "gre3's map entries are gone (tx $n_tx entries, rx for 198.18.21.3)" \
	bash -c '[ "$1" = 3 ] && ! "$2"' _ "$n_tx" "$(rx_has 198.18.21.3 && echo true || echo false)"
out=$(in_ns "$EYE" curl -sS -m 5 http://203.0.113.10:8080/index.html 2>&1)
tcheck "acme still served through gre1 after gre3 went" test "$out" = "origin server srv1"

if [ "$FAKE" = 1 ]; then
	LE down "$ACME" gre1; LE down "$ACME" gre2; LE down "$GLOBEX" gre1
	ip netns del "$ACME"; ip netns del "$GLOBEX"
else
	tcheck "delete acme and globex" mtctl delete acme globex
	tcheck "the deletes converge" wait_for 20 all_converged
fi
wait_for 10 test -z "$(owned_namespaces)"
tcheck "no customer namespaces left ($(owned_namespaces | tr '\n' ' '))" \
	test -z "$(owned_namespaces)"
wait_for 5 test "$(map_count mt_gre_tx)" = 0
tcheck "mt's GRE maps are empty (tx $(map_count mt_gre_tx), rx $(map_count mt_gre_rx), tunnel drops $(map_count mt_gre_tun_drops))" \
	test "$(map_count mt_gre_tx)$(map_count mt_gre_rx)$(map_count mt_gre_tun_drops)" = 000
if [ "$FAKE" != 1 ]; then
	echo '[]' >"$T_DIR/none.json"
	tcheck "nothing of the customers left on the metal (kernel_check.py)" kcheck "$T_DIR/none.json"
	tcheck "mtctl tunnels lists nothing" jtest 'len(d.get("tunnels", [])) == 0'
	out=$(in_ns "$EYE" curl -sS -m 2 http://203.0.113.10:8080/index.html 2>&1)
	tcheck "no traffic reaches the origins once the customer is gone" \
		test "$out" != "origin server srv1" -a "$out" != "origin server srv2"
fi

log "$T_CHECKS checks, $T_FAILS failed"
if [ "$T_FAILS" -eq 0 ]; then
	echo "tunnel test: all $T_CHECKS checks passed"
	exit 0
fi
echo "tunnel test: $T_FAILS of $T_CHECKS checks failed"
exit 1
