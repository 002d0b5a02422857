#!/usr/bin/env bash
# Tunnel health checks and the fast loop, with the real daemons, real
# packets and a real TCP transfer:
#
#   mtx-ht-eye -- mtx-ht-up (router) --+-- mtx-ht-o1 (198.18.21.2) --+
#                     |                +-- mtx-ht-o2 (198.18.22.2) --+-- mtx-ht-s
#                 mtx-ht (metal)                                        203.0.113.10
#                     |
#                 mtht-acme  gre1 -> o1 (prio 100), gre2 -> o2 (prio 200)
#                            for 203.0.113.0/25; gre3 -> o2 (request-style,
#                            bidirectional, key 3); gre4 -> o1 (request-style,
#                            key 4)
#
# o1 drops every ICMP echo request (input and forward), as many customer
# routers do: reply-style gre1 stays healthy against it, request-style gre4
# goes down. One server behind both origin routers, so a TCP connection
# survives moving from gre1 to gre2.
#
# Checks: probes and states (mtctl tunnels), penalties in the kernel's
# routes (ip -json, independently), failover of a running TCP upload when
# gre1 is cut at o1, recovery only after the hysteresis, steering while the
# agent is paused, an agent kill -9 that does not flap the routes, bad
# health-check configs refused with nothing changed, and that deleting the
# customer leaves nothing (the prober's sockets do not keep the namespace
# alive). Prints ok:/FAIL: lines; exit 1 on any failure, 77 when not root.
T_HERE=$(cd "$(dirname "$0")" && pwd)
. "$T_HERE/lib.sh"

PY=/usr/bin/python3
for tool in curl jq nft prometheus; do
	if ! command -v "$tool" >/dev/null; then
		echo "SKIP: $tool not installed (deploy/install-deps.sh)"
		exit 77
	fi
done
LOADER="$MT_BUILD/tests/bpf/gre_lab_loader"
TRAFFIC="$T_HERE/health_traffic.py"

mt_test_init ht
. "$T_HERE/lib_lab.sh"
set +e
UP=$T_UP
EYE=mtx-ht-eye
O1=mtx-ht-o1
O2=mtx-ht-o2
S=mtx-ht-s
ACME=${T_PREFIX}acme
PINS="$MT_RUN_DIR/bpf"

L() { "$LOADER" --pin-root "$PINS" --instance origin "$@"; }

# ---- topology -----------------------------------------------------------
for ns in "$EYE" "$O1" "$O2" "$S"; do
	setup ip netns add "$ns"
	setup ip -n "$ns" link set lo up
done
link "$UP" to-eye 198.18.11.1/24 "$EYE" eth0 198.18.11.2/24
link "$UP" to-o1 198.18.21.1/24 "$O1" eth0 198.18.21.2/24
link "$UP" to-o2 198.18.22.1/24 "$O2" eth0 198.18.22.2/24
link "$O1" srv0 198.18.31.1/24 "$S" eth1 198.18.31.2/24
link "$O2" srv0 198.18.32.1/24 "$S" eth2 198.18.32.2/24
setup ip -n "$S" addr add 203.0.113.10/32 dev lo
setup ip -n "$EYE" route add default via 198.18.11.1
setup ip -n "$O1" route add default via 198.18.21.1
setup ip -n "$O2" route add default via 198.18.22.1
# the server answers through o1 (direct server return: never the metal)
setup ip -n "$S" route add default via 198.18.31.1
setup ip -n "$O1" route add 203.0.113.10/32 via 198.18.31.2
setup ip -n "$O2" route add 203.0.113.10/32 via 198.18.32.2
setup ip -n "$UP" route add 203.0.113.0/24 via 198.18.0.2
setup ip -n "$UP" route add 192.0.2.0/24 via 198.18.0.2
for ns in "$UP" "$O1" "$O2" "$S"; do
	setup in_ns "$ns" sysctl -qw net.ipv4.ip_forward=1
	setup in_ns "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0
	setup in_ns "$ns" sysctl -qw net.ipv4.conf.default.rp_filter=0
done
setup in_ns "$S" sysctl -qw net.ipv4.conf.eth2.rp_filter=0
setup in_ns "$T_METAL" ethtool -K uplink tx off >/dev/null

