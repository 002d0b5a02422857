#!/usr/bin/env bash
# Push customers, check the kernel independently, change one (only it is
# touched), delete customers (nothing leaked).
. "$(dirname "$0")/lib.sh"
mt_test_init tc
start_daemons

expect() { # expect FILE: the kernel matches the customers in FILE
	python3 "$(dirname "$0")/kernel_check.py" "$T_INST" "$T_METAL" "$1"
}
converged() { # every customer converged and the kernel matches FILE
	mtctl -o json status | python3 -c '
import json, sys
s = json.load(sys.stdin)
cs = s.get("customerStatus", [])
sys.exit(0 if all(c.get("state") == "converged" for c in cs) else 1)' &&
		expect "$1" >/dev/null
}

N=8
{
	echo '{"customers": ['
	for i in $(seq 1 $N); do
		sep=,; [ "$i" -eq $N ] && sep=
		echo "{\"id\": $i, \"name\": \"c$i\", \"prefixes\": [\"203.0.113.$((i * 16))/28\", \"198.51.$i.0/24\"], \"tunnelEndpoints\": [\"192.0.2.$i\"]}$sep"
	done
	echo ']}'
} >"$T_DIR/all.json"
python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["customers"]))' \
	"$T_DIR/all.json" >"$T_DIR/expect_all.json"

check "put $N customers" mtctl put "$T_DIR/all.json"
check "kernel converges to $N customers" wait_for 10 converged "$T_DIR/expect_all.json"
expect "$T_DIR/expect_all.json" || true
check "no-op plan after converging" test -z "$(mtctl plan | grep -E '^[+-]' || true)"
check "customers list shows $N" test "$(mtctl -o json customers | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["customers"]))')" = "$N"

# Change one customer: add a prefix to c3. Watch the metal's netlink
# notifications meanwhile; only c3's objects may change.
ip -o -n "$T_METAL" monitor link address route rule >"$T_DIR/monitor.log" 2>&1 &
mon=$!
sleep 2 # let IPv6 duplicate address detection on the new veths finish
customer_json 3 c3 "203.0.113.48/28,198.51.3.0/24,198.51.100.0/24" 192.0.2.3 >"$T_DIR/c3.json"
python3 - "$T_DIR/expect_all.json" <<'PY' >"$T_DIR/expect_changed.json"
import json, sys
cs = json.load(open(sys.argv[1]))
for c in cs:
    if c["id"] == 3:
        c["prefixes"].append("198.51.100.0/24")
print(json.dumps(cs))
PY
check "put changed c3" mtctl put "$T_DIR/c3.json"
check "kernel converges to the change" wait_for 10 converged "$T_DIR/expect_changed.json"
sleep 0.3
kill $mon 2>/dev/null; wait $mon 2>/dev/null || true
cat "$T_DIR/monitor.log" >&2
check "the change produced netlink events" test -s "$T_DIR/monitor.log"
# (the kernel's own IPv6 link-local bookkeeping, "proto kernel" routes and
# fe80:: addresses finishing duplicate address detection, is not mt's doing)
check "only c3 was touched" bash -c "! grep -v -e 'proto kernel' -e 'fe80:' '$T_DIR/monitor.log' | grep -v -e '${T_PREFIX}c3' -e '198.51.100.0/24'"

# Delete two customers: nothing of theirs remains.
check "delete c2" mtctl delete c2
check "delete id 5" mtctl delete 5
python3 - "$T_DIR/expect_changed.json" <<'PY' >"$T_DIR/expect_deleted.json"
import json, sys
print(json.dumps([c for c in json.load(open(sys.argv[1])) if c["id"] not in (2, 5)]))
PY
check "deleted customers leave nothing behind" wait_for 10 converged "$T_DIR/expect_deleted.json"
expect "$T_DIR/expect_deleted.json" || true

# Delete everything.
for i in 1 3 4 6 7 8; do mtctl delete "$i" >/dev/null; done
echo '[]' >"$T_DIR/expect_none.json"
check "deleting every customer leaves nothing" wait_for 10 expect "$T_DIR/expect_none.json"
expect "$T_DIR/expect_none.json" || true
mt_test_done
