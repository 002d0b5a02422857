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

# bench_private_run_netns "$0" "$@": re-runs the benchmark in a mount
# namespace of its own with a tmpfs on /run/netns, the layout of a metal
# (systemd mounts /run as a tmpfs). This machine keeps /run on the root
# ext4 without a journal, where creating a file costs a scan of every inode
# deleted in the last minutes (ext4's recently_deleted): after a round of
# 1000 namespaces deleted, the next 1000 `ip netns add`s or mt-fastpath
# creations spend 1-2.5 ms each in it. mt and the baseline scripts both
# create their namespaces there. Namespace names stay out of the host's
# /run/netns altogether. MT_BENCH_RUN_NETNS=host keeps the machine's own.
bench_private_run_netns() {
	[ "${MT_BENCH_RUN_NETNS:-tmpfs}" = host ] && return 0
	[ -n "${MT_BENCH_MNTNS:-}" ] && return 0
	[ "$(id -u)" -eq 0 ] || return 0 # the script says it needs root
	command -v unshare >/dev/null || die "unshare is not installed (util-linux)"
	mkdir -p /run/netns
	# shellcheck disable=SC2016
	exec unshare --mount --propagation private env MT_BENCH_MNTNS=1 bash -c \
		'mount -t tmpfs -o mode=0755 mt-bench-netns /run/netns && exec "$@"' bench "$@"
}

in_metal() { nsenter --net="/run/netns/$B_METAL" "$@"; }
mtctl() { "$MTCTL" -i "$B_INST" --timeout 600000 "$@"; }

# Live network namespaces on the machine (all of them, from the slab cache:
# deleted namespaces are freed asynchronously by the kernel's cleanup_net
# work, and a benchmark must not start while that still runs).
live_netns() { awk '$1 == "net_namespace" { print $2 }' /proc/slabinfo; }

# Percent of one CPU the whole machine was busy (user, system, irq,
# softirq) over the next second.
machine_busy_pct() {
	local a b
	a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat)
	sleep 1
	b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat)
	awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN { split(a, x, " "); split(b, y, " ");
		t = y[2] - x[2]; printf "%d\n", (t > 0 ? 100 * n * (y[1] - x[1]) / t : 0) }'
}

# wait_netns_settle LIVE_BEFORE_DELETE DELETED: the kernel frees deleted
# namespaces asynchronously (cleanup_net, in a kworker), 1000 of them take
# 10-30 s here, and a measurement must not overlap that work. The
# net_namespace slab count cannot tell when it is done (SLUB counts the
# objects freed into per-CPU partial slabs as active: it stays near 1000
# with nothing left to free), so this waits until the machine has been idle
# (below 10 % of a CPU) for 3 s in a row, at least 3 s after the deletion,
# at most 300 s. The arguments only feed the log line.
wait_netns_settle() {
	local idle=0 t0=$SECONDS
	sleep 2
	while [ $((SECONDS - t0)) -lt 300 ]; do
		if [ "$(machine_busy_pct)" -lt 10 ]; then
			idle=$((idle + 1))
			[ "$idle" -ge 3 ] && break
		else
			idle=0
		fi
	done
	log "namespaces settled after $((SECONDS - t0)) s (machine idle: $([ "$idle" -ge 3 ] && echo yes || echo "no, gave up")); net_namespace slab objects: $(live_netns) (before the deletion of $2: $1)"
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
# Sets B_DELETED to how many were deleted.
delete_namespaces() {
	local list
	B_DELETED=0
	list=$(ip netns list | awk '{ print $1 }' | grep -E "^($B_PREFIX|mtx-$B_INST(-|$))" || true)
	[ -n "$list" ] || return 0
	B_DELETED=$(wc -w <<<"$list")
	printf 'netns del %s\n' $list | ip -force -batch - 2>/dev/null || true
}

start_daemons() { # start_daemons STORE_DIR AGENT_LOG
	B_STORE="lmdb:$1"
	start_fastpath
	start_agent "$B_STORE" "$2"
}

# The daemons are started with nsenter directly, never through a shell
# function: "func &" forks a subshell, $! would be the subshell's pid, and
# killing it would leave the daemon running. nsenter execs the daemon, so
# $! is the daemon itself.
start_fastpath() {
	nsenter --net="/run/netns/$B_METAL" "$MT_FASTPATH" ${MT_BENCH_VERBOSE:+-v} -c "$B_DIR/metal.json" >>"$B_DIR/fastpath.log" 2>&1 &
	B_FASTPATH_PID=$!
	wait_for 10 test -S "$MT_RUN_DIR/$B_INST/fastpath.sock" || die "mt-fastpath did not start (see $B_DIR/fastpath.log)"
}

start_agent() { # start_agent STORE_URL LOG
	nsenter --net="/run/netns/$B_METAL" "$MT_AGENT" ${MT_BENCH_VERBOSE:+-v} -c "$B_DIR/metal.json" -s "$1" >>"$2" 2>&1 &
	B_AGENT_PID=$!
	wait_for 60 agent_reconciled || die "mt-agent did not start and reconcile (see $2)"
}

# Belt and braces: any process still running from this run's work
# directory (by pid; the directory name is unique to this run).
kill_leftovers() {
	local p
	for p in $(pgrep -f -- "$B_DIR/" || true); do
		[ "$p" != $$ ] && kill "$p" 2>/dev/null || true
	done
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

# perf_start NAME / perf_stop: with MT_BENCH_PERF=1, samples both daemons
# (user and kernel stacks, 999 Hz) in between, and writes the hottest
# symbols to $B_DIR/perf-NAME.txt (kept with MT_BENCH_KEEP=1).
perf_start() {
	B_PERF_NAME=$1 B_PERF_PID=
	[ "${MT_BENCH_PERF:-0}" = 1 ] || return 0
	command -v perf >/dev/null || { log "perf is not installed: no profile"; return 0; }
	perf record -q -F 999 -g -p "$B_AGENT_PID,$B_FASTPATH_PID" -o "$B_DIR/perf-$1.data" >/dev/null 2>&1 &
	B_PERF_PID=$!
	sleep 0.3
}
perf_stop() {
	[ -n "${B_PERF_PID:-}" ] || return 0
	kill -INT "$B_PERF_PID" 2>/dev/null || true
	wait "$B_PERF_PID" 2>/dev/null || true
	B_PERF_PID=
	perf report -q --stdio --no-children --sort comm,sym -g none -i "$B_DIR/perf-$B_PERF_NAME.data" \
		2>/dev/null | grep -v '^$' | head -n 60 >"$B_DIR/perf-$B_PERF_NAME.txt" || true
	log "perf profile ($B_PERF_NAME), hottest symbols:"
	head -n 25 "$B_DIR/perf-$B_PERF_NAME.txt" >&2
}

# CPU time (user + system, in ms) both daemons have used so far: robust
# against the machine's load, unlike wall times.
daemons_cpu_ms() {
	local hz
	hz=$(getconf CLK_TCK)
	awk -v hz="$hz" '{ sub(/^.*\) /, ""); s += $12 + $13 } END { printf "%.0f\n", s * 1000 / hz }' \
		"/proc/$B_AGENT_PID/stat" "/proc/$B_FASTPATH_PID/stat"
}
