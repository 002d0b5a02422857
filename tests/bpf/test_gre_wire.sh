#!/usr/bin/env bash
# The BPF GRE data path on real packets, in throwaway namespaces:
#
#   cust (metal0, gre1) --veth-- metal --veth-- rtr (up0, rgre1) --veth-- srv
#
# cust plays a customer namespace (edge endpoint 192.0.2.10), rtr the origin
# router (endpoint 203.0.113.1) running the same BPF GRE through
# gre_lab_loader with the endpoints swapped, srv an origin server behind it.
# Checks: a real HTTP download (curl <- python3 http.server), a TCP upload,
# UDP and ICMP through the tunnel in both directions; a capture between
# metal and rtr decoded by scapy (standard GRE, key, valid outer and inner
# checksums, nothing over 1500 bytes); GSO kept through the tunnel (gre1
# sends packets larger than its MTU) and a GSO GRE packet decapsulated;
# the same with bpf_redirect_neigh instead of static MACs; anti-spoofing
# (wrong source / key / flags dropped and counted by reason, nothing
# delivered on gre1) with a positive control.
#
# usage: test_gre_wire.sh GRE_LAB_LOADER SRCDIR    (root; exit 77 otherwise)
set -uo pipefail

loader=$1
srcdir=$2
py=/usr/bin/python3

if [ "$(id -u)" -ne 0 ]; then
	echo "skip: needs root"
	exit 77
fi
for tool in tcpdump curl ip ethtool; do
	if ! command -v "$tool" >/dev/null; then
		echo "skip: $tool not installed (deploy/install-deps.sh)"
		exit 77
	fi
done
if ! "$py" -c 'import scapy.all' 2>/dev/null; then
	echo "skip: python3-scapy not installed (deploy/install-deps.sh)"
	exit 77
fi

p=mtx-gw-$$
C=$p-cust
M=$p-metal
R=$p-rtr
S=$p-srv
tmp=$(mktemp -d /tmp/mtx-gw.XXXXXX)
pins=$tmp/bpffs
pids=()
failures=0

cleanup() {
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	for ns in "$C" "$M" "$R" "$S"; do
		ip netns del "$ns" 2>/dev/null
	done
	if mountpoint -q "$pins"; then
		umount "$pins"
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}
ok() {
	echo "ok: $*"
}
run() {
	"$@" || { echo "setup failed: $*"; exit 1; }
}
L() {
	"$loader" --pin-root "$pins" --instance wire "$@"
}

# ---- topology ---------------------------------------------------------------
for ns in "$C" "$M" "$R" "$S"; do
	run ip netns add "$ns"
	run ip -n "$ns" link set lo up
done
run ip -n "$M" link add mtgw-c type veth peer name metal0 netns "$C"
run ip -n "$M" link add mtgw-r type veth peer name up0 netns "$R"
run ip -n "$R" link add srv0 type veth peer name eth0 netns "$S"
run ip -n "$M" addr add 10.255.0.0/31 dev mtgw-c
run ip -n "$M" addr add 10.255.1.0/31 dev mtgw-r
run ip -n "$C" addr add 10.255.0.1/31 dev metal0
run ip -n "$R" addr add 10.255.1.1/31 dev up0
run ip -n "$R" addr add 198.51.100.1/24 dev srv0
run ip -n "$S" addr add 198.51.100.10/24 dev eth0
for l in "$M mtgw-c" "$M mtgw-r" "$C metal0" "$R up0" "$R srv0" "$S eth0"; do
	set -- $l
	run ip -n "$1" link set "$2" up
done
run ip -n "$C" route add default via 10.255.0.0 dev metal0
run ip -n "$R" route add default via 10.255.1.0 dev up0
run ip -n "$S" route add default via 198.51.100.1 dev eth0
run ip -n "$M" route add 192.0.2.10/32 via 10.255.0.1 dev mtgw-c
run ip -n "$M" route add 203.0.113.0/24 via 10.255.1.1 dev mtgw-r
run ip netns exec "$M" sysctl -qw net.ipv4.ip_forward=1
run ip netns exec "$R" sysctl -qw net.ipv4.ip_forward=1
# The metal's uplink (mtgw-r, where the capture runs) is a veth standing in
# for a NIC: the GRE path keeps offloads on and hands it GSO packets with
# partial inner checksums, which a NIC segments and checksums (TSO); a veth
# does not, so tx offload off makes validate_xmit_skb do it in software
# here, once, at the wire (bpf/mt_gre.bpf.c, "Offloads"). The same for the
# router's uplink up0 (in up_tunnels: attaching its decap turns it on).
run ip netns exec "$M" ethtool -K mtgw-r tx off

