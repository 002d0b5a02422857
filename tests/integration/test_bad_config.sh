#!/usr/bin/env bash
# Bad input changes nothing: with 2 good customers converged, every kind of
# bad config is refused by `mtctl put` (exit 1: refused by validation or by
# the agent; exit 4: the file does not parse) with a message naming the
# customer and the field, and neither the store nor the kernel changes.
# Then raw bad values written straight into the store (store_poke, which
# bypasses validation): the agent rejects that customer alone, keeps its
# last good config in the kernel, and the others are unaffected.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_checks.sh"
mt_test_init tb
# The metal also owns 203.0.113.0/26 (outside the reserved ranges, unlike
# the uplink's 198.18.0.0/24), so "overlaps the metal's own prefix" is
# reachable; mtctl without --metal does not know it, only the agent does.
cat >"$T_METAL_JSON" <<JSON
{"instance": "$T_INST", "ownPrefixes": ["198.18.0.0/24", "203.0.113.0/26"], "reconcileIntervalS": 30}
JSON
start_daemons

gen_customers 1 2 "$T_DIR/good.json" "$T_DIR/expect.json"
check "put 2 good customers" mtctl put "$T_DIR/good.json"
check_converges "2 good customers converge" 30 "$T_DIR/expect.json"
rev=$(store_revision)

# reject NAME WANT_RC JSON PATTERN... [-- MTCTL_OPTION...]: `mtctl put` of
# JSON (a file's text) exits WANT_RC, its message matches every PATTERN
# (grep -E), and nothing changes.
n=0
reject() {
	local name=$1 want=$2 json=$3 out rc p opts=()
	shift 3
	local pats=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do pats+=("$1"); shift; done
	[ "${1:-}" = -- ] && { shift; opts=("$@"); }
	n=$((n + 1))
	printf '%s' "$json" >"$T_DIR/bad$n.json"
	out=$(mtctl "${opts[@]}" put "$T_DIR/bad$n.json" 2>&1) && rc=0 || rc=$?
	log "$name: exit $rc: $(head -c 400 <<<"$out")"
	check "$name: exit $want" test "$rc" -eq "$want"
	for p in "${pats[@]}"; do
		check "$name: message matches /$p/" grep -Eq -- "$p" <<<"$out"
	done
	check "$name: store revision unchanged" test "$(store_revision)" = "$rev"
}

C='"id": 3, "name": "c3"'
reject "overlap with customer 1" 1 \
	"{$C, \"prefixes\": [\"198.51.0.16/29\"]}" \
	'customer 3 "c3"' 'prefixes\[0\]' '198\.51\.0\.16/29' 'customer 1'
reject "malformed prefix" 1 \
	"{$C, \"prefixes\": [\"198.51.0.300/28\"]}" \
	'customer 3 "c3"' 'prefixes\[0\]' '198\.51\.0\.300/28'
reject "malformed prefix (not an address)" 1 \
	"{$C, \"prefixes\": [\"acme\"]}" \
	'customer 3 "c3"' 'prefixes\[0\]' 'acme'
reject "host bits set" 1 \
	"{$C, \"prefixes\": [\"198.51.0.65/28\"]}" \
	'customer 3 "c3"' 'prefixes\[0\]' '198\.51\.0\.65/28'
for p in 10.0.0.0/8 127.0.0.0/8 224.0.0.0/4 0.0.0.0/0 169.254.0.0/24 192.168.1.0/24; do
	reject "reserved range $p" 1 \
		"{$C, \"prefixes\": [\"198.51.0.64/28\", \"$p\"]}" \
		'customer 3 "c3"' 'prefixes\[1\]' "${p//./\\.}"
done
reject "name too long for an interface" 1 \
	'{"id": 3, "name": "abcdefghijklm", "prefixes": ["198.51.0.64/28"]}' \
	'customer 3 "abcdefghijklm"' 'name' 'interface'
# 11 characters fit after mtctl's default prefix "mt0-" but not after this
# instance's "mttb-": mtctl lets it through, the agent refuses it.
reject "name too long for this instance's prefix (agent refuses)" 1 \
	'{"id": 3, "name": "abcdefghijk", "prefixes": ["198.51.0.64/28"]}' \
	'customer 3 "abcdefghijk"' 'name' 'mttb-'
reject "uppercase name" 1 \
	'{"id": 3, "name": "Acme", "prefixes": ["198.51.0.64/28"]}' \
	'customer 3 "Acme"' 'name "Acme"'
reject "name with a space" 1 \
	'{"id": 3, "name": "a b", "prefixes": ["198.51.0.64/28"]}' \
	'customer 3 "a b"' 'name'
