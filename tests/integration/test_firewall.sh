#!/usr/bin/env bash
# The customer firewall end to end, with the real daemons and real packets:
# an eyeball sends TCP and UDP to two customers whose traffic enters their
# namespaces, passes mt's nftables firewall there, and goes through a GRE
# tunnel each to one origin router (BPF GRE by gre_lab_loader) and its
# server, which answers the eyeball directly (direct server return).
#
#   mtx-fw-eye (198.18.11.2, .3) -- mtx-fw-up -- mtx-fw-o1 -- mtx-fw-s1
#                                      |           203.0.113.10 (acme)
#                                  mtx-fw (metal)  203.0.113.140 (globex)
#                                      |
#                  mtfw-acme   (203.0.113.0/25)   gre1 -> o1
#                  mtfw-globex (203.0.113.128/25) gre1 -> o1, key 7
#
# Checks: allowed traffic passes and blocked traffic is dropped (ports,
# lists, packet length, default block), a rate limit caps near its rate
# and counts what it dropped, monitor mode counts without dropping, one
# customer's rules never touch the other's traffic, `mtctl firewall show`
# (table and JSON), the kernel's rules read independently with nft -j,
# a no-op plan after converging (the kernel's rules parse back to the
# config), a one-rule change touches only that rule (handles kept, one
# kernel write), drift (a rule deleted or changed by hand is restored and
# a foreign rule removed within about a second, through mt-fastpath's poll),
# atomicity (a transaction the kernel refuses halfway leaves the old rules
# in force for traffic, names what failed, and is repaired by a full
# reload), an agent kill -9 and restart (nothing rewritten; the next list
# change reloads it), bad rules refused with nothing changed, and removing
# the firewall leaves the tunnel's MSS clamp alone.
T_HERE=$(cd "$(dirname "$0")" && pwd)
. "$T_HERE/lib.sh"
. "$T_HERE/lib_checks.sh"

PY=/usr/bin/python3
for tool in ethtool nft; do
	if ! command -v "$tool" >/dev/null; then
		echo "SKIP: $tool not installed (deploy/install-deps.sh)"
		exit 77
	fi
done
LOADER="$MT_BUILD/tests/bpf/gre_lab_loader"
TRAFFIC="$T_HERE/fw_traffic.py"

T_RECONCILE_S=300 # drift must be repaired through mt-fastpath's nft poll, not the periodic reconcile
mt_test_init fw
. "$T_HERE/lib_lab.sh"
set +e # every step is checked; a failing check must not end the test
UP=$T_UP
EYE=mtx-fw-eye
O1=mtx-fw-o1
S1=mtx-fw-s1
ACME=${T_PREFIX}acme
GLOBEX=${T_PREFIX}globex
TABLE=${T_PREFIX}cust
PINS="$MT_RUN_DIR/bpf"

L() { "$LOADER" --pin-root "$PINS" --instance origin "$@"; }

# ---- topology -----------------------------------------------------------
for ns in "$EYE" "$O1" "$S1"; do
	setup ip netns add "$ns"
	setup ip -n "$ns" link set lo up
done
link "$UP" to-eye 198.18.11.1/24 "$EYE" eth0 198.18.11.2/24
link "$UP" to-o1 198.18.21.1/24 "$O1" eth0 198.18.21.2/24
link "$O1" srv0 198.18.31.1/24 "$S1" eth0 198.18.31.2/24
setup ip -n "$EYE" addr add 198.18.11.3/24 dev eth0 # the listed source
setup ip -n "$S1" addr add 203.0.113.10/32 dev eth0
setup ip -n "$S1" addr add 203.0.113.140/32 dev eth0
setup ip -n "$EYE" route add default via 198.18.11.1
setup ip -n "$O1" route add default via 198.18.21.1
setup ip -n "$S1" route add default via 198.18.31.1
setup ip -n "$O1" route add 203.0.113.10/32 via 198.18.31.2
setup ip -n "$O1" route add 203.0.113.140/32 via 198.18.31.2
setup ip -n "$UP" route add 203.0.113.0/24 via 198.18.0.2
setup ip -n "$UP" route add 192.0.2.0/24 via 198.18.0.2
for ns in "$UP" "$O1"; do
	setup in_ns "$ns" sysctl -qw net.ipv4.ip_forward=1
	setup in_ns "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0
