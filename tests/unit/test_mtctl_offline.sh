#!/usr/bin/env bash
# mtctl without root and without a running agent: argument parsing, exit
# codes, input file errors, the "not running" message, and --store direct
# reads and writes into a temporary LMDB store. mtctl against the real
# daemons is tests/integration/test_mtctl.sh.
#
# Usage: test_mtctl_offline.sh MTCTL SOURCE_ROOT
set -u
mtctl=$1 src=$2
examples=$src/deploy/examples

tmp=$(mktemp -d /tmp/mtctl-test.XXXXXX)
export MT_RUN_DIR=$tmp/run
unset MT_INSTANCE
cleanup() {
	rm -rf "$tmp"
}
trap cleanup EXIT

pass=0 fail=0
last=""
ok() { pass=$((pass + 1)); }
bad() {
	fail=$((fail + 1))
	echo "FAIL: $*"
	echo "  command: mtctl $last"
	sed 's/^/  stdout: /' "$tmp/out"
	sed 's/^/  stderr: /' "$tmp/err"
}

# expect RC ARGS...: runs mtctl, keeps stdout/stderr in $tmp/out, $tmp/err.
expect() {
	local want=$1 rc
	shift
	last="$*"
	"$mtctl" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
	rc=$?
	if [ "$rc" -eq "$want" ]; then ok; else bad "exit $rc, expected $want"; fi
}
# expect_in RC FILE ARGS...: the same with stdin from FILE.
expect_in() {
	local want=$1 in=$2 rc
	shift 2
	last="$* < $in"
	"$mtctl" "$@" >"$tmp/out" 2>"$tmp/err" <"$in"
	rc=$?
	if [ "$rc" -eq "$want" ]; then ok; else bad "exit $rc, expected $want"; fi
}
# has out|err TEXT: the last command's stdout or stderr contains TEXT.
has() {
	if grep -qF -- "$2" "$tmp/$1"; then ok; else bad "$1 lacks '$2'"; fi
}
lacks() {
	if grep -qF -- "$2" "$tmp/$1"; then bad "$1 has '$2'"; else ok; fi
}
empty() {
	if [ -s "$tmp/$1" ]; then bad "$1 is not empty"; else ok; fi
}
# Human output: no trailing whitespace; JSON output: one valid document.
clean_table() {
	if grep -qE '[[:space:]]$' "$tmp/out"; then bad "trailing spaces"; else ok; fi
}
valid_json() {
	if /usr/bin/python3 -c 'import json,sys; json.load(open(sys.argv[1]))' \
		"$tmp/out" 2>/dev/null; then ok; else bad "stdout is not JSON"; fi
}

mkdir -p "$MT_RUN_DIR/0" "$tmp/in"
cd "$tmp/in" || exit 1

# ---- usage errors: exit 2, the message names the bad argument ----
expect 2
has err "no command given"
expect 2 frobnicate
has err "unknown command 'frobnicate'"
expect 2 --bogus status
has err "unknown option '--bogus'"
expect 2 -o xml status
has err "-o 'xml'"
expect 2 --timeout 0 status
has err "--timeout '0'"
expect 2 --timeout 12x status
expect 2 -i TOOLONG status
has err "instance 'TOOLONG'"
expect 2 status --exit-code
has err "--exit-code does not apply to 'status'"
expect 2 plan --store "$tmp/store"
has err "--store does not apply to 'plan'"
expect 2 status extra
has err "unexpected argument 'extra'"
expect 2 customers frob
has err "unknown subcommand 'frob'"
expect 2 customers show
expect 2 delete
expect 2 delete Bad_Name
has err "'Bad_Name'"
expect 2 delete 40000
has err "customer id '40000' is out of range"
expect 2 plan a b
expect 2 put
has err "no file given"
expect 2 put - -
has err "stdin ('-') given twice"
expect 2 firewall
has err "firewall: which subcommand?"
expect 2 firewall list
has err "firewall: unknown subcommand 'list'"
expect 2 firewall show
has err "firewall show: which customer? (NAME|ID)"
expect 2 firewall show acme globex
has err "firewall show: one customer at a time"
expect 2 firewall show Bad_Name
has err "'Bad_Name' is neither a customer id"
expect 2 firewall show 0
has err "customer id '0' is out of range"
expect 2 firewall show acme --store "$tmp/store"
has err "--store does not apply to 'firewall'"
empty out

# ---- help: exit 0, on stdout ----
expect 0 --help
has out "Usage: mtctl"
has out "Exit codes"
expect 0 help plan
has out "--exit-code"
expect 0 put --help
has out "Usage: mtctl [OPTIONS] put FILE..."
expect 2 help frob
expect 0 help firewall
has out "Usage: mtctl [OPTIONS] firewall show NAME|ID"
has out "mtctl put FILE"
expect 0 firewall --help
has out "LIMITED"
expect 0 --help
has out "firewall show NAME|ID"