# The origin routers' ends (BPF GRE with the endpoints swapped). A
# reply-style probe's inner source is the router's own inner address,
# which Linux drops as a martian unless accept_local is on.
origin_tunnel() { # NS NAME LOCAL REMOTE INNER [key=K]
	local ns=$1 name=$2 local=$3 remote=$4 inner=$5
	shift 5
	setup L up "$ns" "$name" "$local" "$remote" uplink=eth0 "$@"
	setup in_ns "$ns" ethtool -K eth0 tx off >/dev/null
	setup ip -n "$ns" addr add "$inner" dev "$name"
	setup in_ns "$ns" sysctl -qw "net.ipv4.conf.$name.rp_filter=0"
	setup in_ns "$ns" sysctl -qw "net.ipv4.conf.$name.accept_local=1"
}
origin_tunnel "$O1" rgre1 198.18.21.2 192.0.2.1 10.1.1.1/31
origin_tunnel "$O2" rgre2 198.18.22.2 192.0.2.1 10.1.2.1/31
# (one tunnel per pair of endpoints: gre3 and gre4 use second addresses)
setup ip -n "$O1" addr add 198.18.21.3/24 dev eth0
setup ip -n "$O2" addr add 198.18.22.3/24 dev eth0
origin_tunnel "$O2" rgre3 198.18.22.3 192.0.2.1 10.1.3.1/31 key=3
origin_tunnel "$O1" rgre4 198.18.21.3 192.0.2.1 10.1.4.1/31 key=4
# o1 drops every ICMP echo request, to itself and through it
in_ns "$O1" nft -f - <<'NFT' || { echo "setup failed: o1 nft"; exit 1; }
table inet noping {
	chain input { type filter hook input priority 0; icmp type echo-request drop; }
	chain forward { type filter hook forward priority 0; icmp type echo-request drop; }
}
NFT
# cut_o1 / mend_o1: o1 drops everything that comes out of tunnel gre1
# (its rgre1: data and probes alike; the GRE is decapsulated by tc before
# netfilter sees it, so the drop is on the tunnel device)
cut_o1() {
	in_ns "$O1" nft -f - <<-'NFT'
	table inet cut {
		chain pre { type filter hook prerouting priority -300; iifname "rgre1" drop; }
	}
	NFT
}
mend_o1() { in_ns "$O1" nft delete table inet cut; }

nsenter --net="/run/netns/$S" "$PY" "$TRAFFIC" upload_server 9000 "$T_DIR/uploads" \
	>"$T_DIR/upload_server.log" 2>&1 &
BG+=($!)

# ---- the customer -------------------------------------------------------
acme_json() { # [EXTRA_GRE1_HEALTH_JSON]
	"$PY" - "${1:-}" <<'PY'
import json, sys
hc1 = json.loads(sys.argv[1]) if sys.argv[1] else None
def tun(name, router, inner, **kw):
    t = {"name": name, "edgeEndpoint": "192.0.2.1", "routerEndpoint": router,
         "innerAddress": inner}
    t.update(kw)
    return t
t1 = tun("gre1", "198.18.21.2", "10.1.1.0/31")
if hc1:
    t1["healthCheck"] = hc1
c = {"id": 1, "name": "acme", "prefixes": ["203.0.113.0/24"],
     "tunnelEndpoints": ["192.0.2.1"],
     "tunnels": [
         t1,
         tun("gre2", "198.18.22.2", "10.1.2.0/31"),
         tun("gre3", "198.18.22.3", "10.1.3.0/31", key=3,
             healthCheck={"type": "request", "direction": "bidirectional"}),
         tun("gre4", "198.18.21.3", "10.1.4.0/31", key=4,
             healthCheck={"type": "request"})],
     "routes": [
         {"prefix": "203.0.113.0/25", "tunnel": "gre1", "priority": 100, "weight": 1},
         {"prefix": "203.0.113.0/25", "tunnel": "gre2", "priority": 200, "weight": 1},
         {"prefix": "203.0.113.128/26", "tunnel": "gre3", "priority": 100, "weight": 1},
         {"prefix": "203.0.113.192/26", "tunnel": "gre4", "priority": 100, "weight": 1}]}
print(json.dumps(c))
PY
}