reject "id 0" 1 \
	'{"id": 0, "name": "c0", "prefixes": ["198.51.0.64/28"]}' \
	'customer 0 "c0"' 'id'
reject "id too large" 1 \
	'{"id": 40000, "name": "big", "prefixes": ["198.51.0.64/28"]}' \
	'customer 40000 "big"' 'id'
reject "name of another customer" 1 \
	"{\"id\": 3, \"name\": \"c1\", \"prefixes\": [\"198.51.0.64/28\"]}" \
	'customer 3 "c1"' 'name' 'customer 1'
reject "prefix inside the metal's uplink 198.18.0.0/24" 1 \
	"{$C, \"prefixes\": [\"198.18.0.128/25\"]}" \
	'customer 3 "c3"' 'prefixes\[0\]' '198\.18\.0\.128/25'
# Only the agent knows the metal's settings here: it refuses, mtctl says so.
reject "prefix overlapping the metal's own 203.0.113.0/26 (agent refuses)" 1 \
	"{$C, \"prefixes\": [\"203.0.113.32/27\"]}" \
	'customer 3 "c3"' 'prefixes\[0\]' "metal's own prefix 203\.0\.113\.0/26"
reject "prefix overlapping the metal's own prefix (mtctl --metal refuses)" 1 \
	"{$C, \"prefixes\": [\"203.0.113.0/24\"]}" \
	'customer 3 "c3"' 'prefixes\[0\]' "metal's own prefix" -- --metal "$T_METAL_JSON"
reject "tunnel endpoint of another customer" 1 \
	"{$C, \"prefixes\": [\"198.51.0.64/28\"], \"tunnelEndpoints\": [\"192.0.2.1\"]}" \
	'customer 3 "c3"' 'tunnel_endpoints\[0\]' '192\.0\.2\.1' 'customer 1'
reject "tunnel endpoint inside another customer's prefix" 1 \
	"{$C, \"prefixes\": [\"198.51.0.64/28\"], \"tunnelEndpoints\": [\"198.51.0.20\"]}" \
	'customer 3 "c3"' 'tunnel_endpoints\[0\]' '198\.51\.0\.20' 'customer 1'
reject "tunnel endpoint with a /len" 1 \
	"{$C, \"prefixes\": [\"198.51.0.64/28\"], \"tunnelEndpoints\": [\"192.0.2.3/32\"]}" \
	'customer 3 "c3"' 'tunnel_endpoints\[0\]'

# ---- tunnels (issue 3): refused by mtctl and by the agent alike, nothing
# stored. tunnel NAME EDGE INNER [EXTRA]: one tunnel object.
tunnel() {
	printf '{"name": "%s", "edgeEndpoint": "%s", "routerEndpoint": "198.18.21.2", "innerAddress": "%s"%s}' \
		"$1" "$2" "$3" "${4:-}"
}
TC="$C, \"prefixes\": [\"198.51.0.64/28\"], \"tunnelEndpoints\": [\"192.0.2.3\"]"
ROUTE='"routes": [{"prefix": "198.51.0.64/28", "tunnel": "gre1", "priority": 10, "weight": 1}]'
reject "tunnel: edge endpoint owned by another customer" 1 \
	"{$TC, \"tunnels\": [$(tunnel gre1 192.0.2.1 100.127.0.0/31)]}" \
	'customer 3 "c3"' 'tunnels\[0\]' 'edge_endpoint "192\.0\.2\.1"'
reject "tunnel: overlapping inner addresses" 1 \
	"{$TC, \"tunnels\": [$(tunnel gre1 192.0.2.3 100.127.0.0/31), $(tunnel gre2 192.0.2.3 100.127.0.1/30)]}" \
	'customer 3 "c3"' 'tunnels\[1\] "gre2"' 'overlaps tunnels\[0\] "gre1"'
reject "tunnel: name too long for an interface" 1 \
	"{$TC, \"tunnels\": [$(tunnel gre-tunnel-long 192.0.2.3 100.127.0.0/31)]}" \
	'customer 3 "c3"' 'tunnels\[0\]\.name "gre-tunnel-long"' 'too long for an interface name'
reject "tunnel: a route naming an unknown tunnel" 1 \
	"{$TC, \"tunnels\": [$(tunnel gre1 192.0.2.3 100.127.0.0/31)], \"routes\": [{\"prefix\": \"198.51.0.64/28\", \"tunnel\": \"nope\", \"priority\": 10, \"weight\": 1}]}" \
	'customer 3 "c3"' 'routes\[0\]' 'tunnel "nope" is not one of'
for w in 0 257; do
	reject "tunnel: route weight $w" 1 \
		"{$TC, \"tunnels\": [$(tunnel gre1 192.0.2.3 100.127.0.0/31)], \"routes\": [{\"prefix\": \"198.51.0.64/28\", \"tunnel\": \"gre1\", \"priority\": 10, \"weight\": $w}]}" \
		'customer 3 "c3"' 'routes\[0\]' "weight $w: must be 1-256"
