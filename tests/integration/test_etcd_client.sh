#!/bin/bash
# The etcd store backend against a real 3-member etcd cluster on loopback,
# through the real mtctl, store_poke and mt-agent (its watch), every
# result checked independently with etcdctl: put/get/delete, a txn is one
# revision, compare-and-swap, a value over the limit refused before it is
# sent, failover when the member in use dies or stops answering, every
# member down (calls fail at once, saying so), members back (the agent
# catches up), and a compaction while the agent's watch was cut off (a
# full resync, logged).
#
# Needs no root: only 127.0.0.1, ports derived from $$ in 20000-29999,
# everything in one mktemp directory. Every process it starts is killed on
# exit, pass or fail. Skips (77) without etcd and etcdctl.
set -euo pipefail

if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
	echo "SKIP: etcd and etcdctl are not installed (Debian etcd-server, etcd-client)"
	exit 77
fi

MT_BUILD=${MT_BUILD:-$(dirname "${BASH_SOURCE[0]}")/../../build}
MT_BUILD=$(cd "$MT_BUILD" && pwd)
MTCTL="$MT_BUILD/cli/mtctl"
MT_AGENT="$MT_BUILD/agent/mt-agent"
POKE="$MT_BUILD/tests/integration/store_poke"
LIVE="$MT_BUILD/tests/unit/test_etcd"
EXAMPLES=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../deploy/examples/customers" && pwd)
for b in "$MTCTL" "$MT_AGENT" "$POKE" "$LIVE"; do
	[ -x "$b" ] || { echo "FAIL: $b is not built"; exit 1; }
done

T=$(mktemp -d /tmp/mt-test-etcd-XXXXXX)
export MT_RUN_DIR="$T/run"
mkdir -p "$MT_RUN_DIR"
FAILS=0
CHECKS=0
declare -a EPID=("" "" "")
AGENT_PID=""

log() { printf '%s %s\n' "$(date +%T.%3N)" "$*" >&2; }

# check DESCRIPTION COMMAND...: PASS or FAIL, counted.
check() {
	local what=$1
	shift
	CHECKS=$((CHECKS + 1))
	if "$@"; then
		echo "PASS $what"
	else
		echo "FAIL $what"
		FAILS=$((FAILS + 1))
	fi
}

# wait_for SECONDS COMMAND...: polls every 50 ms until the command succeeds
# (a bound against hanging, not a measurement).
wait_for() {
	local deadline=$(($(date +%s%N) / 1000000 + $1 * 1000))
	shift
	while ! "$@" 2>/dev/null; do
		[ $(($(date +%s%N) / 1000000)) -le "$deadline" ] || return 1
		sleep 0.05
	done
}

