#!/usr/bin/env bash
# Installs every Debian package that building mt, running the lab and running
# the tests need. Idempotent: packages already present are left alone and no
# apt work is done when nothing is missing.
set -euo pipefail

packages=(
	# build
	meson ninja-build pkg-config gcc clang llvm
	protobuf-c-compiler libprotobuf-c-dev
	libnng-dev libmnl-dev libnftnl-dev libbpf-dev libjansson-dev liblmdb-dev
	libcurl4-openssl-dev linux-libc-dev
	# run and verify (the tests check kernel state independently)
	iproute2 nftables bpftool iputils-ping ethtool procps psmisc
	python3 jq curl netcat-openbsd
	# the distributed store (issue 6) and a real Prometheus to scrape metrics
	etcd-server etcd-client prometheus
	# the BPF GRE wire test: capture and an independent decoder
	tcpdump python3-scapy
	# the kernel gre driver test boots a Debian kernel that has ip_gre
	# (tests/vm/: fetched with apt-get download, never installed)
	qemu-system-x86
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]}; run as root" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
