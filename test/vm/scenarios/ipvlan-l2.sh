#!/usr/bin/env bash
# ipvlan l2: two pods on one node, on a network whose parent is the node's NIC eth1 (a veth
# into a "fabric" namespace that also holds an external host 10.61.0.1 on the same L2 segment).
# Checks: the pods' links are ipvlan mode l2 on eth1 with the requested addresses, the pods
# ping each other and the external host, DEL removes the pod links and leaves eth1 alone.
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
require_plugin

NODE=tt-vm-node1 FAB=tt-vm-fabric A=tt-vm-pod-a B=tt-vm-pod-b
netns_add "$NODE" "$FAB" "$A" "$B"
veth_to_fabric "$NODE" eth1 "$FAB" tt-vm-n1e1
ip -n "$FAB" addr add 10.61.0.1/24 dev tt-vm-n1e1
log "topology: $NODE eth1 <-> $FAB tt-vm-n1e1 (10.61.0.1)"

network_file ipvl2 'type: ipvlan
mode: l2
device: eth1
ipv4: { cidr: 10.61.0.0/24, pools: [{ start: 10.61.0.10, end: 10.61.0.50 }] }'

attach() { # pod ip
  if [[ $PLUGIN == tartan ]]; then
    tartan_conf node1 "[{\"network\":\"ipvl2\",\"ip\":\"$2\"}]" >"$WORK/$1.json"
    cni "$NODE" ADD "cid-$1" "$1" eth0 "$WORK/$1.json"
  else
    ref_conf ipvlan ipvl2 '"master":"eth1","mode":"l2"' x "$2/24" >"$WORK/$1.json"
    cni "$NODE" ADD "cid-$1" "$1" eth0 "$WORK/$1.json" "$CNI_BIN/ipvlan"
  fi
}
detach() { # pod
  local bin=$TARTAN
  [[ $PLUGIN == tartan ]] || bin=$CNI_BIN/ipvlan
  cni "$NODE" DEL "cid-$1" "$1" eth0 "$WORK/$1.json" "$bin"
}

attach "$A" 10.61.0.11
attach "$B" 10.61.0.12
show "$A" eth0
for p in "$A" "$B"; do
  expect_detail "$p" eth0 'ipvlan +mode +l2' "ipvlan l2"
done
expect_addr "$A" eth0 10.61.0.11/24
expect_addr "$B" eth0 10.61.0.12/24
ping_ok "$A" 10.61.0.12 "pod to pod"
ping_ok "$B" 10.61.0.11 "pod to pod"
ping_ok "$A" 10.61.0.1 "pod to the external host through eth1"

detach "$A"
detach "$B"
expect_no_link "$A" eth0 "after DEL"
expect_no_link "$B" eth0 "after DEL"
expect_link "$NODE" eth1 "the host NIC survives DEL"
log "done"