done
for mtu in 575 1477; do
	reject "tunnel: MTU $mtu" 1 \
		"{$TC, \"tunnels\": [$(tunnel gre1 192.0.2.3 100.127.0.0/31 ", \"mtu\": $mtu")], $ROUTE}" \
		'customer 3 "c3"' 'tunnels\[0\] "gre1"' "mtu $mtu: must be 576-1476"
done
reject "no prefixes" 1 \
	"{$C}" \
	'customer 3 "c3"' 'prefixes'
reject "bad change to an existing customer" 1 \
	'{"id": 1, "name": "c1", "prefixes": ["198.51.0.16/28", "10.1.0.0/16"]}' \
	'customer 1 "c1"' 'prefixes\[1\]' '10\.1\.0\.0/16'
reject "a good and a bad customer in one file (nothing is sent)" 1 \
	'{"customers": [{"id": 3, "name": "c3", "prefixes": ["198.51.0.64/28"]},
	  {"id": 4, "name": "c4", "prefixes": ["127.0.0.0/8"]}]}' \
	'customer 4 "c4"' 'prefixes\[0\]'
reject "the same id twice in one file" 1 \
	'{"customers": [{"id": 3, "name": "c3", "prefixes": ["198.51.0.64/28"]},
	  {"id": 3, "name": "c3b", "prefixes": ["198.51.0.80/28"]}]}' \
	'3' 'id'
reject "unknown JSON field" 4 \
	'{"id": 3, "name": "c3", "prefixs": ["198.51.0.64/28"]}' \
	'unknown field "prefixs"' 'bad[0-9]+\.json'
reject "unknown JSON field in a list" 4 \
	'{"customers": [{"id": 3, "name": "c3", "prefixes": ["198.51.0.64/28"], "colour": 1}]}' \
	'customers\[0\]' 'unknown field "colour"'
reject "wrong JSON type (prefixes a string)" 4 \
	'{"id": 3, "name": "c3", "prefixes": "198.51.0.64/28"}' \
	'prefixes' 'bad[0-9]+\.json'
reject "wrong JSON type (id a word)" 4 \
	'{"id": "three", "name": "c3", "prefixes": ["198.51.0.64/28"]}' \
	'id' 'bad[0-9]+\.json'
reject "wrong JSON type (prefix a number)" 4 \
	'{"id": 3, "name": "c3", "prefixes": [19851064]}' \
	'prefixes\[0\]' 'expected a string'
reject "invalid JSON" 4 \
	'{"id": 3, "name": ' \
	'bad[0-9]+\.json:[0-9]+:[0-9]+' 'invalid JSON'
reject "invalid JSON (trailing comma)" 4 \
	'{"id": 3, "name": "c3", "prefixes": ["198.51.0.64/28"],}' \
	'bad[0-9]+\.json:[0-9]+:[0-9]+' 'invalid JSON'
reject "not JSON at all" 4 \
	'this is not a config' \
	'bad[0-9]+\.json'

check "nothing was rejected into the agent's state" \
	test "$(status_get 's.get("rejected", 0)')" = 0
check "the store holds the 2 good customers only" \
	test "$(mtctl -o json customers | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["customers"]))')" = 2
check_converges "the kernel still matches the 2 good customers" 30 "$T_DIR/expect.json"
check "no-op plan" mtctl plan --exit-code >/dev/null

# ---- raw values straight into the store ----
poke() { # poke [--json] KEY FILE
	local json=()
	[ "$1" = --json ] && { json=(--json); shift; }
	"$STORE_POKE" "${json[@]}" "$T_STORE" "$@" >/dev/null
}
rejected_with() { # rejected_with ID PATTERN: status shows ID rejected, error ~ PATTERN
	mtctl -o json status | python3 -c '
import json, re, sys
s = json.load(sys.stdin)
for c in s.get("customerStatus", []):
    if c.get("id") == int(sys.argv[1]):
        sys.exit(0 if c.get("state") == "rejected" and re.search(sys.argv[2], c.get("error", "")) else 1)
sys.exit(1)' "$1" "$2"
}
# c2 changes while c1 is rejected: the others are unaffected.
customer_json 2 c2 "198.51.0.32/28,198.51.0.96/28" 192.0.2.2 >"$T_DIR/c2b.json"
python3 - "$T_DIR/expect.json" <<'PY' >"$T_DIR/expect_c2b.json"
import json, sys
cs = json.load(open(sys.argv[1]))
for c in cs:
    if c["id"] == 2:
        c["prefixes"].append("198.51.0.96/28")