done
setup in_ns "$T_METAL" ethtool -K uplink tx off >/dev/null
origin_tunnel() { # NAME REMOTE INNER [key=K]
	local name=$1 remote=$2 inner=$3
	shift 3
	setup L up "$O1" "$name" 198.18.21.2 "$remote" uplink=eth0 "$@"
	setup ip -n "$O1" addr add "$inner" dev "$name"
	setup in_ns "$O1" sysctl -qw "net.ipv4.conf.$name.rp_filter=0"
	# reply-style health probes come from the router's own inner address
	setup in_ns "$O1" sysctl -qw "net.ipv4.conf.$name.accept_local=1"
}
origin_tunnel racme 192.0.2.1 10.1.1.1/31
origin_tunnel rglobex 192.0.2.2 10.2.1.1/31 key=7
setup in_ns "$O1" ethtool -K eth0 tx off >/dev/null

mkdir -p "$T_DIR/sink"
nsenter --net="/run/netns/$S1" "$PY" "$TRAFFIC" serve "$T_DIR/sink" \
	22,23,80,8080 5001,5002,5003,5004 >"$T_DIR/serve.log" 2>&1 &
BG+=($!)

# ---- helpers ------------------------------------------------------------
# tcp_open SRC DST PORT: a TCP connection from the eyeball gets through
tcp_open() { in_ns "$EYE" "$PY" "$TRAFFIC" tcp "$1" "$2" "$3" 1 >/dev/null; }
tcp_blocked() { ! tcp_open "$@"; }
udp_count() { cat "$T_DIR/sink/udp_$1" 2>/dev/null || echo 0; }
# udp_delivered SRC DST PORT COUNT PPS SIZE: prints how many arrived
udp_delivered() {
	local before after
	before=$(udp_count "$3")
	in_ns "$EYE" "$PY" "$TRAFFIC" udp "$@" >/dev/null
	sleep 0.3
	after=$(udp_count "$3")
	echo $((after - before))
}
# fw_json NAME: mtctl firewall show NAME -o json
fw_json() { mtctl -o json firewall show "$1"; }
# fw_get NAME EXPR: a python expression over s (the FirewallStatus)
fw_get() {
	fw_json "$1" | "$PY" -c "
import json, sys
s = json.load(sys.stdin)
def rule(i):
    return next(r for r in s.get('rules', []) if r['rule']['id'] == i)
def ctr(i, k):
    return int(rule(i).get('counters', {}).get(k, 0))
print($2)"
}
# nft_rules NS: "handle comment" per rule of fw_rules, read with nft -j
nft_rules() {
	in_ns "$1" nft -j -a list chain inet "$TABLE" fw_rules 2>/dev/null |
		"$PY" -c '
import json, sys
for o in json.load(sys.stdin)["nftables"]:
    r = o.get("rule")
    if r:
        print(r["handle"], r.get("comment", ""))'
}
plan_empty() { mtctl --exit-code plan "$1" >/dev/null; }
handle_of() { nft_rules "$1" | awk -v c="mt fw $2 1/" 'index($0, c) {print $1; exit}'; }

