#!/usr/bin/env bash
# Drift repair: with 3 customers converged, objects mt owns are broken by
# hand (ip/nft inside the right namespace); mt-fastpath's drift monitor
# reports each one and mt-agent repairs it long before the periodic
# reconcile (set to 300 s here so it cannot be what repairs them). Each
# repair is timed (printed, no thresholds). Objects mt does not own, in the
# metal, in its tables and in a customer namespace, are left alone.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_checks.sh"
T_RECONCILE_S=300
mt_test_init td
start_daemons

gen_customers 1 3 "$T_DIR/all.json" "$T_DIR/expect.json"
check "put 3 customers" mtctl put "$T_DIR/all.json"
check "3 customers converge" wait_for 30 converged "$T_DIR/expect.json"

# ---- objects mt does not own, created before any drift ----
M=$T_METAL
ip -n "$M" route add 203.0.113.0/24 dev uplink table 3000 proto static
ip -n "$M" route add 203.0.113.64/26 via 198.18.0.1 table 2000 proto static
ip -n "$M" route add 203.0.113.128/25 via 198.18.0.1 proto boot
ip -n "$M" rule add priority 500 from 203.0.113.0/24 lookup 3000
ip -n "$M" link add fx0 type veth peer name fx1
in_metal nft add table inet foreign
in_metal nft add set inet foreign keep '{ type ipv4_addr; flags interval; }'
in_metal nft add element inet foreign keep '{ 203.0.113.0/24 }'
ip netns add "mtx-td-foreign"
ip -n mttd-c1 route add 203.0.113.192/26 dev metal0 table 2001 proto static
foreign_snapshot() {
	{
		ip -n "$M" route show table 3000
		ip -n "$M" route show table 2000 proto static
		ip -n "$M" route show proto boot
		ip -n "$M" rule show priority 500
		ip -n "$M" -o link show fx0 | awk '{print $2}'
		ip -n "$M" -o link show fx1 | awk '{print $2}'
		in_metal nft list table inet foreign
		ip netns list | awk '{print $1}' | grep -x mtx-td-foreign
		ip -n mttd-c1 route show table 2001 proto static
	} 2>&1
}
foreign_snapshot >"$T_DIR/foreign.before"
# The foreign route in GRE_table is itself reported as drift (it is in mt's
# table): let the reconcile it triggers pass.
check "foreign objects do not disturb convergence" wait_for 30 converged "$T_DIR/expect.json"
check "no-op plan with foreign objects present" \
	mtctl plan --exit-code

drift_count() { status_get 's.get("driftEvents", "0")'; }

# repair NAME BREAK_CMD RESTORED_CMD: runs BREAK_CMD (a string for eval),
# waits for RESTORED_CMD to hold again and for the whole kernel to match,
# and prints how long the repair took (an upper bound: RESTORED_CMD is
# polled every 50 ms). The agent's log has the exact event -> repair time.
repair() {
	local name=$1 break_cmd=$2 restored=$3 t0 ms d0
	d0=$(drift_count)
	t0=$(now_ms)
	if ! eval "$break_cmd"; then
		check "$name: breaking it by hand" false
		return
	fi
	if wait_for 30 eval "$restored"; then
		ms=$(elapsed_ms "$t0")
		log "repair time: $name: $ms ms"
		echo "$name: $ms ms" >>"$T_DIR/repairs"
		check "$name: restored" true
		check "$name: reported as drift" test "$(drift_count)" -gt "$d0"
		if wait_for 30 converged "$T_DIR/expect.json"; then
			check "$name: kernel matches the 3 customers" true
			return
		fi
	else
		echo "$name: NOT repaired" >>"$T_DIR/repairs"
		check "$name: restored within 30 s" false
		check "$name: reported as drift" test "$(drift_count)" -gt "$d0"
		check "$name: mtctl plan at least sees it (exit 10)" \
			bash -c "$MTCTL -i $T_INST plan --exit-code; test \$? -eq 10"
	fi
	check "$name: kernel matches the 3 customers" false
	kcheck "$T_DIR/expect.json" >&2 || true
}

# c1: 198.51.0.16/28, veth mttd-c1 169.254.0.2/31; c2: 198.51.0.32/28,
# 169.254.0.4/31; c3: 198.51.0.48/28, 169.254.0.6/31.
repair "(a) GRE_table route deleted" \
	"ip -n $M route del 198.51.0.16/28 table 2000" \
	"ip -n $M route show table 2000 proto 77 198.51.0.16/28 | grep -q mttd-c1"
repair "(b) cust_table default route deleted in mttd-c2" \
	"ip -n mttd-c2 route del default table 2001" \
	"ip -n mttd-c2 route show table 2001 default | grep -q 'via 169.254.0.4'"
repair "(c) address deleted on metal veth mttd-c3" \
	"ip -n $M addr del 169.254.0.6/31 dev mttd-c3" \
	"ip -n $M -4 addr show dev mttd-c3 | grep -q 169.254.0.6/31"
repair "(d) mark prefix element deleted" \
	"in_metal nft delete element inet mttd-mark prefixes4 '{ 198.51.0.32/28 }'" \
	"in_metal nft list set inet mttd-mark prefixes4 | grep -q 198.51.0.32/28"
