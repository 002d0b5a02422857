#!/usr/bin/env bash
# mtctl against the real daemons: every read command in table and JSON form,
# plan and --exit-code, delete by name and id, unknown customers, usage
# errors, and the exit codes and messages when the agent is stopped, stuck
# or not running (docs/mtctl.md).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_checks.sh"
mt_test_init tm
start_daemons

gen_customers 1 3 "$T_DIR/base.json" "$T_DIR/expect_base.json"
check "put 3 customers" mtctl put "$T_DIR/base.json"
check_converges "3 customers converge" 30 "$T_DIR/expect_base.json"

# run_rc WANT OUT_VAR CMD...: runs CMD, stores stdout+stderr in OUT_VAR,
# true when it exited WANT.
out=
run_rc() {
	local _want=$1 _var=$2 _out _rc
	shift 2
	_out=$("$@" 2>&1) && _rc=0 || _rc=$?
	printf -v "$_var" '%s' "$_out"
	[ "$_rc" -eq "$_want" ] || { log "exit $_rc, wanted $_want: $* -> $_out"; return 1; }
}
# json_ok EXPR: stdin is one JSON document and python EXPR over it (d) holds.
json_ok() {
	python3 -c '
import json, sys
d = json.load(sys.stdin)
ok = eval(sys.argv[1])
if not ok:
    print("JSON check failed: %s on %s" % (sys.argv[1], json.dumps(d)[:500]), file=sys.stderr)
sys.exit(0 if ok else 1)' "$1"
}
jpipe() { local expr=$1; shift; "$@" | json_ok "$expr"; }
# jcheck DESC EXPR CMD...: CMD's stdout is JSON satisfying EXPR
jcheck() {
	local what=$1 expr=$2
	shift 2
	check "$what" jpipe "$expr" "$@"
}

# ---- status ----
check "status: exit 0" run_rc 0 out mtctl status
check "status table: instance" grep -Eq '^instance: +tm$' <<<"$out"
check "status table: running" grep -Eq '^reconciling: +running$' <<<"$out"
check "status table: fastpath connected" grep -Eq '^fastpath: +connected$' <<<"$out"
check "status table: customers line" grep -Eq '^customers: +3 \(0 rejected\)$' <<<"$out"
check "status table: header" grep -Eq '^ID +NAME +STATE +REVISION +OPS +ERROR$' <<<"$out"
check "status table: a row per customer" test "$(grep -Ec '^[123] +c[123] +converged' <<<"$out")" = 3
check "status table: no trailing whitespace" bash -c '! grep -q "[[:space:]]$"' <<<"$out"
jcheck "status -o json: fields" \
	'd["instance"] == "tm" and d.get("fastpathConnected") is True and not d.get("paused") and int(d["storeRevision"]) >= 3 and d["storeRevision"] == d["appliedRevision"] and d["customers"] == 3 and "startedMs" in d' \
	"$MTCTL" -i tm -o json status
jcheck "status -o json: customerStatus" \
	'[(c["id"], c["name"], c["state"]) for c in d["customerStatus"]] == [(1, "c1", "converged"), (2, "c2", "converged"), (3, "c3", "converged")]' \
	"$MTCTL" -i tm -o json status

# ---- customers ----
check "customers: exit 0" run_rc 0 out mtctl customers
check "customers table: header" grep -Eq '^ID +NAME +PREFIXES +ENDPOINTS +STATE$' <<<"$out"
check "customers table: c2 row" grep -Eq '^2 +c2 +198\.51\.0\.32/28 +192\.0\.2\.2 +converged$' <<<"$out"
check "customers list = customers" test "$(mtctl customers list)" = "$out"
jcheck "customers -o json" \
	'sorted(d) == ["customers", "status"] and [c["name"] for c in d["customers"]] == ["c1", "c2", "c3"] and d["customers"][0]["prefixes"] == ["198.51.0.16/28"] and d["customers"][0]["tunnelEndpoints"] == ["192.0.2.1"] and len(d["status"]) == 3' \
	"$MTCTL" -i tm -o json customers
check "customers show c2: exit 0" run_rc 0 out mtctl customers show c2
check "show c2: id" grep -Eq '^id: +2$' <<<"$out"
check "show c2: name" grep -Eq '^name: +c2$' <<<"$out"
check "show c2: prefix" grep -Eq '198\.51\.0\.32/28' <<<"$out"
check "show c2: state" grep -Eq 'converged' <<<"$out"
check "show 2 = show c2" test "$(mtctl customers show 2)" = "$out"
jcheck "customers show -o json: the Customer alone" \
	'd == {"id": 3, "name": "c3", "prefixes": ["198.51.0.48/28"], "tunnelEndpoints": ["192.0.2.3"]}' \
	"$MTCTL" -i tm -o json customers show c3

# ---- plan ----
check "plan when converged: exit 0" run_rc 0 out mtctl plan
check "plan when converged: nothing to do" \
	grep -q '^No changes: the kernel matches the configuration\.$' <<<"$out"
check "plan --exit-code when converged: 0" mtctl plan --exit-code
jcheck "plan -o json when converged: no ops" 'not d.get("ops")' \
	"$MTCTL" -i tm -o json plan
