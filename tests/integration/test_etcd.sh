#!/usr/bin/env bash
# Many metals, one source of truth: a real 3-member etcd cluster on
# loopback and 3 lab metals (instances e1, e2, e3: each its own metal
# namespace with mt-fastpath, and its own mt-agent on the etcd store with a
# local last-known-good copy). Checks, each against the kernels directly
# (ip -json): all 3 converge to the same state; a member killed interrupts
# nothing; with every member dead the metals keep serving, and an agent
# restarted meanwhile converges from its last-known-good copy; the members
# come back and the metals catch up; a compaction while one agent is down
# makes it resync when it restarts; a corrupt value affects only its own
# customer, on every metal, and is visible in mtctl and the metrics.
# Cleanup leaves no etcd process and no namespace. Prints ok:/FAIL: lines;
# exit 1 on any failure, 77 when not root or etcd is missing.
set -u
T_HERE=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: needs root (network namespaces)"
	exit 77
fi
for tool in etcd etcdctl jq curl; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed (deploy/install-deps.sh)"; exit 77; }
done
MTCTL="$MT_BUILD/cli/mtctl"
MT_AGENT="$MT_BUILD/agent/mt-agent"
MT_FASTPATH="$MT_BUILD/fastpath/mt-fastpath"
T=$(mktemp -d /tmp/mt-test-etcd-XXXXXX)
export MT_RUN_DIR="$T/run"
mkdir -p "$MT_RUN_DIR"
CHECKS=0 FAILS=0
declare -a EPID=() FPID=() APID=()

