#!/usr/bin/env bash
# ipvlan l3: two pods on one node on a network whose parent is the node's NIC eth1. In l3 mode
# the slaves do no ARP (NOARP) and traffic between them is routed by the parent's namespace.
# Checks: ipvlan mode l3 + NOARP on the pod links, addresses, pod-to-pod ping both ways,
# DEL removes the pod links and leaves eth1 alone.
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
require_plugin

NODE=tt-vm-node1 FAB=tt-vm-fabric A=tt-vm-pod-a B=tt-vm-pod-b
netns_add "$NODE" "$FAB" "$A" "$B"
veth_to_fabric "$NODE" eth1 "$FAB" tt-vm-n1e1
log "topology: $NODE eth1 <-> $FAB tt-vm-n1e1"

network_file ipvl3 'type: ipvlan
mode: l3
device: eth1
ipv4: { cidr: 10.62.0.0/24, pools: [{ start: 10.62.0.10, end: 10.62.0.50 }] }'

attach() { # pod ip
  if [[ $PLUGIN == tartan ]]; then
    tartan_conf node1 "[{\"network\":\"ipvl3\",\"ip\":\"$2\"}]" >"$WORK/$1.json"
    cni "$NODE" ADD "cid-$1" "$1" eth0 "$WORK/$1.json"
  else
    ref_conf ipvlan ipvl3 '"master":"eth1","mode":"l3"' x "$2/24" >"$WORK/$1.json"
    cni "$NODE" ADD "cid-$1" "$1" eth0 "$WORK/$1.json" "$CNI_BIN/ipvlan"
  fi
}
detach() { # pod
  local bin=$TARTAN
  [[ $PLUGIN == tartan ]] || bin=$CNI_BIN/ipvlan
  cni "$NODE" DEL "cid-$1" "$1" eth0 "$WORK/$1.json" "$bin"
}

attach "$A" 10.62.0.11
attach "$B" 10.62.0.12
show "$A" eth0
for p in "$A" "$B"; do
  expect_detail "$p" eth0 'ipvlan +mode +l3 ' "ipvlan l3"
  expect_detail "$p" eth0 '<[^>]*NOARP' "l3 slaves do no ARP"
done
expect_addr "$A" eth0 10.62.0.11/24
expect_addr "$B" eth0 10.62.0.12/24
ping_ok "$A" 10.62.0.12 "pod to pod"
ping_ok "$B" 10.62.0.11 "pod to pod"

detach "$A"
detach "$B"
expect_no_link "$A" eth0 "after DEL"
expect_no_link "$B" eth0 "after DEL"
expect_link "$NODE" eth1 "the host NIC survives DEL"
log "done"