# ---- tunnels ----------------------------------------------------------------
KEY=4242
up_tunnels() { # $1: "static" (MACs in the map) or "neigh"
	local cpeer=() rpeer=()
	if [ "$1" = static ]; then
		cpeer=(peer="$M":mtgw-c)
		rpeer=(peer="$M":mtgw-r)
	fi
	# no mtu=: a keyed tunnel defaults to 1500 - 28 = 1472
	run L up "$C" gre1 192.0.2.10 203.0.113.1 key=$KEY ttl=64 "${cpeer[@]}"
	run L up "$R" rgre1 203.0.113.1 192.0.2.10 key=$KEY uplink=up0 \
		"${rpeer[@]}"
	run ip netns exec "$R" ethtool -K up0 tx off
}
up_tunnels static
# idempotent: a second up changes nothing and succeeds
run L up "$C" gre1 192.0.2.10 203.0.113.1 key=$KEY ttl=64 peer="$M":mtgw-c
run ip -n "$C" addr add 10.10.0.0/31 dev gre1
run ip -n "$R" addr add 10.10.0.1/31 dev rgre1
run ip -n "$C" route add 198.51.100.0/24 via 10.10.0.1 dev gre1

show=$(L show "$C" gre1)
echo "tunnel: $show"
case "$show" in
*"key $KEY"*"encap 1 decap 1"*) ok "tunnel entry and programs attached" ;;
*) fail "tunnel show: $show" ;;
esac
for dev in gre1 gre1.t metal0; do
	if ip netns exec "$C" ethtool -k "$dev" 2>/dev/null |
		grep -q '^tcp-segmentation-offload: on'; then
		ok "$dev tx checksum offload and TSO on (GSO kept)"
	else
		fail "$dev: TSO not on: $(ip netns exec "$C" ethtool -k "$dev" 2>&1 | grep -E '^(tx-checksumming|tcp-segmentation-offload):' | tr '\n' ' ')"
	fi
done
ip -n "$C" -d link show gre1 | grep -q NOARP || fail "gre1 not NOARP"
ip -n "$C" link show gre1 | grep -q "mtu 1472 " || fail "keyed gre1 mtu not 1472"

# ---- traffic + capture ------------------------------------------------------
if [ -n "${MT_GW_PAUSE:-}" ]; then # debugging: inspect the namespaces
	echo "paused: namespaces $p-*"
	sleep "$MT_GW_PAUSE"
fi
mkdir -p "$tmp/www"
head -c 3000000 /dev/urandom >"$tmp/www/blob"
want_sum=$(sha256sum <"$tmp/www/blob" | cut -d' ' -f1)
# http.server's own server_bind does a reverse DNS lookup (getfqdn) that
# hangs for seconds in a namespace without DNS: skip it.
ip netns exec "$S" "$py" -c '
import functools, http.server, socketserver, sys
class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "srv", self.server_address[1]
handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                            directory=sys.argv[1])
Server(("198.51.100.10", 8080), handler).serve_forever()
' "$tmp/www" >"$tmp/http.log" 2>&1 &
pids+=($!)
# An upload sink: reads a connection to EOF, answers the sha256 of it.
ip netns exec "$S" "$py" -c '
import hashlib, socket
s = socket.create_server(("198.51.100.10", 8081))
while True:
    c, _ = s.accept()
    h = hashlib.sha256()
    while True:
        b = c.recv(65536)
        if not b:
            break
        h.update(b)
    c.sendall(h.hexdigest().encode())
    c.close()
' >"$tmp/sink.log" 2>&1 &
pids+=($!)

upload() { # -> the sink's sha256 of the blob sent from C
	ip netns exec "$C" "$py" -c '
import socket, sys
data = open(sys.argv[1], "rb").read()
for i in range(50):
    try:
        s = socket.create_connection(("198.51.100.10", 8081), timeout=30)
        break
    except OSError:
        import time; time.sleep(0.1)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
print(s.recv(100).decode())
' "$tmp/www/blob" 2>/dev/null
}

tx_bytes() { # $1 ns, $2 dev
	ip -n "$1" -s -j link show "$2" |
		"$py" -c 'import json,sys; print(json.load(sys.stdin)[0]["stats64"]["tx"]["bytes"])'
}

rx_bytes() { # $1 ns, $2 dev
	ip -n "$1" -s -j link show "$2" |
		"$py" -c 'import json,sys; print(json.load(sys.stdin)[0]["stats64"]["rx"]["bytes"])'
}

rx_packets() { # $1 ns, $2 dev
	ip -n "$1" -s -j link show "$2" |
		"$py" -c 'import json,sys; print(json.load(sys.stdin)[0]["stats64"]["rx"]["packets"])'
}

tx_packets() { # $1 ns, $2 dev
	ip -n "$1" -s -j link show "$2" |
		"$py" -c 'import json,sys; print(json.load(sys.stdin)[0]["stats64"]["tx"]["packets"])'
}

