# Checks shared by the integration tests, on top of lib.sh: source lib.sh,
# then this file, then call mt_test_init.

# A test killed by a signal (meson's timeout sends SIGTERM) still cleans up:
# bash runs the EXIT trap only when it exits, not when a signal kills it.
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

# kill9 VAR: SIGKILL the daemon whose pid is in variable VAR and reap it.
kill9() {
	local pid=${!1}
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	printf -v "$1" '%s' ""
}

T_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STORE_POKE="$MT_BUILD/tests/integration/store_poke"

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# kcheck FILE: the kernel matches the customers (a JSON list) in FILE, read
# independently of mt (kernel_check.py prints what differs).
kcheck() { python3 "$T_HERE/kernel_check.py" "$T_INST" "$T_METAL" "$1"; }

# status_get EXPR: a value from `mtctl -o json status`, EXPR a python
# expression over s (the StatusReply as a dict), printed.
status_get() {
	mtctl -o json status | python3 -c "
import json, sys
s = json.load(sys.stdin)
print($1)"
}

# all_converged: the agent reports every customer converged and is not
# behind the store.
all_converged() {
	mtctl -o json status | python3 -c '
import json, sys
s = json.load(sys.stdin)
cs = s.get("customerStatus", [])
ok = all(c.get("state") == "converged" for c in cs)
ok = ok and s.get("storeRevision", "0") == s.get("appliedRevision", "0")
sys.exit(0 if ok else 1)'
}

# converged FILE: every customer converged and the kernel matches FILE.
converged() { all_converged && kcheck "$1" >/dev/null; }

# customer_state ID: the state the agent reports for customer ID.
customer_state() {
	mtctl -o json status | python3 -c '
import json, sys
s = json.load(sys.stdin)
for c in s.get("customerStatus", []):
    if c.get("id") == int(sys.argv[1]):
        print(c.get("state", "")); break' "$1"
}

store_revision() { status_get 's.get("storeRevision", "0")'; }

# gen_customers FIRST LAST LIST_FILE EXPECT_FILE: customers FIRST..LAST
# (1..254; id i: name c<i>, prefix 198.51.<i/16>.<(i%16)*16>/28, tunnel
# endpoint 192.0.2.<i>) as an mt.config.CustomerList in LIST_FILE and as the
# JSON list kernel_check.py takes in EXPECT_FILE. With GEN_EXTRA=1 each also
# gets a second prefix 198.51.<128+i/16>.<(i%16)*16>/28.
gen_customers() {
	python3 - "$@" <<'PY'
import json, os, sys
extra = os.environ.get("GEN_EXTRA") == "1"
first, last, lfile, efile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
cs = []
for i in range(first, last + 1):
    assert 1 <= i <= 254
    p = "198.51.%d.%d/28" % (i // 16, (i % 16) * 16)
    e = "192.0.2.%d" % i
    ps = [p]
    if extra:
        ps.append("198.51.%d.%d/28" % (128 + i // 16, (i % 16) * 16))
    cs.append({"id": i, "name": "c%d" % i, "prefixes": ps, "tunnelEndpoints": [e]})
json.dump({"customers": cs}, open(lfile, "w"))
json.dump(cs, open(efile, "w"))
PY
}

# merge_expect OUT FILE...: the union (by id, later files win) of JSON lists.
merge_expect() {
	local out=$1
	shift
	python3 - "$@" <<'PY' >"$out"
import json, sys
byid = {}
for f in sys.argv[1:]:
    for c in json.load(open(f)):
        byid[c["id"]] = c
print(json.dumps([byid[k] for k in sorted(byid)]))
PY
}

# store_expect OUT: the customers the store holds (read with mtctl --store,
# not through the agent) as a JSON list for kcheck.
store_expect() {
	"$MTCTL" -i "$T_INST" --store "$T_STORE" -o json customers | python3 -c '
import json, sys
print(json.dumps(json.load(sys.stdin).get("customers", [])))' >"$1"
}

# elapsed_ms START_MS: milliseconds since START_MS.
elapsed_ms() { echo $(($(now_ms) - $1)); }

# stop_pid PID (replaces lib.sh's): SIGTERM, then SIGKILL after 5 s; a
# child that already exited (a zombie, which kill -0 still finds) is reaped
# at once instead of being waited on.
stop_pid() {
	local pid=$1 state
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
		if [ -z "$state" ] || [ "$state" = Z ]; then
			wait "$pid" 2>/dev/null || true
			return 0
		fi
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# check_converges DESC SECONDS FILE: a check that every customer converges
# and the kernel matches FILE within SECONDS; on failure prints what differs.
check_converges() {
	if wait_for "$2" converged "$3"; then
		check "$1" true
	else
		check "$1" false
		all_converged || mtctl status >&2 || true
		kcheck "$3" >&2 || true
	fi
}

# fastpath_connected_is True|False: what the agent's status says.
fastpath_connected_is() {
	test "$(status_get 's.get("fastpathConnected", False)')" = "$1"
}

# agent_log_count PATTERN: lines of the agent's log matching PATTERN.
agent_log_count() { grep -c -- "$1" "$T_DIR/agent.log" || true; }

# test_state ID STATE: the agent reports customer ID in STATE.
test_state() { test "$(customer_state "$1")" = "$2"; }

# full_reconcile_done: the agent has finished a full reconcile since it
# started.
full_reconcile_done() {
	test "$(status_get 'int(s.get("lastFullReconcileMs", "0")) >= int(s.get("startedMs", "0")) > 0')" = True
}
