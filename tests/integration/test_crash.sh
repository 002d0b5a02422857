#!/usr/bin/env bash
# Crashes: kill -9 mt-agent in the middle of large reconciles, and mt-fastpath
# while it is down and while it is applying; after a restart everything
# converges with nothing leaked and nothing missing. A second mt-agent of the
# same instance is refused without disturbing the first. While mt-fastpath
# is down, mtctl status still answers at once and says so.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_checks.sh"
T_RECONCILE_S=300 # repairs must come from restarts, not the periodic timer
mt_test_init tk
start_daemons

N_BIG=100
n_ns() { ip netns list 2>/dev/null | awk '{print $1}' | grep -c "^$T_PREFIX" || true; }
# kill_when_ns_count CMP N PIDVAR: SIGKILLs the daemon in PIDVAR as soon as
# the number of this instance's namespaces is CMP N (-ge/-le), or after 3 s;
# logs how far the apply had got.
kill_when_ns_count() {
	local cmp=$1 n=$2 var=$3 deadline=$(($(now_ms) + 3000)) have
	while have=$(n_ns); ! [ "$have" "$cmp" "$n" ]; do
		[ "$(now_ms)" -lt "$deadline" ] || break
		sleep 0.01
	done
	kill9 "$var"
	log "killed $var with $have namespaces present (waited for $cmp $n), now $(n_ns)"
}
mstore() { "$MTCTL" -i "$T_INST" --store "$T_STORE" "$@"; }

gen_customers 1 2 "$T_DIR/base.json" "$T_DIR/expect_base.json"
check "put 2 customers" mtctl put "$T_DIR/base.json"
check_converges "2 customers converge" 30 "$T_DIR/expect_base.json"

# ---- (a1) one store transaction of $N_BIG customers; kill -9 the agent
# while it applies them (the first of their namespaces has appeared) ----
gen_customers 3 $((N_BIG + 2)) "$T_DIR/big.json" "$T_DIR/expect_big.json"
merge_expect "$T_DIR/expect_all.json" "$T_DIR/expect_base.json" "$T_DIR/expect_big.json"
check "store put of $N_BIG customers in one transaction" \
	mstore --metal "$T_METAL_JSON" put "$T_DIR/big.json" >/dev/null
kill_when_ns_count -ge 3 T_AGENT_PID
check "agent restarts" start_agent
check_converges "all $((N_BIG + 2)) converge after the restart" 120 "$T_DIR/expect_all.json"

# ---- a second agent of the same instance is refused ----
before=$(status_get 's["startedMs"]')
out=$(timeout 20 nsenter --net="/run/netns/$T_METAL" "$MT_AGENT" \
	-c "$T_METAL_JSON" -s "$T_STORE" 2>&1) && rc=0 || rc=$?
log "second agent: exit $rc: $out"
check "second agent exits non-zero" test "$rc" -ne 0 -a "$rc" -ne 124
check "second agent says another instance runs" \
	grep -qi "another mt-agent" <<<"$out"
check "first agent still running" kill -0 "$T_AGENT_PID"
check "first agent still answers (same start time)" \
	test "$(status_get 's["startedMs"]')" = "$before"
check "API socket still there" test -S "$MT_RUN_DIR/$T_INST/agent.sock"