print(json.dumps(cs))
PY

printf '\x08\x01\x12\xff\xff\xff\xff\x0fgarbage' >"$T_DIR/garbage.bin"
check "poke garbage bytes into customers/1" poke customers/1 "$T_DIR/garbage.bin"
check "c1 rejected: does not decode" wait_for 10 rejected_with 1 'customer 1.*decode'
mtctl status >&2
check "status counts 1 rejected" test "$(status_get 's.get("rejected", 0)')" = 1
check "c2 still converged" test_state 2 converged
check "a change to c2 still goes through" mtctl put "$T_DIR/c2b.json"
check "c2 converges" wait_for 30 test_state 2 converged
kernel_matches() { kcheck "$1" >/dev/null; }
check "c1 keeps its last good config in the kernel; c2 changed" \
	wait_for 30 kernel_matches "$T_DIR/expect_c2b.json"
kcheck "$T_DIR/expect_c2b.json" >&2 || true

cat >"$T_DIR/c1_reserved.json" <<'JSON'
{"id": 1, "name": "c1", "prefixes": ["198.51.0.16/28", "10.0.0.0/8"], "tunnelEndpoints": ["192.0.2.1"]}
JSON
check "poke a decodable but invalid c1 (10.0.0.0/8)" \
	poke --json customers/1 "$T_DIR/c1_reserved.json"
check "c1 rejected naming the field" \
	wait_for 10 rejected_with 1 'customer 1 "c1": prefixes\[1\] "10\.0\.0\.0/8"'
cat >"$T_DIR/c1_overlap.json" <<'JSON'
{"id": 1, "name": "c1", "prefixes": ["198.51.0.32/27"], "tunnelEndpoints": ["192.0.2.1"]}
JSON
check "poke a c1 overlapping c2" poke --json customers/1 "$T_DIR/c1_overlap.json"
check "c1 rejected: overlaps c2 (the incumbent wins)" \
	wait_for 10 rejected_with 1 'customer 1 "c1".*customer 2'
cat >"$T_DIR/c1_wrongid.json" <<'JSON'
{"id": 5, "name": "c1", "prefixes": ["198.51.0.16/28"], "tunnelEndpoints": ["192.0.2.1"]}
JSON
check "poke a value with id 5 under customers/1" \
	poke --json customers/1 "$T_DIR/c1_wrongid.json"
check "c1 rejected: key and value disagree" \
	wait_for 10 rejected_with 1 'customer 1.*id 5'
check "poke garbage into a new key customers/9" poke customers/9 "$T_DIR/garbage.bin"
check "customer 9 rejected" wait_for 10 rejected_with 9 'customer 9.*decode'
check "poke a key that is not customers/<id>" poke customers/abc "$T_DIR/garbage.bin"
check "the agent keeps answering" mtctl status >/dev/null
check "c2 still converged" test_state 2 converged
check "kernel: c1's last good config and c2, nothing for 9" \
	wait_for 30 kernel_matches "$T_DIR/expect_c2b.json"
kcheck "$T_DIR/expect_c2b.json" >&2 || true
check "plan wants nothing (the rejected values are not planned)" \
	mtctl plan --exit-code >/dev/null

# The last good config must survive an agent restart (nothing the agent
# needs may live only in its memory): with c1's store value still bad, a
# restarted agent must not tear c1 down.
stop_pid "$T_AGENT_PID"
T_AGENT_PID=
check "agent restarts with bad values in the store" start_agent
check "after the restart c1 is rejected" wait_for 10 rejected_with 1 'customer 1'
check "the restarted agent has done its full reconcile" \
	wait_for 30 full_reconcile_done
check "after the restart c1's last good config is still in the kernel" \
	wait_for 30 kernel_matches "$T_DIR/expect_c2b.json"
kcheck "$T_DIR/expect_c2b.json" >&2 || true

# Fixing the value brings c1 back to converged; deleting 9 clears it.
customer_json 1 c1 "198.51.0.16/28,198.51.0.112/28" 192.0.2.1 >"$T_DIR/c1b.json"
check "a good c1 put fixes it" mtctl put "$T_DIR/c1b.json"
check "delete the rejected customer 9" mtctl delete 9
python3 - "$T_DIR/expect_c2b.json" <<'PY' >"$T_DIR/expect_end.json"
import json, sys
cs = json.load(open(sys.argv[1]))
for c in cs:
    if c["id"] == 1:
        c["prefixes"].append("198.51.0.112/28")
print(json.dumps(cs))
PY
check_converges "everything converges again" 30 "$T_DIR/expect_end.json"
check "nothing rejected any more" test "$(status_get 's.get("rejected", 0)')" = 0

mt_test_done