# ---- the customers ------------------------------------------------------
# acme_json RULE10_PORTS [EXTRA_BAD_PREFIX]
acme_json() {
	"$PY" - "$@" <<'PY'
import json, sys
ports = sys.argv[1].split(",")
bad = ["198.18.11.3/32", "198.51.100.0/24"] + \
      ["100.%d.%d.0/24" % (64 + i // 256, i % 256) for i in range(2000)]
if len(sys.argv) > 2:
    bad.append(sys.argv[2])
c = {"id": 1, "name": "acme", "prefixes": ["203.0.113.0/25"],
     "tunnelEndpoints": ["192.0.2.1"],
     "tunnels": [{"name": "gre1", "edgeEndpoint": "192.0.2.1",
                  "routerEndpoint": "198.18.21.2",
                  "innerAddress": "10.1.1.0/31"}],
     "routes": [{"prefix": "203.0.113.0/25", "tunnel": "gre1",
                 "priority": 100, "weight": 1}],
     "firewall": {
         "defaultAction": "allow",
         "lists": [{"name": "bad", "prefixes": bad}],
         "rules": [
             {"id": 10, "description": "no ssh", "action": "block",
              "protocol": "tcp", "dstPorts": ports},
             {"id": 20, "action": "rate_limit", "protocol": "udp",
              "dstPorts": ["5002"],
              "rateLimit": {"packetsPerSecond": "100", "burst": "10"}},
             {"id": 30, "action": "block", "monitor": True,
              "protocol": "udp", "dstPorts": ["5003"]},
             {"id": 40, "action": "block", "srcList": "bad"},
             {"id": 50, "action": "block", "protocol": "udp",
              "dstPorts": ["5004"], "length": {"min": 1000, "max": 65535}},
         ]}}
print(json.dumps(c))
PY
}
cat >"$T_DIR/globex.json" <<'JSON'
{"id": 2, "name": "globex", "prefixes": ["203.0.113.128/25"],
 "tunnelEndpoints": ["192.0.2.2"],
 "tunnels": [{"name": "gre1", "edgeEndpoint": "192.0.2.2",
              "routerEndpoint": "198.18.21.2", "innerAddress": "10.2.1.0/31",
              "key": 7}],
 "routes": [{"prefix": "203.0.113.128/25", "tunnel": "gre1",
             "priority": 100, "weight": 1}],
 "firewall": {"defaultAction": "block",
              "rules": [{"id": 1, "action": "allow", "protocol": "tcp",
                         "dstPorts": ["22", "80"]},
                        {"id": 2, "action": "allow", "protocol": "udp",
                         "dstPorts": ["5001"]}]}}
JSON
acme_json 22 >"$T_DIR/acme.json"

start_daemons
check "put acme and globex" mtctl put "$T_DIR/acme.json" "$T_DIR/globex.json"
check "both converge" wait_for 30 all_converged

# ---- allowed and blocked ------------------------------------------------
A=203.0.113.10
G=203.0.113.140
check "acme: tcp 80 passes" tcp_open 198.18.11.2 $A 80
check "acme: tcp 22 is blocked (rule 10)" tcp_blocked 198.18.11.2 $A 22
check "acme: tcp 80 from a listed source is blocked (rule 40, list bad)" \
	tcp_blocked 198.18.11.3 $A 80
n=$(udp_delivered 198.18.11.2 $A 5001 100 500 100)
check "acme: 100 of 100 udp 5001 datagrams arrive ($n)" test "$n" -eq 100
n=$(udp_delivered 198.18.11.2 $A 5004 50 500 200)
check "acme: small udp 5004 datagrams arrive ($n of 50)" test "$n" -eq 50
n=$(udp_delivered 198.18.11.2 $A 5004 50 500 1200)
check "acme: udp 5004 datagrams of 1200 bytes are dropped (rule 50 length) ($n)" \
	test "$n" -eq 0
# isolation: acme's rules are not globex's
check "globex: tcp 22 passes (acme's rule 10 does not apply)" \
	tcp_open 198.18.11.2 $G 22
check "globex: tcp 80 from acme's listed source passes" tcp_open 198.18.11.3 $G 80
check "globex: tcp 8080 is blocked (default block)" tcp_blocked 198.18.11.2 $G 8080
n=$(udp_delivered 198.18.11.2 $G 5001 100 500 100)
check "globex: udp 5001 allowed ($n of 100)" test "$n" -eq 100
n=$(udp_delivered 198.18.11.2 $G 5003 50 500 100)
check "globex: udp 5003 blocked by default ($n)" test "$n" -eq 0
check "acme: tcp 8080 passes (default allow)" tcp_open 198.18.11.2 $A 8080

# ---- rate limit and monitor ---------------------------------------------
# 100/s with a burst of 10: over 2 s about 2 x 100 + the bucket (110).
n=$(udp_delivered 198.18.11.2 $A 5002 2000 1000 100)
log "rate limit: $n of 2000 datagrams at 1000/s for 2 s arrived (100/s, burst 10)"
check "acme: rate-limited udp 5002 capped near 100/s ($n of 2000, want 150..500)" \
	test "$n" -ge 150 -a "$n" -le 500
lim=$(fw_get acme 'ctr(20, "limitedPackets")')
check "acme: rule 20 counted what it dropped ($lim, want $((2000 - n)) +-5%)" \
	"$PY" -c "import sys; sys.exit(not abs($lim - (2000 - $n)) <= 100)"
n=$(udp_delivered 198.18.11.2 $A 5003 300 1000 100)
check "acme: monitor rule 30 drops nothing ($n of 300)" test "$n" -eq 300
m=$(fw_get acme 'ctr(30, "packets")')
check "acme: monitor rule 30 counted them ($m >= 300)" test "${m:-0}" -ge 300
p=$(fw_get acme 'ctr(10, "packets")')
check "acme: rule 10 counted its drops ($p > 0)" test "${p:-0}" -gt 0

# ---- mtctl and the kernel -------------------------------------------------
out=$(mtctl firewall show acme)
log "mtctl firewall show acme:"$'\n'"$out"
check "firewall show lists the rules in order" \
	"$PY" -c "
import re, sys
ids = [int(m.group(1)) for m in re.finditer(r'(?m)^\s*(\d+)\s', sys.argv[1])]
sys.exit(ids[:5] != [10, 20, 30, 40, 50])" "$out"
check "firewall show has the default action and the list" \
	grep -Eq 'default.*allow' <<<"$out"
check "firewall show json: in sync" test "$(fw_get acme 's.get("inSync")')" = True
check "nft -j: acme's fw_rules has 6 kernel rules (rate limit = 2 parts)" \
	test "$(nft_rules "$ACME" | wc -l)" -eq 6
check "nft -j: rules tagged in order" \
	test "$(nft_rules "$ACME" | awk '{print $4}' | tr '\n' ' ')" = "10 20 20 30 40 50 "
check "no-op: mtctl plan is empty after converging" plan_empty acme

# ---- one rule changed: only that rule -------------------------------------
before=$(nft_rules "$ACME")
w0=$(status_get 's.get("kernelWrites", 0)')
acme_json 22,23 >"$T_DIR/acme.json"
check "change rule 10 (block 22 and 23)" mtctl put "$T_DIR/acme.json"
check "converges" wait_for 20 all_converged
after=$(nft_rules "$ACME")
w1=$(status_get 's.get("kernelWrites", 0)')
check "handles of every rule unchanged (rule 10 replaced in place)" \
	test "$(awk '{print $1}' <<<"$before")" = "$(awk '{print $1}' <<<"$after")"
check "one kernel write for the change ($((w1 - w0)))" test $((w1 - w0)) -eq 1
check "tcp 23 is now blocked" tcp_blocked 198.18.11.2 $A 23

# ---- drift ------------------------------------------------------------------
# mt-fastpath notices a foreign nft commit within a second (its poll of
# the generation ids) and the agent repairs that customer. Paused for the
# first case, so the hole can be seen in traffic before it is repaired.
h=$(handle_of "$ACME" 10)
check "pause" mtctl pause
check "delete rule 10 by hand (handle $h)" \
	in_ns "$ACME" nft delete rule inet "$TABLE" fw_rules handle "$h"
check "tcp 22 passes while rule 10 is gone" tcp_open 198.18.11.2 $A 22
t_resume=$(now_ms)
check "resume" mtctl resume
has_rule10() { [ -n "$(handle_of "$ACME" 10)" ]; }
check "rule 10 restored" wait_for 15 has_rule10
log "rule 10 restored $(($(now_ms) - t_resume)) ms after resume"
check "tcp 22 blocked again" tcp_blocked 198.18.11.2 $A 22
h=$(handle_of "$ACME" 40)
check "change rule 40 by hand (block -> accept)" \
	in_ns "$ACME" nft replace rule inet "$TABLE" fw_rules handle "$h" \
	ip saddr @l4_bad counter accept comment '"mt fw 40 1/1"'
restored40() { tcp_blocked 198.18.11.3 $A 80 && plan_empty acme; }
check "rule 40 repaired" wait_for 15 restored40
check "foreign rule added by hand" \
	in_ns "$ACME" nft add rule inet "$TABLE" fw_rules tcp dport 8080 drop
no_foreign() { [ "$(nft_rules "$ACME" | grep -vc 'mt fw')" -eq 0 ]; }
check "foreign rule removed" wait_for 15 no_foreign
check "tcp 8080 passes again" tcp_open 198.18.11.2 $A 8080

# ---- atomicity --------------------------------------------------------------
# Paused, so only the explicit reconcile below applies. An element added to
# the list by hand is invisible to the list's digest; the next delta adds a
# prefix overlapping it, which the kernel refuses in the middle of the
# transaction that also changes rule 10.
check "pause" mtctl pause
check "add an element to list bad by hand" \
	in_ns "$ACME" nft add element inet "$TABLE" l4_bad '{ 192.0.2.128/25 }'
acme_json 22,23,8080 192.0.2.192/26 >"$T_DIR/acme.json"
check "put: rule 10 adds 8080, list bad gains 192.0.2.192/26" mtctl put "$T_DIR/acme.json"
out=$(mtctl reconcile acme 2>&1)
rc=$?
log "reconcile (expected to fail): exit $rc: $out"
check "reconcile reports the failure (exit $rc)" test "$rc" -ne 0
check "the error names the list" grep -q 'bad' <<<"$out"
check "old rules still in force: tcp 8080 passes" tcp_open 198.18.11.2 $A 8080
check "old rules still in force: tcp 22 blocked" tcp_blocked 198.18.11.2 $A 22
check "resume" mtctl resume
check "repaired by a full reload of the list" wait_for 20 all_converged
check "new rule in force: tcp 8080 blocked" tcp_blocked 198.18.11.2 $A 8080
check "the element added by hand is gone (full reload)" \
	test -z "$(in_ns "$ACME" nft get element inet "$TABLE" l4_bad '{ 192.0.2.130 }' 2>/dev/null)"

# ---- the agent killed and restarted -------------------------------------------
# Its list cache is gone; the kernel's firewall (lists included, by their
# digest) is the config's, so the restarted agent writes nothing, and the
# next list change is a full reload that leaves exactly the new content.
before=$(nft_rules "$ACME")
kill9 T_AGENT_PID
check "agent restarts" start_agent
check "converges after the restart" wait_for 20 all_converged
check "nothing rewritten: same rules, same handles" \
	test "$(nft_rules "$ACME")" = "$before"
check "no kernel writes after the restart" \
	test "$(status_get 's.get("kernelWrites", 0)')" = 0
acme_json 22,23,8080 198.51.101.0/24 >"$T_DIR/acme.json"
check "put: list bad gains 198.51.101.0/24" mtctl put "$T_DIR/acme.json"
check "converges" wait_for 20 all_converged
has_elem() { in_ns "$ACME" nft get element inet "$TABLE" l4_bad "{ $1 }" >/dev/null 2>&1; }
check "the new prefix is in the kernel's list" has_elem 198.51.101.7
check "the old content stays (a listed source still blocked)" \
	tcp_blocked 198.18.11.3 $A 80
check "the prefix of the previous version is gone" \
	bash -c "! nsenter --net=/run/netns/$ACME nft get element inet $TABLE l4_bad '{ 192.0.2.200 }' >/dev/null 2>&1"

# ---- bad rules are refused, nothing changes ---------------------------------
rev=$(store_revision)
bad() { # NAME PATTERN PYTHON-EDIT (of c, the acme config)
	local name=$1 pat=$2 out rc
	acme_json 22 | "$PY" -c "
import json, sys
c = json.load(sys.stdin)
r = c['firewall']['rules']
$3
print(json.dumps(c))" >"$T_DIR/bad.json"
	out=$(mtctl put "$T_DIR/bad.json" 2>&1) && rc=0 || rc=$?
	log "$name: exit $rc: $out"
	check "$name: refused (exit $rc)" test "$rc" -eq 1
	check "$name: message names it (/$pat/)" grep -Eq -- "$pat" <<<"$out"
	check "$name: store unchanged" test "$(store_revision)" = "$rev"
}
bad "unknown protocol" 'rules\[0\].*protocol.*"tcpp"' "r[0]['protocol'] = 'tcpp'"
bad "port outside 0-65535" 'dst_ports\[0\].*"70000"' "r[0]['dstPorts'] = ['70000']"
bad "port without tcp or udp" 'rules\[0\].*dst_ports' "r[0]['protocol'] = 'icmp'"
bad "malformed prefix" 'src_prefixes\[0\].*"10.0.0.300/24"' "r[0]['srcPrefixes'] = ['10.0.0.300/24']"
bad "list that does not exist" 'src_list.*"nosuch"' "r[3]['srcList'] = 'nosuch'"
bad "rate of 0" 'rules\[1\].*rate' "r[1]['rateLimit'] = {'packetsPerSecond': '0'}"
bad "duplicate rule ids" 'id 10' "r[1]['id'] = 10"
check "kernel unchanged: plan still empty" plan_empty acme

# ---- removing the firewall keeps the tunnel's MSS clamp -----------------------
"$PY" -c "
import json, sys
c = json.load(open(sys.argv[1]))
del c['firewall']
print(json.dumps(c))" "$T_DIR/acme.json" >"$T_DIR/acme-nofw.json"
check "put acme without a firewall" mtctl put "$T_DIR/acme-nofw.json"
check "converges" wait_for 20 all_converged
check "chains fw and fw_rules gone" \
	bash -c "! nsenter --net=/run/netns/$ACME nft list chain inet $TABLE fw_rules >/dev/null 2>&1"
check "mss chain still there" in_ns "$ACME" nft list chain inet "$TABLE" mss >/dev/null
check "tcp 22 passes without a firewall" tcp_open 198.18.11.2 $A 22
check "delete both customers" mtctl delete acme globex
check "namespaces gone" wait_for 20 test -z "$(owned_namespaces)"

mt_test_done
