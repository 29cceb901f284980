#!/usr/bin/env bash
# Installs the Debian packages every test tier needs. Idempotent.
set -euo pipefail
pkgs=(
  iproute2 nftables kmod ethtool iputils-ping arping ndisc6 tcpdump
  containernetworking-plugins golang-github-appc-cni-dev
  etcd-server containerd runc podman
  qemu-system-x86 busybox-static cpio
  hyperfine sockperf iperf3 qperf
  graphviz gnuplot-nox
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