log() { printf '%s %s\n' "$(date +%T.%3N)" "$*" >&2; }
ok() { CHECKS=$((CHECKS + 1)); echo "ok: $*"; }
fail() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "FAIL: $*"; }
tcheck() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}
wait_for() {
	local deadline=$(($(date +%s%N) / 1000000 + $1 * 1000))
	shift
	until "$@" 2>/dev/null; do
		[ $(($(date +%s%N) / 1000000)) -lt "$deadline" ] || return 1
		sleep 0.1
	done
}
stop_pid() {
	local pid=${1:-}
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}
cleanup() {
	local rc=$?
	for i in 1 2 3; do stop_pid "${APID[$i]:-}"; stop_pid "${FPID[$i]:-}"; done
	for i in 0 1 2; do stop_pid "${EPID[$i]:-}"; done
	pkill -9 -f "$T/" 2>/dev/null
	if [ $rc -ne 0 ] || [ "$FAILS" -ne 0 ]; then
		for f in "$T"/*.log; do echo "---- $f (last 25 lines)" >&2; tail -n 25 "$f" >&2; done
	fi
	for ns in $(ip netns list | awk '{print $1}' | grep -E '^(mte[123]-|mtx-e[123]($|-))'); do
		ip netns del "$ns" 2>/dev/null
	done
	for i in 1 2 3; do
		mountpoint -q "$MT_RUN_DIR/bpf" && umount -l "$MT_RUN_DIR/bpf"
	done
	[ "${MT_TEST_KEEP:-0}" = 1 ] && echo "kept $T" >&2 || rm -rf "$T"
	[ "$FAILS" -eq 0 ] && [ $rc -eq 0 ] || exit 1
	exit 0
}
trap cleanup EXIT

# ---- the etcd cluster --------------------------------------------------
port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
BASE=$((30000 + ($$ % 1000) * 8))
for _ in $(seq 20); do
	okp=1
	for p in $(seq "$BASE" $((BASE + 7))); do port_free "$p" || okp=0; done
	[ $okp -eq 1 ] && break
	BASE=$((30000 + (BASE - 30000 + 8 * 97) % 8000))
done
CPORT=("$BASE" $((BASE + 1)) $((BASE + 2)))
PPORT=($((BASE + 3)) $((BASE + 4)) $((BASE + 5)))
CLUSTER="m0=http://127.0.0.1:${PPORT[0]},m1=http://127.0.0.1:${PPORT[1]},m2=http://127.0.0.1:${PPORT[2]}"
ALL="127.0.0.1:${CPORT[0]},127.0.0.1:${CPORT[1]},127.0.0.1:${CPORT[2]}"
PREFIX="/mt-e2e-$$/"
URL="etcd://$ALL$PREFIX"
start_member() {
	local i=$1 state=${2:-new}
	etcd --name "m$i" --data-dir "$T/m$i" \
		--listen-client-urls "http://127.0.0.1:${CPORT[$i]}" \
		--advertise-client-urls "http://127.0.0.1:${CPORT[$i]}" \
		--listen-peer-urls "http://127.0.0.1:${PPORT[$i]}" \
		--initial-advertise-peer-urls "http://127.0.0.1:${PPORT[$i]}" \
		--initial-cluster "$CLUSTER" --initial-cluster-state "$state" \
		--initial-cluster-token "mt-e2e-$$" >>"$T/etcd-m$i.log" 2>&1 &
	EPID[$i]=$!
}
ectl() { etcdctl --endpoints="$ALL" --command-timeout=5s "$@"; }
healthy() { ectl endpoint health >/dev/null 2>&1; }
for i in 0 1 2; do start_member "$i"; done
tcheck "3-member etcd cluster on 127.0.0.1:$BASE-$((BASE + 5))" wait_for 30 healthy

# ---- three metals ---------------------------------------------------------
# Metal i: namespace mtx-ei (mt-fastpath inside), an uplink to mtx-ei-up;
# its agent runs beside etcd on the loopback (it does no kernel network
# I/O of its own besides probing, which enters the customer namespaces).
MPORT=$((BASE + 6))
start_fastpath() {
	local i=$1
	nsenter --net="/run/netns/mtx-e$i" "$MT_FASTPATH" -c "$T/metal$i.json" \
		>>"$T/fastpath$i.log" 2>&1 &
	FPID[$i]=$!
	wait_for 10 test -S "$MT_RUN_DIR/e$i/fastpath.sock"
}
start_agent() {
	local i=$1 extra=()
	[ "$i" = 1 ] && extra=(-m "127.0.0.1:$MPORT")
	"$MT_AGENT" -c "$T/metal$i.json" -s "$URL" -l "lmdb:$T/lkg$i" "${extra[@]}" \
		>>"$T/agent$i.log" 2>&1 &
	APID[$i]=$!
	wait_for 10 "$MTCTL" -i "e$i" status >/dev/null
}
for i in 1 2 3; do
	ip netns add "mtx-e$i"
	ip netns add "mtx-e$i-up"
	ip -n "mtx-e$i" link add uplink type veth peer name eth0 netns "mtx-e$i-up"
	ip -n "mtx-e$i" link set lo up
	ip -n "mtx-e$i" link set uplink up
	ip -n "mtx-e$i" addr add 198.18.0.2/24 dev uplink
	ip -n "mtx-e$i-up" link set eth0 up
	ip -n "mtx-e$i-up" addr add 198.18.0.1/24 dev eth0
	ip -n "mtx-e$i" route add default via 198.18.0.1
	cat >"$T/metal$i.json" <<-JSON
	{"instance": "e$i", "ownPrefixes": ["198.18.0.0/24"], "reconcileIntervalS": 300}
	JSON
	start_fastpath "$i" || fail "fastpath e$i did not start"
	start_agent "$i" || fail "agent e$i did not start"
done
mtctl() { local i=$1; shift; "$MTCTL" -i "e$i" "$@"; }

# the customers: c1..c3 (a prefix and an endpoint each)
mkdir -p "$T/cust"
for c in 1 2 3; do
	cat >"$T/cust/c$c.json" <<-JSON
	{"id": $c, "name": "c$c", "prefixes": ["203.0.113.$((c * 32))/27"],
	 "tunnelEndpoints": ["192.0.2.$c"]}
	JSON
done
# c3 has a tunnel toward a router nobody answers for: its probes fail, and
# keep going out, on every metal (health checking is the metal's own)
cat >"$T/cust/c3.json" <<-JSON
{"id": 3, "name": "c3", "prefixes": ["203.0.113.96/27"], "tunnelEndpoints": ["192.0.2.3"],
 "tunnels": [{"name": "gre1", "edgeEndpoint": "192.0.2.3", "routerEndpoint": "198.51.100.77",
              "innerAddress": "10.9.0.0/31"}]}
JSON
probes_sent() { # METAL
	"$MTCTL" -i "e$1" -o json tunnels c3 2>/dev/null | jq -r '.tunnels[0].health.probesSent // "0"'
}
push_customers() { env MTCTL="$MTCTL" "$T_HERE/../../deploy/orchestrator/push" "$URL" "$T/cust" >/dev/null; }
tcheck "orchestrator push of 3 customers into etcd" push_customers

# kernel_state I: what metal I's kernel holds for the customers, in a form
# that is the same on every metal (routes of GRE_table, the customer
# namespaces and their addresses)
kernel_state() {
	local i=$1 ns
	ip -n "mtx-e$i" -json route show table 2000 | jq -c '[.[] | .dst] | sort'
	for ns in $(ip netns list | awk '{print $1}' | grep "^mte$i-" | sort); do
		echo "${ns#mte$i-}: $(ip -n "$ns" -json addr show | jq -c '[.[] | .addr_info[] | select(.scope == "global") | .local + "/" + (.prefixlen | tostring)] | sort')"
	done
}
n_customers() { ip netns list | awk '{print $1}' | grep -c "^mte$1-"; }
converged_with() { # N: every metal has N customer namespaces and the same state
	local s1
	for i in 1 2 3; do [ "$(n_customers "$i")" = "$1" ] || return 1; done
	s1=$(kernel_state 1)
	[ "$s1" = "$(kernel_state 2)" ] && [ "$s1" = "$(kernel_state 3)" ]
}
tcheck "all 3 metals converge to the same kernel state (3 customers)" wait_for 30 converged_with 3
kernel_state 1 >&2

# ---- one member killed: no interruption ----------------------------------
stop_pid "${EPID[0]}"
EPID[0]=
cat >"$T/c4.json" <<-JSON
{"id": 4, "name": "c4", "prefixes": ["203.0.113.128/27"], "tunnelEndpoints": ["192.0.2.4"]}
JSON
tcheck "member m0 killed: a put through metal e2's agent still works" mtctl 2 put "$T/c4.json"
tcheck "and all 3 metals apply it" wait_for 20 converged_with 4

# ---- every member dead: the metals keep serving ----------------------------
stop_pid "${EPID[1]}"
stop_pid "${EPID[2]}"
EPID[1]= EPID[2]=
tcheck "etcd all dead: every agent still answers (mtctl status)" \
	sh -c "'$MTCTL' -i e1 status >/dev/null && '$MTCTL' -i e2 status >/dev/null && '$MTCTL' -i e3 status >/dev/null"
tcheck "and the kernels keep their state" converged_with 4
p0=(x "$(probes_sent 1)" "$(probes_sent 2)" "$(probes_sent 3)")
sleep 2
for i in 1 2 3; do
	p1=$(probes_sent "$i")
	tcheck "etcd all dead: metal e$i keeps health-checking (c3/gre1 probes ${p0[$i]} -> $p1, state $("$MTCTL" -i "e$i" -o json tunnels c3 | jq -r '.tunnels[0].health.state'))" \
		test "$p1" -gt "${p0[$i]}"
done
stop_pid "${APID[3]}"
start_agent 3
tcheck "agent e3 restarted with etcd down converges from its last-known-good copy" \
	wait_for 20 converged_with 4
grep -q "last-known-good" "$T/agent3.log" && ok "agent e3's log: customers from the last-known-good copy" ||
	fail "agent e3's log does not mention the last-known-good copy"

# ---- the members come back: the metals catch up ---------------------------
for i in 0 1 2; do start_member "$i" existing; done
tcheck "the members are back" wait_for 30 healthy
cat >"$T/c5.json" <<-JSON
{"id": 5, "name": "c5", "prefixes": ["203.0.113.160/27"], "tunnelEndpoints": ["192.0.2.5"]}
JSON
# (a write fails fast while the client has no member; the first ones
# after the outage may come before it has found one again)
put_c5() { mtctl 1 put "$T/c5.json" >/dev/null 2>&1; }
tcheck "a put through metal e1 after the outage" wait_for 15 put_c5
tcheck "every metal catches up (5 customers)" wait_for 30 converged_with 5

# ---- compaction while an agent is down: it resyncs -------------------------
stop_pid "${APID[2]}"
mtctl 1 delete c5 >/dev/null
rev=$(ectl get /none -w json | jq -r '.header.revision')
tcheck "compacted to revision $rev while agent e2 was down" ectl compact "$rev"
start_agent 2
tcheck "agent e2 restarts and converges (c5 gone everywhere)" wait_for 30 converged_with 4

# ---- a corrupt value: only its own customer ----------------------------------
before=$(kernel_state 1)
printf 'not a protobuf' | ectl put "${PREFIX}v1/customers/2" >/dev/null
rejected_on() { mtctl "$1" -o json customers | jq -e '.status[] | select(.name == "c2" or .id == 2) | select(.state == "REJECTED" or .state == "rejected")' >/dev/null; }
for i in 1 2 3; do
	tcheck "metal e$i: customer 2 rejected (mtctl customers)" wait_for 10 rejected_on "$i"
done
after=$(kernel_state 1)
tcheck "kernel state on metal e1 unchanged by the corrupt value" test "$before" = "$after"
tcheck "the others still take changes (c1 gets a second prefix everywhere)" sh -c "
	sed 's|\"prefixes\": \[\"203.0.113.32/27\"\]|\"prefixes\": [\"203.0.113.32/27\", \"198.51.100.0/24\"]|' '$T/cust/c1.json' >'$T/c1b.json' &&
	'$MTCTL' -i e1 put '$T/c1b.json' >/dev/null"
has_c1b() { for i in 1 2 3; do ip -n "mtx-e$i" route show table 2000 | grep -q 198.51.100.0/24 || return 1; done; }
tcheck "c1's change reached all 3 metals" wait_for 20 has_c1b
tcheck "metrics: mt_agent_customers_rejected 1 on metal e1" \
	sh -c "curl -s http://127.0.0.1:$MPORT/metrics | grep -qx 'mt_agent_customers_rejected 1'"

# ---- the orchestrator's heartbeat: each metal's replication lag ----------
tcheck "deploy/orchestrator/heartbeat writes a heartbeat" \
	"$T_HERE/../../deploy/orchestrator/heartbeat" --once "$URL"
lag_ok() {
	curl -s "http://127.0.0.1:$MPORT/metrics" |
		awk '$1 == "mt_agent_heartbeat_age_seconds" { f = 1; exit !($2 >= 0 && $2 < 10) } END { if (!f) exit 1 }'
}
tcheck "metal e1 reports its replication lag (mt_agent_heartbeat_age_seconds $(curl -s "http://127.0.0.1:$MPORT/metrics" | awk '$1 == "mt_agent_heartbeat_age_seconds" { print $2 }'))" \
	wait_for 10 lag_ok

# ---- cleanup is checked by the trap (no etcd, no namespace) ---------------
echo "$CHECKS checks, $FAILS failed"
[ "$FAILS" -eq 0 ]