# ---- (a2) $N_BIG API puts (each customer gets a second prefix), the
# agent killed once about a third of them reached it: whatever reached the
# store converges ----
GEN_EXTRA=1 gen_customers 3 $((N_BIG + 2)) "$T_DIR/big2.json" "$T_DIR/expect_big2.json"
written0=$(agent_log_count "written to the store")
mtctl put "$T_DIR/big2.json" >"$T_DIR/put2.out" 2>&1 &
put_pid=$!
writes_ge() { test "$(agent_log_count "written to the store")" -ge "$1"; }
wait_for 30 writes_ge $((written0 + N_BIG / 3)) || true
kill9 T_AGENT_PID
wait "$put_pid" && put_rc=0 || put_rc=$?
log "mtctl put while the agent died: exit $put_rc, $(grep -c 'stored at' "$T_DIR/put2.out") stored; $(tail -n 1 "$T_DIR/put2.out")"
check "agent restarts" start_agent
store_expect "$T_DIR/expect_store.json"
log "store holds $(python3 -c '
import json, sys
cs = json.load(open(sys.argv[1]))
print("%d customers, %d of them with the second prefix" % (len(cs), sum(len(c["prefixes"]) > 1 for c in cs)))' "$T_DIR/expect_store.json")"
check_converges "what the store holds converges after the restart" 120 "$T_DIR/expect_store.json"
check "the rest of the put goes through" mtctl put "$T_DIR/big2.json" >/dev/null
merge_expect "$T_DIR/expect_all2.json" "$T_DIR/expect_base.json" "$T_DIR/expect_big2.json"
check_converges "all converge with their second prefix" 120 "$T_DIR/expect_all2.json"

# ---- (b, c) kill -9 the fastpath; change customers while it is down ----
kill9 T_FASTPATH_PID
check "agent notices the fastpath is gone" \
	wait_for 10 fastpath_connected_is False
t0=$(now_ms)
status_out=$(mtctl --timeout 2000 status) && rc=0 || rc=$?
log "mtctl status with the fastpath down: exit $rc in $(elapsed_ms "$t0") ms"
check "mtctl status answers while the fastpath is down" test "$rc" -eq 0
check "status shows the fastpath disconnected" \
	grep -Eq '^fastpath: +NOT CONNECTED' <<<"$status_out"
grep -E '^(fastpath|revision):' <<<"$status_out" >&2 || true
for cmd in "customers" "-o json status"; do
	t0=$(now_ms)
	check "mtctl $cmd answers within 2 s with the fastpath down" \
		mtctl --timeout 2000 $cmd >/dev/null
	log "mtctl $cmd: $(elapsed_ms "$t0") ms"
done
rev0=$(store_revision)
customer_json 1 c1 "198.51.0.16/28,203.0.113.0/28" 192.0.2.1 >"$T_DIR/c1.json"
check "put a changed c1 while the fastpath is down" mtctl put "$T_DIR/c1.json"
check "delete c2 while the fastpath is down" mtctl delete c2
check "the changes reached the store" test "$(store_revision)" -gt "$rev0"
check "the kernel has not changed yet (c2 still there)" \
	ip netns pids "${T_PREFIX}c2"
check "mtctl plan fails cleanly (exit 1) without the fastpath" \
	bash -c "$MTCTL -i $T_INST --timeout 5000 plan >/dev/null 2>&1; test \$? -eq 1"
check "fastpath restarts" start_fastpath
store_expect "$T_DIR/expect_b.json"
check_converges "the agent reconnects and converges to the changes" 60 "$T_DIR/expect_b.json"
check "status shows the fastpath connected again" fastpath_connected_is True

# ---- (b2) kill -9 the fastpath in the middle of a large apply: deleting
# $N_BIG customers (one store transaction), then creating them again ----
ids=$(seq 3 $((N_BIG + 2)))
check "store delete of $N_BIG customers in one transaction" \
	mstore delete $ids >/dev/null
kill_when_ns_count -le $((N_BIG - 10)) T_FASTPATH_PID
check "fastpath restarts" start_fastpath
store_expect "$T_DIR/expect_b2.json"
check_converges "the half-done deletion completes" 120 "$T_DIR/expect_b2.json"

check "store put of $N_BIG customers in one transaction" \
	mstore --metal "$T_METAL_JSON" put "$T_DIR/big.json" >/dev/null
kill_when_ns_count -ge 10 T_FASTPATH_PID
check "fastpath restarts" start_fastpath
store_expect "$T_DIR/expect_b3.json"
check_converges "the half-done creation completes" 120 "$T_DIR/expect_b3.json"
check "no-op plan at the end" mtctl plan --exit-code >/dev/null

mt_test_done
