# Helpers for tests/bench/run (bash, sourced). Everything lives in network
# namespaces this file creates: the metal "mtx-$B_INST" with an uplink peer
# "mtx-$B_INST-up", and the customer namespaces "mt$B_INST-*" that mt (or the
# baseline script) creates in it. The host namespace is only ever used to
# create and delete namespaces.

log() { printf '%s bench: %s\n' "$(date +%T.%3N)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

now_ns() { date +%s%N; }

# emit NAME VALUE UNIT BASELINE: one figure as a JSON line on stdout (the
# only thing that goes there). BASELINE may be "null"; ratio = value /
# baseline, null when there is no baseline or it is 0.
emit() {
	awk -v n="$1" -v v="$2" -v u="$3" -v b="$4" 'BEGIN {
		r = (b == "null" || b + 0 == 0) ? "null" : sprintf("%.4g", v / b)
		bs = (b == "null") ? "null" : sprintf("%.6g", b)
		printf "{\"name\": \"%s\", \"value\": %.6g, \"unit\": \"%s\", \"baseline\": %s, \"ratio\": %s}\n", n, v, u, bs, r
	}'
	log "FIGURE $1 = $2 $3 (baseline $4)"
}

# median of the numbers on stdin
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "null"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

in_metal() { nsenter --net="/run/netns/$B_METAL" "$@"; }
mtctl() { "$MTCTL" -i "$B_INST" --timeout 600000 "$@"; }

# Live network namespaces on the machine (all of them, from the slab cache:
# deleted namespaces are freed asynchronously by the kernel's cleanup_net
# work, and a benchmark must not start while that still runs).
live_netns() { awk '$1 == "net_namespace" { print $2 }' /proc/slabinfo; }

# wait_netns_settle: waits (at most 60 s) until the namespaces the benchmark
# deleted are really gone, then 1 s more for the machine to calm down.
wait_netns_settle() {
	local target=$((B_NETNS_BEFORE + 3)) i
	for i in $(seq 600); do
		[ "$(live_netns)" -le "$target" ] && break
		sleep 0.1
	done
	[ "$(live_netns)" -le "$target" ] ||
		log "warning: $(live_netns) namespaces still alive (before: $B_NETNS_BEFORE; other users of the machine?)"
	sleep 1
}

# The kernel's memory, in kB: slab + kernel stacks + per-cpu + vmalloc.
kernel_kb() {
	awk '/^(Slab|KernelStack|Percpu|VmallocUsed):/ { s += $2 } END { print s }' /proc/meminfo
}
used_kb() {
	awk '/^MemTotal:/ { t = $2 } /^MemAvailable:/ { a = $2 } END { print t - a }' /proc/meminfo
}

metal_up() {
	ip netns add "$B_METAL"
	ip netns add "$B_UP"
	ip -n "$B_METAL" link add uplink type veth peer name eth0 netns "$B_UP"
	ip -n "$B_METAL" link set lo up
	ip -n "$B_METAL" link set uplink up
	ip -n "$B_METAL" addr add 198.18.0.2/24 dev uplink
	ip -n "$B_UP" link set lo up
	ip -n "$B_UP" link set eth0 up
	ip -n "$B_UP" addr add 198.18.0.1/24 dev eth0
	ip -n "$B_METAL" route add default via 198.18.0.1
}

# Every namespace of this instance, customers first (one ip -batch).
delete_namespaces() {
	local list
	list=$(ip netns list | awk '{ print $1 }' | grep -E "^($B_PREFIX|mtx-$B_INST(-|$))" || true)
	[ -n "$list" ] || return 0
	printf 'netns del %s\n' $list | ip -force -batch - 2>/dev/null || true
}