check "pause" mtctl pause
customer_json 4 c4 "198.51.0.64/28" >"$T_DIR/c4.json"
check "put c4 while paused" mtctl put "$T_DIR/c4.json"
has_c4() { mtctl plan | grep -q 'mttm-c4'; }
check "plan shows the pending c4" wait_for 10 has_c4
check "plan --exit-code with a pending change: 10" run_rc 10 out mtctl plan --exit-code
check "plan --exit-code still prints the plan" grep -Eq '^Plan: [0-9]+ to create, 0 to delete\.$' <<<"$out"
check "plan c4 --exit-code (option first): 10" run_rc 10 out mtctl --exit-code plan c4
check "plan c1 (unchanged) while c4 is pending: exit 0" run_rc 0 out mtctl plan c1
check "plan c1: no changes" grep -q '^No changes' <<<"$out"
jcheck "plan -o json: ops for c4" \
	'len(d["ops"]) > 0 and any("mttm-c4" in json.dumps(o) for o in d["ops"])' \
	"$MTCTL" -i tm -o json plan
check "resume" mtctl resume
expect_c4() { merge_expect "$1" "$T_DIR/expect_base.json" <(customer_json 4 c4 "198.51.0.64/28" | sed 's/^/[/;s/$/]/'); }
expect_c4 "$T_DIR/expect4.json"
check_converges "c4 converges after resume" 30 "$T_DIR/expect4.json"

# ---- reconcile ----
check "reconcile: exit 0" run_rc 0 out mtctl reconcile
check "reconcile: nothing to apply" grep -Eq '^reconcile: 0 ops applied, 0 failed$' <<<"$out"
jcheck "reconcile -o json" 'not d.get("failed")' "$MTCTL" -i tm -o json reconcile c1

# ---- delete by name and by id, unknown customers ----
check "show an unknown name: exit 1" run_rc 1 out mtctl customers show nosuch
check "show an unknown name: message" grep -q 'nosuch' <<<"$out"
check "show an unknown id: exit 1" run_rc 1 out mtctl customers show 99
check "show an unknown id: message" grep -q '99' <<<"$out"
check "delete an unknown name: exit 1" run_rc 1 out mtctl delete nosuch
check "delete an unknown name: message" grep -q 'nosuch' <<<"$out"
check "plan for an unknown id: exit 1" run_rc 1 out mtctl plan 99
check "delete by name" run_rc 0 out mtctl delete c2
check "delete by name says so" grep -q 'c2' <<<"$out"
jcheck "delete by id, -o json" 'len(d["deleted"]) == 1 and int(d["deleted"][0]["revision"]) > 0' \
	"$MTCTL" -i tm -o json delete 4
check "delete one found and one gone: exit 1" run_rc 1 out mtctl delete 3 c2
check "  and names the missing one" grep -q 'c2' <<<"$out"
python3 -c 'import json,sys; print(json.dumps([c for c in json.load(open(sys.argv[1])) if c["id"] == 1]))' \
	"$T_DIR/expect_base.json" >"$T_DIR/expect1.json"
check_converges "deleted customers are gone (the found one was deleted)" 30 "$T_DIR/expect1.json"

# ---- usage errors: exit 2 ----
for args in "frobnicate" "--frobnicate status" "-o yaml status" "--timeout 0 status" \
	"--timeout abc status" "customers show" "customers show Bad!" "customers frob" \
	"delete" "plan c1 c2" "status extra" "-i TOOLONG status" "put"; do
	check "usage error 'mtctl $args': exit 2" run_rc 2 out mtctl $args
	check "usage error 'mtctl $args': says what" test -n "$out"
done
check "help: exit 0" mtctl --help >/dev/null
check "help for a command: exit 0" mtctl help plan >/dev/null

# ---- the agent stuck (SIGSTOP): exit 3, busy or stuck ----
kill -STOP "$T_AGENT_PID"
check "agent stopped: exit 3" run_rc 3 out mtctl --timeout 500 status
log "agent stopped: $out"
check "agent stopped: message" grep -Eq 'mt-agent \(instance tm\).*(did not answer|no answer)' <<<"$out"
kill -CONT "$T_AGENT_PID"
check "agent answers again after SIGCONT" wait_for 10 mtctl --timeout 1000 status

# ---- the agent not running: exit 3 at once ----
stop_pid "$T_AGENT_PID"
T_AGENT_PID=
check "SIGTERM stops the agent cleanly" grep -q 'signal 15: exiting' "$T_DIR/agent.log"
check "and it removed its socket" test ! -e "$MT_RUN_DIR/$T_INST/agent.sock"
for cmd in status customers plan pause "customers show c1" "delete c1" "put $T_DIR/c4.json"; do
	t0=$(now_ms)
	check "agent not running, 'mtctl $cmd': exit 3" run_rc 3 out mtctl $cmd
	check "agent not running, 'mtctl $cmd': clear message" \
		grep -q 'mt-agent (instance tm) is not running: no socket at ipc://' <<<"$out"
	log "mtctl $cmd without the agent: $(elapsed_ms "$t0") ms: $out"
done
check "--store still reads the customers with the agent down" \
	"$MTCTL" -i tm --store "$T_STORE" customers
jcheck "--store -o json" '[c["name"] for c in d["customers"]] == ["c1"]' \
	"$MTCTL" -i tm --store "$T_STORE" -o json customers
check "the agent comes back" start_agent
check_converges "and everything is still converged" 30 "$T_DIR/expect1.json"

mt_test_done