# state TUNNEL: its health state per mtctl tunnels -o json
state() {
	mtctl -o json tunnels acme 2>/dev/null |
		jq -r --arg t "$1" '.tunnels[] | select(.name == $t) | .health.state // "none"'
}
health_field() { # TUNNEL FIELD
	mtctl -o json tunnels acme 2>/dev/null |
		jq -r --arg t "$1" --arg f "$2" '.tunnels[] | select(.name == $t) | .health[$f] // 0'
}
# metric DST DEV: the metric of the cust_table route to DST through DEV
# (dev or nexthop), read from the kernel independently
metric() {
	ip -n "$ACME" -json route show table 2001 2>/dev/null |
		jq -r --arg d "$1" --arg v "$2" '[.[] | select(.dst == $d) |
			select(.dev == $v or ((.nexthops // []) | map(.dev) | index($v)))
			| .metric // 0] | min // "none"'
}
state_is() { [ "$(state "$1")" = "$2" ]; }
interval_is() { [ "$(health_field "$1" intervalMs)" = "$2" ]; }
metric_is() { [ "$(metric "$1" "$2")" = "$3" ]; }

# mt-agent's metrics, scraped by a real Prometheus (both in the metal's
# namespace, on its loopback)
MPORT=$((30000 + $$ % 10000))
PPORT=$((MPORT + 1))
T_AGENT_ARGS="-m 127.0.0.1:$MPORT"
start_daemons || { echo "setup failed: daemons"; exit 1; }
cat >"$T_DIR/prometheus.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: mt-agent
    static_configs: [{targets: ["127.0.0.1:$MPORT"]}]
YML
in_metal prometheus --config.file="$T_DIR/prometheus.yml" \
	--storage.tsdb.path="$T_DIR/tsdb" --web.listen-address="127.0.0.1:$PPORT" \
	>"$T_DIR/prometheus.log" 2>&1 &
BG+=($!)
# promql QUERY: the first sample's value of an instant query ("" if none)
promql() {
	in_metal curl -s -G "http://127.0.0.1:$PPORT/api/v1/query" --data-urlencode "query=$1" |
		jq -r '.data.result[0].value[1] // ""'
}
prom_at_least() { # QUERY MIN
	local v
	v=$(promql "$1")
	[ -n "$v" ] && awk -v v="$v" -v m="$2" 'BEGIN { exit !(v + 0 >= m + 0) }'
}
acme_json >"$T_DIR/acme.json"
setup mtctl put "$T_DIR/acme.json" >/dev/null

# ---- probes and states --------------------------------------------------
# (every tunnel starts healthy: wait for replies, not for the state)
ok_gt() { [ "$(health_field "$1" probesOk)" -gt "$2" ] 2>/dev/null; }
for t in gre1 gre2 gre3; do
	wait_for 15 ok_gt "$t" 10
	tcheck "$t (reply-style, request-style bidirectional for gre3) healthy with replies ($(health_field $t probesOk) of $(health_field $t probesSent))" \
		sh -c "[ '$(state $t)' = healthy ] && [ $(health_field $t probesOk) -gt 10 ]"
done
tcheck "replies carry an RTT (gre1 $(health_field gre1 rttUs) us)" \
	test "$(health_field gre1 rttUs)" -gt 0
tcheck "reply-style works against o1, which drops echo requests; request-style gre4 to o1 is down" \
	wait_for 10 state_is gre4 down
tcheck "gre4 got no reply at all" test "$(health_field gre4 probesOk)" -eq 0
tcheck "kernel: gre1's route at metric 100, gre2's at 200" \
	sh -c "[ '$(metric 203.0.113.0/25 gre1)' = 100 ] && [ '$(metric 203.0.113.0/25 gre2)' = 200 ]"
tcheck "kernel: down gre4's route penalised, not removed (metric $(metric 203.0.113.192/26 gre4))" \
	metric_is 203.0.113.192/26 gre4 1000100
mtctl tunnels acme

# ---- failover of a TCP upload -------------------------------------------
rx() { # TUNNEL: packets mt sent into it (mtctl tunnels counters)
	mtctl -o json tunnels acme | jq -r --arg t "$1" '.tunnels[] | select(.name == $t) | .counters.txPackets // 0'
}
gre2_before=$(rx gre2)
in_ns "$EYE" "$PY" "$TRAFFIC" upload 203.0.113.10 9000 12000000 2000000 \
	>"$T_DIR/upload.json" 2>"$T_DIR/upload.err" &
up_pid=$!
sleep 2
cut_at=$(date +%s%N)
cut_o1
tcheck "gre1 goes down after the cut" wait_for 5 state_is gre1 down
down_ms=$((($(date +%s%N) - cut_at) / 1000000))
tcheck "kernel: gre1's route moves to 1000100, gre2 (200) carries 203.0.113.0/25 (${down_ms} ms after the cut, by polling)" \
	sh -c "[ '$(metric 203.0.113.0/25 gre1)' = 1000100 ] && [ '$(metric 203.0.113.0/25 gre2)' = 200 ]"
tcheck "Prometheus scraped the transition: mt_tunnel_transitions_total{tunnel=gre1,to=down} >= 1" \
	wait_for 20 prom_at_least 'mt_tunnel_transitions_total{customer="acme",tunnel="gre1",to="down"}' 1
tcheck "Prometheus: mt_tunnel_state of gre1 is 2 (down)" \
	wait_for 5 prom_at_least 'mt_tunnel_state{customer="acme",tunnel="gre1"}' 2
tcheck "Prometheus: mt_health_plans_total >= 1" \
	wait_for 5 prom_at_least 'mt_health_plans_total' 1
wait "$up_pid"
up_rc=$?
tcheck "the TCP upload completed intact across the failover: $(cat "$T_DIR/upload.json")" \
	test "$up_rc" -eq 0
tcheck "the upload moved to gre2 ($gre2_before -> $(rx gre2) packets)" \
	test "$(rx gre2)" -gt $((gre2_before + 100))

# ---- recovery, only after the hysteresis ---------------------------------
mend_o1
sleep 1.5
tcheck "1.5 s after the repair gre1 is not back yet (state $(state gre1), metric $(metric 203.0.113.0/25 gre1))" \
	sh -c "[ '$(state gre1)' != healthy ] && [ '$(metric 203.0.113.0/25 gre1)' != 100 ]"
tcheck "gre1 goes degraded first (3 successes): metric 500100" \
	wait_for 5 metric_is 203.0.113.0/25 gre1 500100
tcheck "gre1 healthy again after 30 clean probes, back at metric 100" \
	wait_for 20 metric_is 203.0.113.0/25 gre1 100
history_is() { # TUNNEL JQ_ARRAY: the states entered, newest first
	mtctl -o json tunnels acme | jq -e --arg t "$1" --argjson w "$2" \
		'.tunnels[] | select(.name == $t) | [.health.history[].to][0:($w | length)] == $w' >/dev/null
}
tcheck "gre1's history: down, degraded, healthy" \
	history_is gre1 '["healthy", "degraded", "down"]'

# ---- the fast loop while the agent is paused ------------------------------
setup mtctl pause >/dev/null
cut_o1
tcheck "paused: gre1 still goes down and its route still moves" \
	wait_for 5 metric_is 203.0.113.0/25 gre1 1000100

# ---- an agent restart does not send traffic into the dead tunnel ---------
kill -9 "$T_AGENT_PID"
wait "$T_AGENT_PID" 2>/dev/null
( for _ in $(seq 60); do metric 203.0.113.0/25 gre1; sleep 0.05; done ) >"$T_DIR/metrics_during_restart" &
watch_pid=$!
start_agent
wait "$watch_pid"
tcheck "through kill -9 and restart gre1's route never came back to 100 ($(sort -u "$T_DIR/metrics_during_restart" | tr '\n' ' '))" \
	sh -c "! grep -qx 100 '$T_DIR/metrics_during_restart'"
tcheck "the restarted agent starts gre1 down (read from the kernel's routes)" \
	state_is gre1 down
grep -q "starts down" "$T_DIR/agent.log" && ok "agent log: tunnel acme/gre1 starts down" ||
	fail "agent log: no 'starts down' line"
mend_o1
tcheck "and recovers after the restart" wait_for 20 metric_is 203.0.113.0/25 gre1 100

# ---- a store outage: probes and steering go on ---------------------------
# The agent on an etcd store (issue 6's backend), then etcd frozen
# (SIGSTOP: connections hang, as with a partition): a cut tunnel is still
# steered around and mended, and the agent still answers.
if command -v etcd >/dev/null && command -v etcdctl >/dev/null; then
	eport=$((20000 + $$ % 10000))
	in_metal etcd --name ht --data-dir "$T_DIR/etcd" \
		--listen-client-urls "http://127.0.0.1:$eport" \
		--advertise-client-urls "http://127.0.0.1:$eport" \
		--listen-peer-urls "http://127.0.0.1:$((eport + 1))" \
		--initial-advertise-peer-urls "http://127.0.0.1:$((eport + 1))" \
		--initial-cluster "ht=http://127.0.0.1:$((eport + 1))" \
		>"$T_DIR/etcd.log" 2>&1 &
	ETCD_PID=$!
	BG+=("$ETCD_PID")
	etcd_up() { in_metal etcdctl --endpoints "127.0.0.1:$eport" endpoint health >/dev/null 2>&1; }
	if ! wait_for 20 etcd_up; then
		fail "etcd did not start (see etcd.log)"
	else
		ES="etcd://127.0.0.1:$eport/mt-ht/"
		stop_pid "$T_AGENT_PID"
		nsenter --net="/run/netns/$T_METAL" "$MT_AGENT" -c "$T_METAL_JSON" \
			-s "$ES" -l "lmdb:$T_DIR/etcd-lkg" $T_AGENT_ARGS >>"$T_DIR/agent.log" 2>&1 &
		T_AGENT_PID=$!
		wait_for 10 mtctl status >/dev/null
		acme_json >"$T_DIR/acme.json"
		tcheck "the agent on etcd takes acme" mtctl put "$T_DIR/acme.json"
		tcheck "acme in etcd (etcdctl)" sh -c "nsenter --net=/run/netns/$T_METAL etcdctl --endpoints 127.0.0.1:$eport get --prefix /mt-ht/ --keys-only | grep -q customers/1"
		wait_for 15 metric_is 203.0.113.0/25 gre1 100
		wait_for 15 ok_gt gre1 10
		kill -STOP "$ETCD_PID"
		cut_o1
		tcheck "etcd frozen: gre1 still goes down and its route moves" \
			wait_for 5 metric_is 203.0.113.0/25 gre1 1000100
		mend_o1
		tcheck "etcd frozen: gre1 recovers after the hysteresis" \
			wait_for 20 metric_is 203.0.113.0/25 gre1 100
		tcheck "etcd frozen: mtctl tunnels still answers" \
			sh -c "'$MTCTL' -i '$T_INST' tunnels acme >/dev/null"
		kill -CONT "$ETCD_PID"
	fi
else
	fail "etcd is not installed (deploy/install-deps.sh): the store outage check cannot run"
fi

# ---- bad health-check configs: refused, nothing changes ------------------
before=$(ip -n "$ACME" -json route show table 2001 | jq -c 'sort_by(.dst, .metric)')
bad() { # DESC HEALTH_JSON WANT
	acme_json "$2" >"$T_DIR/bad.json"
	out=$(mtctl put "$T_DIR/bad.json" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] && grep -qF "$3" <<<"$out"; then
		ok "bad config refused ($1): $out"
	else
		fail "bad config ($1): rc $rc: $out"
	fi
}
bad "unknown type" '{"type": "tcp"}' 'tunnels[0] "gre1": health_check.type "tcp": must be reply or request'
bad "target outside the tunnel" '{"target": "10.9.9.9"}' 'health_check.target "10.9.9.9": outside the tunnel'"'"'s addresses'
bad "rate unknown" '{"rate": "ludicrous"}' 'health_check.rate "ludicrous": must be low, mid or high'
bad "interval out of range" '{"intervalMs": 5}' 'health_check.interval_ms 5: out of range 10-60000'
bad "timeout out of range" '{"timeoutMs": 100000}' 'health_check.timeout_ms 100000: out of range 10-10000'
after=$(ip -n "$ACME" -json route show table 2001 | jq -c 'sort_by(.dst, .metric)')
tcheck "the kernel's routes did not change" test "$before" = "$after"

# ---- a changed health check takes effect; deletion leaves nothing --------
acme_json '{"rate": "high"}' >"$T_DIR/acme.json"
setup mtctl put "$T_DIR/acme.json" >/dev/null
tcheck "gre1 probed at the high rate (50 ms)" \
	wait_for 5 interval_is gre1 50
setup mtctl delete acme >/dev/null
tcheck "customer deleted: its namespace is gone" \
	wait_for 10 sh -c "! ip netns list | grep -q '^$ACME'"
tcheck "and its veth with it (no socket kept the namespace alive)" \
	wait_for 10 sh -c "! ip -n $T_METAL link show $ACME >/dev/null 2>&1"

mt_test_done