traffic_round() { # $1: label, $2: "wire" (check the capture) or "gso"
	local label=$1 mode=$2 pcap=$tmp/$1.pcap tpid got sum i
	local p0 b0 p1 b1 mp0 mb0 mp1 mb1
	: >"$tmp/$label.tcpdump"
	ip netns exec "$M" tcpdump -i mtgw-r --immediate-mode -B 16384 -s 0 -U -w "$pcap" 'ip proto 47' \
		2>"$tmp/$label.tcpdump" &
	tpid=$!
	pids+=($tpid)
	for i in $(seq 50); do
		grep -q 'listening on' "$tmp/$label.tcpdump" && break
		sleep 0.1
	done
	for i in $(seq 50); do # the server needs a moment to listen
		ip netns exec "$C" curl -s -m 2 -o /dev/null \
			http://198.51.100.10:8080/ && break
		sleep 0.1
	done
	mp0=$(rx_packets "$C" metal0) mb0=$(rx_bytes "$C" metal0)
	got=$(ip netns exec "$C" curl -s -m 30 http://198.51.100.10:8080/blob |
		sha256sum | cut -d' ' -f1)
	mp1=$(rx_packets "$C" metal0) mb1=$(rx_bytes "$C" metal0)
	if [ "$got" = "$want_sum" ]; then
		ok "$label: 3 MB HTTP download through the tunnel intact"
	else
		fail "$label: download through the tunnel (sha256 $got)"
	fi
	if [ "$mode" = gso ]; then
		# the router's up0 hands GSO GRE to the metal: metal0 receives
		# packets larger than the MTU and the decap takes them whole
		if [ $(((mb1 - mb0) / (mp1 - mp0 + 1))) -gt 1500 ]; then
			ok "$label: GSO GRE decapsulated ($((mp1 - mp0)) packets, $((mb1 - mb0)) bytes on metal0)"
		else
			fail "$label: no GSO GRE reached metal0 ($((mp1 - mp0)) packets, $((mb1 - mb0)) bytes)"
		fi
	fi
	p0=$(tx_packets "$C" gre1) b0=$(tx_bytes "$C" gre1)
	got=$(upload)
	p1=$(tx_packets "$C" gre1) b1=$(tx_bytes "$C" gre1)
	if [ "$got" = "$want_sum" ]; then
		ok "$label: 3 MB TCP upload through the tunnel intact"
	else
		fail "$label: upload through the tunnel (sha256 \"$got\")"
	fi
	# TSO on gre1: the upload leaves gre1 as GSO packets (one tx per
	# packet, larger than gre1's MTU on average)
	if [ $(((b1 - b0) / (p1 - p0 + 1))) -gt 1472 ]; then
		ok "$label: GSO kept through gre1 ($((p1 - p0)) packets, $((b1 - b0)) bytes)"
	else
		fail "$label: gre1 sent MTU-sized packets only ($((p1 - p0)) packets, $((b1 - b0)) bytes): GSO lost"
	fi
	if ip netns exec "$C" ping -q -c 5 -i 0.05 -W 2 198.51.100.10 \
		>/dev/null 2>&1; then
		ok "$label: ping through the tunnel"
	else
		fail "$label: ping through the tunnel"
	fi
	# UDP to a closed port: the server answers ICMP port unreachable
	local tx0 tx1
	tx0=$(tx_packets "$C" gre1)
	ip netns exec "$C" "$py" -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(20):
    s.sendto(b"mt-gre-udp-%d" % i * 10, ("198.51.100.10", 9999))
' || fail "$label: udp send"
	sleep 1 # let tcpdump drain its ring (--immediate-mode) before the kill
	tx1=$(tx_packets "$C" gre1)
	echo "$label: gre1 sent $((tx1 - tx0)) packets for 20 UDP datagrams"
	kill "$tpid"
	wait "$tpid" 2>/dev/null
	[ "$mode" = wire ] || return 0
	if "$py" "$srcdir/gre_wire_check.py" "$pcap" "$KEY" >"$tmp/$label.json"; then
		ok "$label: every captured packet is standard GRE with valid checksums: $(cat "$tmp/$label.json")"
	else
		fail "$label: capture check: $(cat "$tmp/$label.json")"
	fi
	"$py" - "$tmp/$label.json" <<-'PY' || fail "$label: capture misses traffic"
	import json, sys
	c = json.load(open(sys.argv[1]))
	d = c["directions"]
	ok = (c["tcp"] >= 1000 and c["udp"] >= 20 and c["icmp"] >= 10 and
	      d.get("192.0.2.10>203.0.113.1", 0) > 0 and
	      d.get("203.0.113.1>192.0.2.10", 0) > 0)
	sys.exit(0 if ok else 1)
	PY
	# segmentation happened before the wire: no frame over the uplink's MTU
	local big
	big=$("$py" - "$pcap" <<-'PY'
	import sys
	from scapy.all import IP, rdpcap
	ps = [p[IP] for p in rdpcap(sys.argv[1]) if IP in p]
	print("%d %d %d" % (len(ps), max(p.len for p in ps),
	                    sum(1 for p in ps if p.len > 1500)))
	PY
	)
	set -- $big
	if [ "${3:-1}" = 0 ]; then
		ok "$label: capture: $1 packets, largest IPv4 packet $2 bytes (<= 1500)"
	else
		fail "$label: capture: $3 of $1 packets over 1500 bytes (largest $2)"
	fi
	if [ "$failures" -gt 0 ]; then # diagnostics
		cat "$tmp/$label.tcpdump"
		ip -n "$M" -s link show mtgw-c
		echo "drops:"; L drops | awk '$2 != 0 { print "  " $0 }'
		ip netns exec "$M" nstat -az 2>/dev/null |
			grep -E 'Ip(InDiscards|OutDiscards|OutNoRoutes|ReasmFails|FragFails|InAddrErrors|InHdrErrors)|ArpFilter|Udp' | awk '$2 != 0'
		ip -n "$M" neigh; ip -n "$C" -s link show metal0
	fi
}
traffic_round static wire

