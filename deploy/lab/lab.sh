# shellcheck shell=bash disable=SC2034
# The lab's topology, shared by up and down. Sourced, not run.
#
#   lab-eye1 --\                          /-- lab-origin1 --- lab-srv1
#               lab-inet (router) -------+    198.18.21.2     203.0.113.10
#   lab-eye2 --/        |                 \-- lab-origin2 --- lab-srv2
#                   lab-metal                 198.18.22.2     203.0.113.10
#        (mt-fastpath + mt-agent;                             203.0.113.140
#         instance "lab")                                     198.51.100.10
#                       |  veth per customer, created by mt-fastpath
#                   mtlab-acme    gre1 -> lab-origin1, gre2 -> lab-origin2
#                                 203.0.113.0/25: ECMP, weights 1:1;
#                                 a firewall (blocklist with lab-eye2's
#                                 198.18.12.0/24, web, ssh, dns limit)
#                   mtlab-globex  gre1 -> lab-origin2 (GRE key 4242)
#                                 203.0.113.128/25, 198.51.100.0/24
#
# An eyeball's packet to 203.0.113.10 goes lab-inet -> lab-metal (marked,
# policy-routed into mtlab-acme) -> gre1 or gre2 (BPF GRE, outer source the
# customer's edge endpoint 192.0.2.1) -> lab-metal -> lab-inet -> the
# origin router, which decapsulates it (the same BPF GRE, loaded by
# gre_lab_loader with the endpoints swapped) and forwards it to its server.
# The server answers the eyeball directly through its router's default
# route (direct server return): the metal sees only the ingress half.
#
# Infrastructure addresses come from the benchmarking range 198.18.0.0/15;
# customer prefixes and tunnel endpoints from the documentation ranges;
# tunnel inner addresses from 10.0.0.0/8. Nothing here touches the host's
# own network namespace beyond creating and deleting these namespaces.

LAB_INSTANCE=lab
LAB_PREFIX="mt$LAB_INSTANCE-"        # what mt-fastpath owns
LAB_NS=(lab-inet lab-metal lab-eye1 lab-eye2 lab-origin1 lab-origin2
	lab-srv1 lab-srv2)
LAB_DIR=${LAB_DIR:-/run/mt-lab}
LAB_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB_BUILD=${MT_BUILD:-$LAB_TOP/build}
# the origin routers' BPF GRE maps (a private bpffs; mt-fastpath mounts
# its own under $MT_RUN_DIR/bpf)
LAB_PINS="$LAB_DIR/bpffs"
LAB_PY=/usr/bin/python3 # Debian's python3 (the lab's http servers)
export MT_RUN_DIR="$LAB_DIR/run"

in_ns() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}

lab_mtctl() { "$LAB_BUILD/cli/mtctl" -i "$LAB_INSTANCE" "$@"; }

# The origin routers' side of the tunnels.
lab_loader() {
	"$LAB_BUILD/tests/bpf/gre_lab_loader" --pin-root "$LAB_PINS" \
		--instance origin "$@"
}
