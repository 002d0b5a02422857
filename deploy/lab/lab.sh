# The lab's topology, shared by up and down. Sourced, not run.
#
#   lab-eye1 --\                      /-- lab-origin1
#               lab-inet (router) ---+--- lab-origin2
#   lab-eye2 --/        |
#                   lab-metal (mt-fastpath + mt-agent; instance "lab")
#                       |  veth per customer, created by mt-fastpath
#                   mtlab-<customer> (one namespace per customer)
#
# Infrastructure addresses come from the benchmarking range 198.18.0.0/15;
# customer prefixes and tunnel endpoints from the documentation ranges.
# Nothing here touches the host's own network namespace beyond creating and
# deleting these namespaces.

LAB_INSTANCE=lab
LAB_PREFIX="mt$LAB_INSTANCE-"        # what mt-fastpath owns
LAB_NS=(lab-inet lab-metal lab-eye1 lab-eye2 lab-origin1 lab-origin2)
LAB_DIR=${LAB_DIR:-/run/mt-lab}
LAB_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB_BUILD=${MT_BUILD:-$LAB_TOP/build}
export MT_RUN_DIR="$LAB_DIR/run"

in_ns() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}

lab_mtctl() { "$LAB_BUILD/cli/mtctl" -i "$LAB_INSTANCE" "$@"; }