up_tunnels neigh
case "$(L show "$C" gre1)" in
*"key $KEY"*) ;;
*) fail "neigh re-up" ;;
esac
traffic_round neigh wire

# The decap of GSO GRE: the router's uplink leaves its offload on, so the
# download arrives on metal0 as GSO GRE packets (up to 64 KB, partial
# inner checksums: fine between veths; no capture check).
run ip netns exec "$R" ethtool -K up0 tx on
traffic_round gso-decap gso
run ip netns exec "$R" ethtool -K up0 tx off

# ---- anti-spoofing ---------------------------------------------------------
drops() { # $1 reason [$2 $3: ns tunnel] -> count (all, or the tunnel's)
	L drops ${2:+"$2" "$3"} | awk -v r="$1" '$1 == r { print $2 }'
}
send_case() { # $1 case, $2 count
	ip netns exec "$R" "$py" "$srcdir/gre_spoof.py" "$1" 192.0.2.10 \
		203.0.113.1 $KEY "$2" 10.10.0.0
}
rx0=$(rx_packets "$C" gre1)
send_case valid 7
sleep 0.3
rx1=$(rx_packets "$C" gre1)
if [ $((rx1 - rx0)) -ge 7 ]; then
	ok "positive control: crafted valid GRE arrives on gre1 ($((rx1 - rx0)) packets)"
else
	fail "positive control: only $((rx1 - rx0)) of 7 valid packets arrived on gre1"
fi

declare -A expect=([spoof_src]=no_tunnel [wrong_key]=wrong_key
	[no_key]=wrong_key [seq]=sequence [bad_csum]=bad_csum
	[ipv6_proto]=bad_proto [version1]=bad_version)
for c in spoof_src wrong_key no_key seq bad_csum ipv6_proto version1; do
	reason=${expect[$c]}
	before=$(drops "$reason")
	tbefore=$(drops "$reason" "$C" gre1)
	rx0=$(rx_packets "$C" gre1)
	send_case "$c" 5
	sleep 0.3
	after=$(drops "$reason")
	tafter=$(drops "$reason" "$C" gre1)
	rx1=$(rx_packets "$C" gre1)
	# drops before a tunnel matched are not the tunnel's
	twant=5
	[ "$reason" = no_tunnel ] && twant=0
	if [ $((after - before)) -eq 5 ] && [ "$rx1" -eq "$rx0" ] &&
		[ $((tafter - tbefore)) -eq "$twant" ]; then
		ok "anti-spoofing: $c dropped and counted as $reason (tunnel gre1: +$twant)"
	else
		fail "anti-spoofing: $c: $reason +$((after - before)) (want 5), tunnel +$((tafter - tbefore)) (want $twant), gre1 rx +$((rx1 - rx0)) (want 0)"
	fi
done
echo "drops (all namespaces of this test):"
L drops | awk '$2 != 0 { print "  " $0 }'

# ---- teardown leaves nothing ------------------------------------------------
run L down "$C" gre1
if ip -n "$C" link show gre1 >/dev/null 2>&1 ||
	ip -n "$C" link show gre1.t >/dev/null 2>&1; then
	fail "tunnel devices left after down"
elif L show "$C" gre1 >/dev/null 2>&1; then
	fail "tunnel entry left after down"
else
	ok "down removes the devices and the map entries"
fi
run L down "$C" gre1 # idempotent

if [ "$failures" -eq 0 ]; then
	echo "gre wire test: all checks passed"
	exit 0
fi
echo "gre wire test: $failures check(s) failed"
exit 1
