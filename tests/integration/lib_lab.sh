# Helpers of the tests that build a small internet of namespaces around the
# metal (test_tunnels, test_firewall, test_health). Source it after
# mt_test_init: it takes over the exit trap, so that the background
# processes the test started (their pids in BG) go before the namespaces.

BG=() # background processes this test started

lab_cleanup() {
	local rc=$?
	set +e
	for pid in "${BG[@]}"; do
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	set_rc() { return "$1"; }
	set_rc "$rc"
	mt_test_cleanup
}
trap lab_cleanup EXIT

# ok/fail DESCRIPTION: one check's outcome, counted; tcheck DESC CMD...: ok
# or FAIL by CMD's exit status
ok() {
	T_CHECKS=$((T_CHECKS + 1))
	echo "ok: $*"
}
fail() {
	T_CHECKS=$((T_CHECKS + 1))
	T_FAILS=$((T_FAILS + 1))
	echo "FAIL: $*"
}
skip() { echo "skip: $*"; }
tcheck() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}
# setup CMD...: a step the test cannot go on without
setup() { "$@" || { echo "setup failed: $*"; exit 1; }; }
# in_ns NS CMD...: CMD in NS's network namespace (nsenter: unlike ip netns
# exec, it does not remount /sys)
in_ns() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}
# link NS_A IF_A ADDR_A NS_B IF_B ADDR_B: a veth pair, peer made in NS_B
link() {
	setup ip -n "$1" link add "$2" type veth peer name "$5" netns "$4"
	setup ip -n "$1" addr add "$3" dev "$2"
	setup ip -n "$4" addr add "$6" dev "$5"
	setup ip -n "$1" link set "$2" up
	setup ip -n "$4" link set "$5" up
}