stop_pid() {
	local pid=$1
	[ -n "$pid" ] || return 0
	kill -CONT "$pid" 2>/dev/null || true
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	stop_pid "$AGENT_PID"
	for i in 0 1 2; do stop_pid "${EPID[$i]}"; done
	if [ $rc -ne 0 ] || [ "$FAILS" -ne 0 ]; then
		for f in "$T"/*.log; do
			[ -f "$f" ] || continue
			echo "---- $f (last 30 lines)" >&2
			tail -n 30 "$f" >&2
		done
	fi
	rm -rf "$T"
	[ $rc -eq 0 ] && [ "$FAILS" -ne 0 ] && rc=1
	exit $rc
}
trap cleanup EXIT

# ---- the cluster ----

port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
BASE=$((20000 + ($$ % 1660) * 6))
for _ in $(seq 20); do
	ok=1
	for p in $(seq "$BASE" $((BASE + 5))); do port_free "$p" || ok=0; done
	[ $ok -eq 1 ] && break
	BASE=$((20000 + (BASE - 20000 + 6 * 97) % 9990))
done
CPORT=("$BASE" $((BASE + 1)) $((BASE + 2)))
PPORT=($((BASE + 3)) $((BASE + 4)) $((BASE + 5)))
CLUSTER="m0=http://127.0.0.1:${PPORT[0]},m1=http://127.0.0.1:${PPORT[1]},m2=http://127.0.0.1:${PPORT[2]}"
ALL="127.0.0.1:${CPORT[0]},127.0.0.1:${CPORT[1]},127.0.0.1:${CPORT[2]}"
PREFIX="/mt-test-$$/"

# The members accept 4 MiB requests: a value the client refuses at its
# default 1.5 MiB limit would have gone through, so its refusal shows it
# was never sent.
start_member() {
	local i=$1
	etcd --name "m$i" --data-dir "$T/m$i" \
		--listen-client-urls "http://127.0.0.1:${CPORT[$i]}" \
		--advertise-client-urls "http://127.0.0.1:${CPORT[$i]}" \
		--listen-peer-urls "http://127.0.0.1:${PPORT[$i]}" \
		--initial-advertise-peer-urls "http://127.0.0.1:${PPORT[$i]}" \
		--initial-cluster "$CLUSTER" --initial-cluster-state new \
		--initial-cluster-token "mt-test-$$" \
		--max-request-bytes 4194304 \
		>>"$T/etcd-m$i.log" 2>&1 &
	EPID[$i]=$!
}

ectl() { etcdctl --endpoints="$ALL" --command-timeout=5s "$@"; }
ectl_one() { local i=$1; shift; etcdctl --endpoints="127.0.0.1:${CPORT[$i]}" --command-timeout=5s "$@"; }

member_healthy() { ectl_one "$1" endpoint health >/dev/null 2>&1; }
all_healthy() { member_healthy 0 && member_healthy 1 && member_healthy 2; }

# The index of the leader, from the members given (default all).
leader() {
	local eps="" ms=("$@") i
	[ ${#ms[@]} -gt 0 ] || ms=(0 1 2)
	for i in "${ms[@]}"; do eps="$eps,127.0.0.1:${CPORT[$i]}"; done
	etcdctl --endpoints="${eps#,}" endpoint status -w json 2>/dev/null |
		python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["Status"]["leader"] == s["Status"]["header"]["member_id"]:
        print(s["Endpoint"].rsplit(":", 1)[1])' |
		while read -r port; do
			for i in 0 1 2; do
				if [ "${CPORT[$i]}" = "$port" ]; then echo "$i"; fi
			done
		done || true
}
has_leader() { [ -n "$(leader "$@")" ]; }

# ekv KEY: "MOD_REVISION LENGTH VALUE" of the etcd key (VALUE printed
# when it is text), or "absent".
ekv() {
	ectl get "$1" -w json | python3 -c '
import base64, json, sys
kvs = json.load(sys.stdin).get("kvs", [])
if not kvs:
    print("absent")
else:
    v = base64.b64decode(kvs[0].get("value", ""))
    print(kvs[0]["mod_revision"], len(v), v.decode() if v.isascii() else "-")'
}
# The cluster's revision (any answer's header).
erev() { ectl get /mt-test-none -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])'; }

for i in 0 1 2; do start_member "$i"; done
check "3-member cluster on 127.0.0.1:$BASE-$((BASE + 5)) is healthy" wait_for 30 all_healthy
check "it has a leader" wait_for 30 has_leader
L=$(leader)
F1=$(((L + 1) % 3))
F2=$(((L + 2) % 3))
log "leader m$L, followers m$F1 m$F2"
# The client uses the first member listed: a follower, so that killing it
# starts no election.
URL="etcd://127.0.0.1:${CPORT[$F1]},127.0.0.1:${CPORT[$F2]},127.0.0.1:${CPORT[$L]}$PREFIX"
KEY="${PREFIX}v1/customers"

# ---- put, get, delete through mtctl and store_poke ----

out=$("$MTCTL" --store "$URL" put "$EXAMPLES/acme.json" "$EXAMPLES/globex.json" 2>&1) || true
echo "$out" >"$T/put.log"
check "mtctl put acme globex into etcd" grep -q 'customer 2 "globex".*stored at revision' "$T/put.log"
A1=$(ekv "$KEY/1")
G1=$(ekv "$KEY/2")
log "etcd: customers/1 = $A1; customers/2 = $G1"
check "etcdctl sees customers/1 and customers/2 under ${PREFIX}v1/" \
	[ "$A1" != absent -a "$G1" != absent ]
check "both written by one txn (the same mod_revision)" \
	[ "${A1%% *}" = "${G1%% *}" ]
check "the revision mtctl printed is etcd's" grep -q "stored at revision ${A1%% *}\$" "$T/put.log"
check "the write marker moved with it" [ "$(ekv "${PREFIX}v1.written" | cut -d' ' -f1)" = "${A1%% *}" ]
check "mtctl customers reads them back" \
	bash -c "'$MTCTL' --store '$URL' customers | grep -q '^1 *acme .*stored' &&
		 '$MTCTL' --store '$URL' customers | grep -q '^2 *globex .*stored'"

printf 'not a protobuf' >"$T/raw"
check "store_poke writes a raw value" "$POKE" "$URL" customers/9 "$T/raw"
check "etcdctl sees exactly those bytes" [ "$(ekv "$KEY/9" | cut -d' ' -f2-)" = "14 not a protobuf" ]
check "mtctl skips it with a warning" \
	bash -c "'$MTCTL' --store '$URL' customers 2>&1 | grep -q \"store key 'customers/9'.*does not decode\""

check "mtctl delete globex" "$MTCTL" --store "$URL" delete globex
check "etcdctl: customers/2 is gone" [ "$(ekv "$KEY/2")" = absent ]
check "a second delete finds nothing (exit 1)" \
	bash -c "! '$MTCTL' --store '$URL' delete globex 2>/dev/null"

# ---- the orchestrator example: a directory pushed in batches ----
ORCH="$(dirname "${BASH_SOURCE[0]}")/../../deploy/orchestrator/push"
mkdir -p "$T/fleet"
python3 - "$T/fleet" <<'PY'
import json, sys
for i in range(100, 350):
    json.dump({"id": i, "name": "f%d" % i,
               "prefixes": ["11.%d.%d.0/24" % (i >> 8, i & 255)]},
              open("%s/f%d.json" % (sys.argv[1], i), "w"))
PY
OPREFIX="/mt-orch-$$/"
OURL="etcd://127.0.0.1:${CPORT[0]},127.0.0.1:${CPORT[1]},127.0.0.1:${CPORT[2]}$OPREFIX"
check "deploy/orchestrator/push: 250 customers in batches of 100" \
	env MTCTL="$MTCTL" "$ORCH" --batch 100 "$OURL" "$T/fleet"
check "etcdctl: 250 customer keys under ${OPREFIX}v1/" \
	[ "$(ectl get --prefix "${OPREFIX}v1/customers/" --keys-only | grep -c .)" = 250 ]
check "written by 3 transactions (3 distinct mod_revisions)" \
	[ "$(ectl get --prefix "${OPREFIX}v1/customers/" -w json | python3 -c 'import json,sys; print(len({k["mod_revision"] for k in json.load(sys.stdin)["kvs"]}))')" = 3 ]
check "the values are protobuf (mtctl reads them back)" \
	bash -c "'$MTCTL' --store '$OURL' -o json customers | python3 -c 'import json,sys; assert len(json.load(sys.stdin)[\"customers\"]) == 250'"
check "push refuses a batch over etcd's limit before sending" \
	bash -c "! env MTCTL='$MTCTL' '$ORCH' --batch 200 '$OURL' '$T/fleet' 2>/dev/null"

# ---- txn atomicity and compare-and-swap, in-process ----

ectl put "${PREFIX}outside" x >/dev/null
"$LIVE" live "$URL" txn >"$T/live-txn.log" 2>&1 || true
cat "$T/live-txn.log"
check "txn checks (test_etcd live txn)" bash -c "! grep -q '^FAIL' '$T/live-txn.log' && grep -q '^PASS' '$T/live-txn.log'"
TXN_REV=$(sed -n 's/^rev=//p' "$T/live-txn.log")
check "etcdctl: txn/a and txn/b carry the txn's revision $TXN_REV" \
	[ -n "$TXN_REV" -a "$(ekv "${PREFIX}v1/txn/a" | cut -d' ' -f1)" = "$TXN_REV" \
	  -a "$(ekv "${PREFIX}v1/txn/b" | cut -d' ' -f1)" = "$TXN_REV" ]
check "etcdctl: txn/missing, txn/c absent" \
	[ "$(ekv "${PREFIX}v1/txn/missing")" = absent -a "$(ekv "${PREFIX}v1/txn/c")" = absent ]
"$LIVE" live "$URL" cas >"$T/live-cas.log" 2>&1 || true
cat "$T/live-cas.log"
check "compare-and-swap checks (test_etcd live cas)" bash -c "! grep -q '^FAIL' '$T/live-cas.log' && grep -q '^PASS' '$T/live-cas.log'"
check "etcdctl: the refused txns wrote nothing" \
	[ "$(ekv "${PREFIX}v1/cas/after-delete")" = absent ]

# ---- the size limit ----

head -c 2097152 /dev/zero | tr '\0' 'x' >"$T/big"
REV0=$(erev)
"$POKE" "$URL" customers/big "$T/big" >"$T/big.out" 2>&1 && big_rc=0 || big_rc=$?
cat "$T/big.out"
check "a 2 MiB value is refused (store_poke exit 1)" [ "$big_rc" -eq 1 ]
check "with a message naming the key and the limit" \
	grep -q 'value of customers/big is 2097152 bytes.*max_request_bytes.*not sent' "$T/big.out"
check "etcdctl: nothing was written (the cluster would have taken it)" \
	[ "$(ekv "$KEY/big")" = absent -a "$(erev)" = "$REV0" ]
check "with max_request_bytes=4194304 in the url it goes through" \
	"$POKE" "$URL?max_request_bytes=4194304" customers/big "$T/big"
check "etcdctl: 2097152 bytes stored" [ "$(ekv "$KEY/big" | cut -d' ' -f2)" = 2097152 ]
ectl del "$KEY/big" >/dev/null

# ---- the watch: mt-agent and in-process ----

INST="e$(($$ % 1000))"
cat >"$T/metal.json" <<JSON
{"instance": "$INST", "ownPrefixes": ["198.18.0.0/24"]}
JSON
# No mt-fastpath: the agent loads and watches the store, it cannot
# reconcile (and touches no network).
"$MT_AGENT" -c "$T/metal.json" -s "$URL" -l "lmdb:$T/lkg" >>"$T/agent.log" 2>&1 &
AGENT_PID=$!
agent_has() { "$MTCTL" -i "$INST" customers 2>/dev/null | awk '{print $2}' | grep -qx "$1"; }
agent_lacks() { "$MTCTL" -i "$INST" customers >/dev/null 2>&1 && ! agent_has "$1"; }
check "mt-agent loads acme from etcd" wait_for 20 agent_has acme
"$MTCTL" --store "$URL" put "$EXAMPLES/globex.json" >/dev/null 2>&1 || true
check "a put through mtctl reaches the agent's watch" wait_for 20 agent_has globex
"$LIVE" live "$URL" watch >"$T/live-watch.log" 2>&1 || true
cat "$T/live-watch.log"
check "watch checks (test_etcd live watch)" bash -c "! grep -q '^FAIL' '$T/live-watch.log' && grep -q '^PASS' '$T/live-watch.log'"

# the member the agent's watch uses (its one long-lived connection)
watch_member() {
	local i
	for i in 0 1 2; do
		ss -Htnp state established "( dport = :${CPORT[$i]} )" 2>/dev/null |
			grep -q "pid=$AGENT_PID," && { echo "$i"; return 0; }
	done
	return 1
}

# ---- failover ----

W=$(watch_member || echo "?")
log "the agent watches through m$W; killing m$F1 (the first listed)"
stop_pid "${EPID[$F1]}"
EPID[$F1]=""
check "mtctl customers works with m$F1 dead" \
	bash -c "'$MTCTL' --store '$URL' customers 2>/dev/null | grep -q '^1 *acme'"
check "mtctl delete works" "$MTCTL" --store "$URL" delete globex
check "etcdctl (the others): customers/2 gone" [ "$(ekv "$KEY/2")" = absent ]
check "store_poke works" "$POKE" "$URL" customers/9 "$T/raw"
check "the agent's watch follows (globex gone there)" wait_for 20 agent_lacks globex

start_member "$F1"
check "m$F1 is back" wait_for 30 member_healthy "$F1"
W=$(watch_member || echo "?")
log "the agent watches through m$W; stopping it (SIGSTOP: connections stay open, nothing answers)"
if [ "$W" = "?" ]; then
	check "found the agent's watch connection" false
else
	kill -STOP "${EPID[$W]}"
	# the stopped member first: every call times out on it first
	FAST="etcd://127.0.0.1:${CPORT[$W]}"
	for i in 0 1 2; do [ "$i" = "$W" ] || FAST="$FAST,127.0.0.1:${CPORT[$i]}"; done
	FAST="$FAST$PREFIX?timeout_ms=500"
	"$MTCTL" --store "$FAST" customers >"$T/stopped.out" 2>&1 || true
	check "mtctl customers works with the first member stopped (timeout, next)" \
		grep -q '^1 *acme' "$T/stopped.out"
	check "having said so" grep -q "answered (127.0.0.1:${CPORT[$W]}: .*timed out" "$T/stopped.out"
	check "store_poke works (a write goes only to a member that answered)" \
		"$POKE" "$FAST" customers/9 "$T/raw"
	check "mtctl put works" "$MTCTL" --store "$FAST" put "$EXAMPLES/globex.json"
	check "the agent's watch moves off the stopped member" wait_for 30 agent_has globex
	kill -CONT "${EPID[$W]}"
	check "m$W answers again" wait_for 30 member_healthy "$W"
fi

# ---- every member down, then back ----

for i in 0 1 2; do stop_pid "${EPID[$i]}"; EPID[$i]=""; done
timeout 30 "$MTCTL" --store "$URL" customers >"$T/down.out" 2>&1 && down_rc=0 || down_rc=$?
cat "$T/down.out"
check "all down: mtctl customers fails (exit 1, not a hang)" [ "$down_rc" -eq 1 ]
check "saying no member answered, naming them" \
	grep -q "no etcd member answered (127.0.0.1:${CPORT[$F1]}: .*127.0.0.1:${CPORT[$L]}: " "$T/down.out"
timeout 30 "$POKE" "$URL" customers/9 "$T/raw" >"$T/down-poke.out" 2>&1 && down_rc=0 || down_rc=$?
check "all down: store_poke fails (exit 1)" [ "$down_rc" -eq 1 ]
timeout 60 "$LIVE" live "$URL" down >"$T/live-down.log" 2>&1 || true
cat "$T/live-down.log"
check "down checks (test_etcd live down)" bash -c "! grep -q '^FAIL' '$T/live-down.log' && grep -q '^PASS' '$T/live-down.log'"
check "the agent keeps running and answering" "$MTCTL" -i "$INST" status
check "its log says reads fail until a member is back" \
	wait_for 20 grep -q 'reads fail until .* back' "$T/agent.log"

for i in 0 1 2; do start_member "$i"; done
check "all members back" wait_for 30 all_healthy
check "with a leader" wait_for 30 has_leader
check "mtctl reads work again" wait_for 20 "$MTCTL" --store "$URL" customers
check "mtctl delete works again" "$MTCTL" --store "$URL" delete globex
check "the agent catches up (globex gone)" wait_for 30 agent_lacks globex

# ---- compaction while the agent's watch is cut off ----

W=$(watch_member || echo "?")
if [ "$W" = "?" ]; then
	check "found the agent's watch connection" false
else
	# Frozen, the agent cannot resume its watch before the history it
	# needs is compacted away.
	kill -STOP "$AGENT_PID"
	stop_pid "${EPID[$W]}"
	EPID[$W]=""
	OTHERS=""
	for i in 0 1 2; do [ "$i" = "$W" ] || OTHERS="$OTHERS,127.0.0.1:${CPORT[$i]}"; done
	RURL="etcd://${OTHERS#,}$PREFIX"
	# (the stopped member may have been the leader: writes fail until
	# the others have elected one)
	del_acme() { "$MTCTL" --store "$RURL" delete acme >/dev/null 2>&1 || [ "$(ekv "$KEY/1")" = absent ]; }
	put_globex() { "$MTCTL" --store "$RURL" put "$EXAMPLES/globex.json" >/dev/null 2>&1; }
	wait_for 15 del_acme || true
	wait_for 15 put_globex || true
	check "acme deleted, globex put meanwhile" \
		[ "$(ekv "$KEY/1")" = absent -a "$(ekv "$KEY/2")" != absent ]
	CREV=$(erev || echo 0)
	check "compacted up to revision $CREV" ectl compact "$CREV"
	kill -CONT "$AGENT_PID"
	check "the agent's watch reports the lost history" \
		wait_for 30 grep -q 'lost history (compacted up to revision' "$T/agent.log"
	check "its drain tells the agent to reload everything (-ESTALE)" \
		wait_for 30 grep -q 'reload everything' "$T/agent.log"
	check "after the resync the agent has globex" wait_for 30 agent_has globex
	check "and no acme" wait_for 30 agent_lacks acme
	"$LIVE" live "$URL" watch-since 2 stale >"$T/live-since.log" 2>&1 || true
	"$LIVE" live "$URL" watch-since "$CREV" fresh >>"$T/live-since.log" 2>&1 || true
	cat "$T/live-since.log"
	check "resume checks (test_etcd live watch-since)" \
		bash -c "! grep -q '^FAIL' '$T/live-since.log' && grep -q '^PASS' '$T/live-since.log'"
fi

echo "$CHECKS checks, $FAILS failed"
[ "$FAILS" -eq 0 ]
