# Shared helpers for the integration tests (bash). Each test sources this,
# calls mt_test_init with its own instance name, and gets a throwaway metal
# namespace with mt-fastpath and mt-agent running inside it. Everything is
# removed on exit, pass or fail. Needs root; without it the test skips (77).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: needs root"
	exit 77
fi

MT_BUILD=${MT_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../build" && pwd)}
MTCTL="$MT_BUILD/cli/mtctl"
MT_AGENT="$MT_BUILD/agent/mt-agent"
MT_FASTPATH="$MT_BUILD/fastpath/mt-fastpath"

T_FAILS=0
T_CHECKS=0

log() { printf '%s %s\n' "$(date +%T.%3N)" "$*" >&2; }

# check DESCRIPTION COMMAND...: runs the command, counts a failure if it fails.
check() {
	local what=$1
	shift
	T_CHECKS=$((T_CHECKS + 1))
	if "$@"; then
		log "ok   $what"
	else
		log "FAIL $what"
		T_FAILS=$((T_FAILS + 1))
	fi
}

# wait_for SECONDS COMMAND...: polls the command every 50 ms until it succeeds.
wait_for() {
	local deadline=$(($(date +%s%N) / 1000000 + $1 * 1000))
	shift
	while ! "$@" 2>/dev/null; do
		if [ $(($(date +%s%N) / 1000000)) -gt "$deadline" ]; then
			return 1
		fi
		sleep 0.05
	done
}

# mt_test_init INSTANCE: a metal namespace "mtx-INSTANCE" with an uplink
# veth to a peer namespace "mtx-INSTANCE-up", a store and a runtime dir.
mt_test_init() {
	T_INST=$1
	T_PREFIX="mt$T_INST-"
	T_METAL="mtx-$T_INST"
	T_UP="mtx-$T_INST-up"
	T_DIR=$(mktemp -d "/tmp/mt-test-$T_INST-XXXXXX")
	export MT_RUN_DIR="$T_DIR/run"
	mkdir -p "$MT_RUN_DIR"
	T_STORE="lmdb:$T_DIR/store"
	T_METAL_JSON="$T_DIR/metal.json"
	cat >"$T_METAL_JSON" <<JSON
{"instance": "$T_INST", "ownPrefixes": ["198.18.0.0/24"], "reconcileIntervalS": ${T_RECONCILE_S:-30}}
JSON
	trap mt_test_cleanup EXIT
	mt_cleanup_namespaces
	ip netns add "$T_METAL"
	ip netns add "$T_UP"
	ip -n "$T_METAL" link add uplink type veth peer name eth0 netns "$T_UP"
	ip -n "$T_METAL" link set lo up
	ip -n "$T_METAL" link set uplink up
	ip -n "$T_METAL" addr add 198.18.0.2/24 dev uplink
	ip -n "$T_UP" link set lo up
	ip -n "$T_UP" link set eth0 up
	ip -n "$T_UP" addr add 198.18.0.1/24 dev eth0
	ip -n "$T_METAL" route add default via 198.18.0.1
}

# Runs a command inside the metal namespace without changing the mount
# namespace (ip netns exec would remount /sys and hide /run/netns changes).
in_metal() { nsenter --net="/run/netns/$T_METAL" "$@"; }

mtctl() { "$MTCTL" -i "$T_INST" "$@"; }

# The daemons are started with nsenter directly, never through a shell
# function: "$!" must be the daemon itself (nsenter execs it), or stopping
# it would only stop a subshell and leak the daemon.
start_fastpath() {
	nsenter --net="/run/netns/$T_METAL" "$MT_FASTPATH" -c "$T_METAL_JSON" \
		>>"$T_DIR/fastpath.log" 2>&1 &
	T_FASTPATH_PID=$!
	wait_for 5 test -S "$MT_RUN_DIR/$T_INST/fastpath.sock"
}

start_agent() {
	# shellcheck disable=SC2086 # T_AGENT_ARGS: extra words on purpose
	nsenter --net="/run/netns/$T_METAL" "$MT_AGENT" -c "$T_METAL_JSON" \
		-s "$T_STORE" ${T_AGENT_ARGS:-} >>"$T_DIR/agent.log" 2>&1 &
	T_AGENT_PID=$!
	wait_for 5 mtctl status >/dev/null
}

start_daemons() {
	start_fastpath
	start_agent
}

stop_pid() {
	local pid=$1
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# The namespaces this test's instance owns, by name.
owned_namespaces() { ip netns list | awk '{print $1}' | grep "^$T_PREFIX" || true; }

mt_cleanup_namespaces() {
	local ns
	for ns in $(ip netns list | awk '{print $1}' | grep -E "^($T_PREFIX|mtx-$T_INST(-|$))" || true); do
		ip netns del "$ns" 2>/dev/null || true
	done
}

mt_test_cleanup() {
	local rc=$?
	stop_pid "${T_AGENT_PID:-}"
	stop_pid "${T_FASTPATH_PID:-}"
	# whatever a test started by hand with this test's files
	pkill -9 -f "$T_DIR/" 2>/dev/null || true
	if [ $rc -ne 0 ] || [ "$T_FAILS" -ne 0 ]; then
		for f in "$T_DIR"/*.log; do
			[ -f "$f" ] || continue
			echo "---- $f (last 40 lines)" >&2
			tail -n 40 "$f" >&2
		done
	fi
	mt_cleanup_namespaces
	# mt-fastpath mounts a bpffs for its tunnel maps under $MT_RUN_DIR/bpf
	if mountpoint -q "$MT_RUN_DIR/bpf" 2>/dev/null; then
		umount "$MT_RUN_DIR/bpf" 2>/dev/null || umount -l "$MT_RUN_DIR/bpf"
	fi
	rm -rf "$T_DIR"
	if [ $rc -eq 0 ] && [ "$T_FAILS" -ne 0 ]; then
		rc=1
	fi
	exit $rc
}

mt_test_done() {
	log "$T_CHECKS checks, $T_FAILS failed"
	[ "$T_FAILS" -eq 0 ]
}

# customer_json ID NAME PREFIX[,PREFIX...] [ENDPOINT[,ENDPOINT...]]
customer_json() {
	local id=$1 name=$2 prefixes=$3 endpoints=${4:-}
	python3 - "$id" "$name" "$prefixes" "$endpoints" <<'PY'
import json, sys
i, name, prefixes, endpoints = sys.argv[1:5]
c = {"id": int(i), "name": name, "prefixes": prefixes.split(",")}
if endpoints:
    c["tunnelEndpoints"] = endpoints.split(",")
print(json.dumps(c))
PY
}