start_daemons() { # start_daemons STORE_DIR
	B_STORE="lmdb:$1"
	in_metal "$MT_FASTPATH" -c "$B_DIR/metal.json" >>"$B_DIR/fastpath.log" 2>&1 &
	B_FASTPATH_PID=$!
	wait_for 10 test -S "$MT_RUN_DIR/$B_INST/fastpath.sock" || die "mt-fastpath did not start (see $B_DIR/fastpath.log)"
	in_metal "$MT_AGENT" -c "$B_DIR/metal.json" -s "$B_STORE" >>"$B_DIR/agent.log" 2>&1 &
	B_AGENT_PID=$!
	wait_for 10 agent_reconciled || die "mt-agent did not start and reconcile (see $B_DIR/agent.log)"
}

# The agent answers and has done its first full reconcile.
agent_reconciled() {
	[ "$(mtctl -o json status 2>/dev/null | jq -r '.lastFullReconcileMs // "0"')" != 0 ]
}

stop_pid() {
	local pid=$1 i
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || true
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

stop_daemons() {
	stop_pid "${B_AGENT_PID:-}"
	stop_pid "${B_FASTPATH_PID:-}"
	B_AGENT_PID= B_FASTPATH_PID=
}

# wait_for SECONDS COMMAND...: polls every 50 ms until the command succeeds.
wait_for() {
	local deadline=$(($(date +%s) + $1))
	shift
	while ! "$@" 2>/dev/null; do
		[ "$(date +%s)" -le "$deadline" ] || return 1
		sleep 0.05
	done
}

vmrss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
vmhwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# check_kernel [full]: counts the kernel objects independently of mt (ip,
# nft) against info.json; "full" also reads every customer namespace.
check_kernel() {
	local want_ns want_routes want_elems ns routes elems links addrs per bad=0 sample
	want_ns=$(jq .netns "$B_DIR/info.json")
	want_routes=$(jq .gre_routes "$B_DIR/info.json")
	want_elems=$(jq .mark_elements "$B_DIR/info.json")
	per=$(jq .cust_routes_per_ns "$B_DIR/info.json")
	ns=$(ip netns list | awk '{ print $1 }' | grep -c "^$B_PREFIX" || true)
	routes=$(ip -n "$B_METAL" -4 route show table 2000 proto 77 | wc -l)
	links=$(ip -n "$B_METAL" -o link show up | grep -c ": $B_PREFIX" || true)
	addrs=$(ip -n "$B_METAL" -4 -o addr show | grep -c ' 169\.254\.' || true)
	elems=$(in_metal nft -j list set inet "${B_PREFIX}mark" prefixes4 2>/dev/null |
		jq '[.nftables[] | select(.set) | .set.elem // [] | length] | add // 0')
	log "kernel: $ns namespaces, $links metal veths up, $addrs metal /31s, $routes GRE_table routes, $elems marked prefixes"
	[ "$ns" = "$want_ns" ] && [ "$links" = "$want_ns" ] && [ "$addrs" = "$want_ns" ] &&
		[ "$routes" = "$want_routes" ] && [ "$elems" = "$want_elems" ] || bad=1
	if [ "${1:-}" = full ]; then
		sample=$(ip netns list | awk '{ print $1 }' | grep "^$B_PREFIX")
	else
		sample=$(ip netns list | awk '{ print $1 }' | grep "^$B_PREFIX" | shuf -n 10 --random-source=/dev/zero || true)
	fi
	local s r a u checked=0
	for s in $sample; do
		r=$(ip -n "$s" -4 route show table 2001 proto 77 | wc -l)
		a=$(ip -n "$s" -4 -o addr show | grep -c -e ' 169\.254\.' -e ' 11\.' || true)
		u=$(ip -n "$s" rule show | grep -c 'lookup 2001' || true)
		checked=$((checked + 1))
		if [ "$r" != "$per" ] || [ "$a" != 2 ] || [ "$u" != 1 ]; then
			log "kernel: namespace $s: $r cust_table routes (want $per), $a addresses (want 2), $u rules (want 1)"
			bad=1
		fi
	done
	log "kernel: $checked customer namespaces checked one by one"
	[ "$bad" = 0 ]
}
