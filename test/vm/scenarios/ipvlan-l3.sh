#!/usr/bin/env bash
# ipvlan l3 and l3s: two pods on one node on a network whose parent is the node's NIC eth1,
# first in l3 mode, then (once eth1 has no ipvlan left: the mode belongs to the parent, all its
# slaves share it) in l3s. In both the slaves do no ARP (NOARP) and traffic between them is
# routed by the parent's namespace; l3s also passes it through that namespace's netfilter.
# Checks per mode: the mode and NOARP on the pod links, addresses, pod-to-pod ping both ways,
# DEL removes the pod links and leaves eth1 alone.
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
require_plugin

NODE=tt-vm-node1 FAB=tt-vm-fabric A=tt-vm-pod-a B=tt-vm-pod-b
netns_add "$NODE" "$FAB" "$A" "$B"
veth_to_fabric "$NODE" eth1 "$FAB" tt-vm-n1e1
log "topology: $NODE eth1 <-> $FAB tt-vm-n1e1"

attach() { # mode pod ip
  if [[ $PLUGIN == tartan ]]; then
    tartan_conf node1 "[{\"network\":\"ipv$1\",\"ip\":\"$3\"}]" >"$WORK/$2.json"
    cni "$NODE" ADD "cid-$2" "$2" eth0 "$WORK/$2.json"
  else
    ref_conf ipvlan "ipv$1" "\"master\":\"eth1\",\"mode\":\"$1\"" x "$3/24" >"$WORK/$2.json"
    cni "$NODE" ADD "cid-$2" "$2" eth0 "$WORK/$2.json" "$CNI_BIN/ipvlan"
  fi
}
detach() { # pod
  local bin=$TARTAN
  [[ $PLUGIN == tartan ]] || bin=$CNI_BIN/ipvlan
  cni "$NODE" DEL "cid-$1" "$1" eth0 "$WORK/$1.json" "$bin"
}

net=62
for mode in l3 l3s; do
  network_file "ipv$mode" "type: ipvlan
mode: $mode
device: eth1
ipv4: { cidr: 10.$net.0.0/24, pools: [{ start: 10.$net.0.10, end: 10.$net.0.50 }] }"
  attach "$mode" "$A" "10.$net.0.11"
  attach "$mode" "$B" "10.$net.0.12"
  show "$A" eth0
  for p in "$A" "$B"; do
    expect_detail "$p" eth0 "ipvlan +mode +$mode " "ipvlan $mode"
    expect_detail "$p" eth0 '<[^>]*NOARP' "$mode slaves do no ARP"
  done
  expect_addr "$A" eth0 "10.$net.0.11/24"
  expect_addr "$B" eth0 "10.$net.0.12/24"
  ping_ok "$A" "10.$net.0.12" "pod to pod ($mode)"
  ping_ok "$B" "10.$net.0.11" "pod to pod ($mode)"

  detach "$A"
  detach "$B"
  expect_no_link "$A" eth0 "after DEL ($mode)"
  expect_no_link "$B" eth0 "after DEL ($mode)"
  expect_link "$NODE" eth1 "the host NIC survives DEL ($mode)"
  net=$((net + 1))
done
log "done"