# ---- bad input files: exit 4, the message names file and place ----
printf '{"id": 1, "name": "a",}' >syntax.json
expect 4 put syntax.json
has err "syntax.json:1:"
has err "nothing was sent"
printf '{"id":1,"name":"acme","prefixs":["203.0.113.0/25"]}' >unknown.json
expect 4 put unknown.json
has err 'unknown.json: not a valid mt.config.Customer: unknown field "prefixs"'
printf '{"customers":[{"id":1,"name":"a"},{"id":2,"prefixes":[5]}]}' >list.json
expect 4 put list.json
has err "customers[1].prefixes[0]"
printf '[1,2]' >array.json
expect 4 put array.json
has err "got an array"
printf '  \n' >blank.json
expect 4 put blank.json
has err "empty file"
printf 'hello' >notjson
expect 4 put notjson
has err "notjson: not JSON"
printf '\x08\x01\x12\x10acme' >truncated.pb
expect 4 put truncated.pb
has err "truncated.pb: does not decode as binary protobuf"
expect 4 put missing.json
has err "missing.json: cannot open: No such file or directory"
expect 4 put "$examples/customers/acme.json" missing.json
has err "nothing was sent"
expect_in 4 syntax.json put -
has err "<stdin>:1:"
expect 4 put --metal missing-metal.json "$examples/customers/acme.json"
has err "missing-metal.json"

# ---- mt-agent not running: exit 3, clear message ----
expect 3 status
has err "mt-agent (instance 0) is not running: no socket at ipc://$MT_RUN_DIR/0/agent.sock"
expect 3 -i 7 plan
has err "mt-agent (instance 7) is not running"
expect 3 --agent tcp://127.0.0.1:1 --timeout 200 customers
has err "is not running: no answer on tcp://127.0.0.1:1 within 200 ms"
expect 3 put "$examples/customers/acme.json"
expect 3 firewall show acme
has err "mt-agent (instance 0) is not running: no socket at"
empty out
expect 3 -o json firewall show 1
empty out
expect 2 --agent bogus://x status
has err "--agent 'bogus://x'"

# ---- --store: direct reads and writes (agent down) ----
store="lmdb:$tmp/store"
expect 1 customers --store "$store"
has err "no store there"
expect 0 put --store "$store" "$examples/customers/acme.json" "$examples/customers/globex.json"
has out 'customer 1 "acme"'
has out 'customer 2 "globex"'
expect 0 customers --store "$store"
has out "ID  NAME    PREFIXES                          ENDPOINTS  STATE"
has out "1   acme    203.0.113.0/25                    192.0.2.1  stored"
has out "2   globex  203.0.113.128/25,198.51.100.0/24  192.0.2.2  stored"
clean_table
expect 0 customers list -o json --store "$store"
valid_json
has out '"tunnelEndpoints"'
expect 0 customers show globex --store "$store"
has out "prefixes:          203.0.113.128/25"
has out "                   198.51.100.0/24"
clean_table
expect 0 customers show 1 -o json --store "$store"
valid_json
has out '"name": "acme"'
expect 1 customers show nobody --store "$store"
has err "no customer nobody"
# Validation against the customers already in the store, all or nothing.
printf '{"id":3,"name":"initech","prefixes":["203.0.113.64/26"],"tunnelEndpoints":["192.0.2.3"]}' >overlap.json
printf '{"id":4,"name":"hooli","prefixes":["192.0.2.128/25"],"tunnelEndpoints":["192.0.2.4"]}' >hooli.json
expect 1 put --store "$store" hooli.json overlap.json
has err 'overlap.json: customer 3 "initech": prefixes[0] "203.0.113.64/26": overlaps customer 1 "acme"'
has err "nothing was written: 1 of 2 customers is invalid"
expect 1 customers show hooli --store "$store"
printf '{"customers":[{"id":5,"name":"five","prefixes":["192.0.2.0/26"]},{"id":5,"name":"fiveb","prefixes":["192.0.2.64/26"]}]}' >dupid.json
expect 1 put --store "$store" dupid.json
has err "given twice"
# A batch that replaces acme may reuse acme's old space.
printf '{"id":1,"name":"acme","prefixes":["203.0.113.0/26"],"tunnelEndpoints":["192.0.2.1"]}' >acme-small.json
expect 0 put --store "$store" -o json overlap.json acme-small.json
valid_json
has out '"file": "overlap.json"'
expect 0 delete --store "$store" initech
has out "customer initech (id 3): deleted"
expect 1 delete --store "$store" nobody 1
has err "delete nobody: no such customer in the store"
has out "customer 1 (id 1): deleted"
expect 0 customers --store "$store"
lacks out "acme"
has out "globex"
# Binary protobuf input: a customer packed by hand (id 9, name "nine",
# prefix 192.0.2.32/27).
printf '\x08\x09\x12\x04nine\x1a\x0d192.0.2.32/27' >nine.pb
expect 0 put --store "$store" nine.pb
has out 'customer 9 "nine"'
expect_in 0 nine.pb put --store "$store" -
# The metal's own prefixes are enforced with --metal.
printf '{"instance":"lab","ownPrefixes":["192.0.2.224/27"]}' >metal.json
printf '{"id":10,"name":"ten","prefixes":["192.0.2.224/28"]}' >ten.json
expect 1 put --store "$store" --metal metal.json ten.json
has err 'customer 10 "ten"'
expect 0 put --store "$store" ten.json

echo "mtctl: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
