#!/usr/bin/env bash
# Pause/resume: while paused, store changes are accepted but not applied,
# drift is not repaired (not even by the periodic reconcile, set to 1 s
# here), status says paused and plan shows what is pending. An explicit
# `mtctl reconcile` while paused does apply (observed behaviour: the
# operator's explicit command wins, for the customer it names or for all;
# the agent stays paused). Resume converges everything.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_checks.sh"
T_RECONCILE_S=1
mt_test_init tp
start_daemons
M=$T_METAL

gen_customers 1 2 "$T_DIR/base.json" "$T_DIR/expect_base.json"
check "put 2 customers" mtctl put "$T_DIR/base.json"
check_converges "2 customers converge" 30 "$T_DIR/expect_base.json"

paused_is() { test "$(status_get 's.get("paused", False)')" = "$1"; }
rev_ge() { test "$(store_revision)" -ge "$1"; }
drift_gt() { test "$(status_get 's.get("driftEvents", "0")')" -gt "$1"; }
not_state() { ! test_state "$1" "$2"; }
# plan_for_c1_only: `mtctl plan c1` shows nothing of c3 or of c2's route
plan_for_c1_only() {
	local p
	p=$(mtctl plan c1) || return 1
	grep -q '198\.51\.0\.112/28' <<<"$p" && ! grep -E '^[+-]' <<<"$p" | grep -q -e 'c3' -e '198\.51\.0\.32/28'
}
plan_has() { mtctl plan | grep -qE -- "$1"; }
# A negative check needs the agent to have had its chance: the periodic
# reconcile runs every second, so let a few of its ticks pass.
let_ticks_pass() { sleep 2.5; } # not a correctness condition (see above)

out=$(mtctl -o json pause)
check "pause answers {paused: true}" \
	python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1]).get("paused") is True else 1)' "$out"
check "status says paused" paused_is True
check "status table says paused" bash -c "$MTCTL -i $T_INST status | grep -Eiq '^reconciling: +paused'"
check "pausing twice is fine" mtctl pause >/dev/null

# ---- a change while paused is stored, not applied ----
rev0=$(store_revision)
customer_json 1 c1 "198.51.0.16/28,198.51.0.112/28" 192.0.2.1 >"$T_DIR/c1b.json"
customer_json 3 c3 "198.51.0.48/28" 192.0.2.3 >"$T_DIR/c3.json"
check "put a change to c1 while paused" mtctl put "$T_DIR/c1b.json"
check "put a new c3 while paused" mtctl put "$T_DIR/c3.json"
check "the agent sees the new store revision" wait_for 10 rev_ge $((rev0 + 2))
check "applied revision stays behind" \
	test "$(status_get 's.get("appliedRevision", "0")')" -lt "$(store_revision)"
let_ticks_pass
check "the kernel is unchanged (still the 2 old customers)" \
	kcheck "$T_DIR/expect_base.json"
check "c3 is not converged" not_state 3 converged
mtctl status >&2
check "plan shows the pending new namespace" plan_has '^\+ create netns mttp-c3'
check "plan shows the pending c1 route" plan_has '^\+ .*198\.51\.0\.112/28'
mtctl plan >&2
check "plan --exit-code returns 10" \
	bash -c "$MTCTL -i $T_INST plan --exit-code >/dev/null; test \$? -eq 10"
check "plan for c1 alone shows only c1" plan_for_c1_only
check "still paused after plan" paused_is True

# ---- drift is not repaired while paused ----
d0=$(status_get 's.get("driftEvents", "0")')
ip -n "$M" route del 198.51.0.32/28 table 2000
check "the drift event reaches the agent" wait_for 10 drift_gt "$d0"
let_ticks_pass
check "the hand-deleted route is not repaired while paused" \
	bash -c "! ip -n $M route show table 2000 198.51.0.32/28 | grep -q ."
check "plan shows the route to repair" plan_has '^\+ .*198\.51\.0\.32/28'

# ---- an explicit reconcile while paused ----
out=$(mtctl reconcile c3 2>&1) && rc=0 || rc=$?
log "mtctl reconcile c3 while paused: exit $rc: $out"
check "reconcile c3 while paused succeeds" test "$rc" -eq 0
merge_expect "$T_DIR/expect_c3only.json" "$T_DIR/expect_base.json" <(customer_json 3 c3 "198.51.0.48/28" 192.0.2.3 | sed 's/^/[/;s/$/]/')
check "c3 now exists" ip netns pids mttp-c3
check "but c1's change is still pending" plan_has '^\+ .*198\.51\.0\.112/28'
check "and c2's route still missing" plan_has '^\+ .*198\.51\.0\.32/28'
check "still paused after reconcile" paused_is True
out=$(mtctl reconcile 2>&1) && rc=0 || rc=$?
log "mtctl reconcile (all) while paused: exit $rc: $out"
check "full reconcile while paused succeeds" test "$rc" -eq 0
merge_expect "$T_DIR/expect_all.json" "$T_DIR/expect_base.json" \
	<(customer_json 1 c1 "198.51.0.16/28,198.51.0.112/28" 192.0.2.1 | sed 's/^/[/;s/$/]/') \
	<(customer_json 3 c3 "198.51.0.48/28" 192.0.2.3 | sed 's/^/[/;s/$/]/')
check "the explicit reconcile applied everything" kcheck "$T_DIR/expect_all.json"
check "still paused after the full reconcile" paused_is True
check "status: applied revision caught up with the store" \
	test "$(status_get 's.get("appliedRevision", "0")')" = "$(store_revision)"
check "status: every customer converged" all_converged
check "no-op plan after it" mtctl plan --exit-code >/dev/null

# ---- resume ----
# one more change and one more drift while paused, then resume
check "delete c2 while paused" mtctl delete c2
ip -n "$M" link set mttp-c1 down
let_ticks_pass
check "c2 still in the kernel while paused" ip netns pids mttp-c2
out=$(mtctl -o json resume)
check "resume answers {paused: false}" \
	python3 -c 'import json,sys; sys.exit(0 if not json.loads(sys.argv[1]).get("paused") else 1)' "$out"
check "status says running" paused_is False
python3 -c 'import json,sys; print(json.dumps([c for c in json.load(open(sys.argv[1])) if c["id"] != 2]))' \
	"$T_DIR/expect_all.json" >"$T_DIR/expect_end.json"
check_converges "everything converges after resume" 30 "$T_DIR/expect_end.json"
check "resuming twice is fine" mtctl resume >/dev/null
check "no-op plan at the end" mtctl plan --exit-code >/dev/null

mt_test_done