repair "(e) metal veth mttd-c1 set down" \
	"ip -n $M link set mttd-c1 down" \
	"ip -n $M -o link show mttd-c1 | grep -q '[<,]UP[,>]'"
repair "(e2) metal veth mttd-c2 deleted (the pair goes)" \
	"ip -n $M link del mttd-c2" \
	"ip -n $M -o link show mttd-c2 2>/dev/null | grep -q '[<,]UP[,>]'"
# mt installs the fwmark rule for IPv4 and IPv6 (same priority, mark and
# table): deleting both is one case, deleting the IPv4 one alone (what an
# operator typing `ip rule del` does) another.
rule_restored="ip -n $M rule show priority 1000 | grep -q 'lookup 2000' &&
	ip -n $M -6 rule show priority 1000 | grep -q 'lookup 2000'"
repair "(f) fwmark ip rules deleted (IPv4 and IPv6)" \
	"ip -n $M rule del priority 1000 && ip -n $M -6 rule del priority 1000" \
	"$rule_restored"

drift_after=$(drift_count)
check "the agent counted drift events" test "$drift_after" -gt 0
check "the repairs came from drift events (periodic reconcile: 300 s)" \
	grep -q 'kernel drift' "$T_DIR/agent.log"

# An explicit full reconcile, then the foreign objects are compared.
check "explicit reconcile succeeds" mtctl reconcile
check "kernel still matches after the explicit reconcile" \
	wait_for 30 converged "$T_DIR/expect.json"
foreign_snapshot >"$T_DIR/foreign.after"
check "foreign objects untouched" \
	diff -u "$T_DIR/foreign.before" "$T_DIR/foreign.after"
check "foreign objects were really there" \
	test "$(grep -c . "$T_DIR/foreign.before")" -ge 12
check "no-op plan" mtctl plan --exit-code

# Changes that are not drift events (addresses added) must still reach the
# next observe: mt-fastpath answers unchanged namespaces from the mirror of
# their last dumps, and any rtnetlink notification in a namespace, drift or
# not, retires its mirror (fastpath/dump_mirror.h). With the agent paused
# nothing repairs them in between.
reconcile_ops() { "$MTCTL" -i "$T_INST" -o json reconcile "$@" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("ops", 0))'; }
check "pause" mtctl pause
mtctl reconcile >/dev/null # the mirrors are taken now
ip -n mttd-c1 addr add 10.99.0.1/32 dev metal0
ip -n "$M" addr add 10.99.0.2/32 dev mttd-c3
ip -n mttd-c2 link set metal0 down
mtctl plan >"$T_DIR/plan.unseen" 2>&1 || true
check "a mirror-backed plan sees an address added in a customer namespace" \
	grep -q 'delete addr 10.99.0.1/32 dev metal0 in netns mttd-c1' "$T_DIR/plan.unseen"
check "... one added on a metal veth" \
	grep -q 'delete addr 10.99.0.2/32 dev mttd-c3' "$T_DIR/plan.unseen"
check "... and a link set down (with its routes, which went silently)" \
	grep -q 'create link metal0 up in netns mttd-c2' "$T_DIR/plan.unseen"
check "a mirror-backed reconcile repairs them (4 ops)" \
	test "$(reconcile_ops)" = 4
check "the address in mttd-c1 is gone" \
	bash -c "! ip -n mttd-c1 addr show dev metal0 | grep -q 10.99.0.1"
check "metal0 in mttd-c2 is up again" \
	bash -c "ip -n mttd-c2 -o link show metal0 | grep -q '[<,]UP[,>]'"
check "reconcile --fresh reads everything again: nothing to do" \
	test "$(reconcile_ops --fresh)" = 0
check "resume" mtctl resume
check "no-op plan after the unseen changes" mtctl plan --exit-code

# Last, as it may leave the kernel broken: the IPv4 rule alone. mt-fastpath
# observes rules without their family and folds the IPv4/IPv6 twins into one
# object, so (as of this writing) the surviving IPv6 twin hides the loss.
repair "(f2) fwmark ip rule deleted (IPv4 only)" \
	"ip -n $M rule del priority 1000" \
	"$rule_restored"
repair "(f3) cust rule deleted in mttd-c3 (IPv4 only)" \
	"ip -n mttd-c3 rule del priority 1000" \
	"ip -n mttd-c3 rule show priority 1000 | grep -q 'lookup 2001'"

# A namespace deleted by hand comes back (its metal veth went with it:
# drift in the metal); the drift monitor then watches the new namespace,
# not the dead one of the same name, so a change inside it is repaired
# at once too.
repair "(g) netns mttd-c3 deleted by hand" \
	"ip netns del mttd-c3" \
	"ip -n mttd-c3 route show table 2001 default 2>/dev/null | grep -q 'via 169.254.0.6'"
repair "(g2) then its cust_table default route deleted" \
	"ip -n mttd-c3 route del default table 2001" \
	"ip -n mttd-c3 route show table 2001 default | grep -q 'via 169.254.0.6'"

log "repair times:"
cat "$T_DIR/repairs" >&2

ip netns del mtx-td-foreign 2>/dev/null || true
mt_test_done
