#!/usr/bin/env bash
# VLAN parents on two NICs, two nodes.
#
#   tt-vm-node1 eth1 ──┐                  ┌── eth1 tt-vm-node2      tt-vm-fabric holds two
#                      ├─ tt-vm-br1 (VLAN-aware, trunk: tagged 100 only) ─┤  VLAN-aware bridges
#   tt-vm-node1 eth2 ──┼─ tt-vm-br2 (VLAN-aware, trunk: tagged 200 only) ─┼── eth2 tt-vm-node2
#
# The fabric drops untagged frames and carries VLAN 100 only on br1, VLAN 200 only on br2, so a
# ping succeeds only when the right NIC and the right tag are used.
# Networks: vlan100 = macvlan (bridge) on eth1.100, vlan200 = ipvlan l2 on eth2.200.
# Pods: a (node1: net1 on vlan100, net2 on vlan200), c (node1: net1 on vlan100, dynamic
# address), b (node2: net1 on vlan100, net2 on vlan200).
# Checks: <device>.<vid> appears on a node with its first attachment (802.1Q, right id, on the
# right NIC); pods ping across nodes on both VLANs; DEL twice (as runtimes do) keeps a parent
# that another pod still uses and removes it after the last user's DEL (reference counting).
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
require_plugin

N1=tt-vm-node1 N2=tt-vm-node2 FAB=tt-vm-fabric A=tt-vm-pod-a B=tt-vm-pod-b C=tt-vm-pod-c
netns_add "$N1" "$N2" "$FAB" "$A" "$B" "$C"

ip -n "$FAB" link add tt-vm-br1 type bridge vlan_filtering 1
ip -n "$FAB" link add tt-vm-br2 type bridge vlan_filtering 1
for n in 1 2; do
  for nic in 1 2; do
    port=tt-vm-n${n}e${nic}
    veth_to_fabric "tt-vm-node$n" "eth$nic" "$FAB" "$port"
    ip -n "$FAB" link set "$port" master "tt-vm-br$nic"
    bridge -n "$FAB" vlan del vid 1 dev "$port"
    bridge -n "$FAB" vlan add vid "${nic}00" dev "$port" # tagged
  done
done
ip -n "$FAB" link set tt-vm-br1 up
ip -n "$FAB" link set tt-vm-br2 up
log "topology: node1/node2 eth1 -> $FAB tt-vm-br1 (vid 100 tagged), eth2 -> tt-vm-br2 (vid 200 tagged)"
bridge -n "$FAB" vlan show | sed 's/^/      /'

network_file vlan100 'type: macvlan
mode: bridge
device: eth1
vlan: 100
ipv4: { cidr: 10.100.0.0/24, pools: [{ start: 10.100.0.10, end: 10.100.0.200 }] }'
network_file vlan200 'type: ipvlan
mode: l2
device: eth2
vlan: 200
ipv4: { cidr: 10.200.0.0/24, pools: [{ start: 10.200.0.10, end: 10.200.0.200 }] }'

# --- attach / detach, for Tartan or the reference plugins ---------------------------------------
# attach <node-ns> <node-name> <pod> <interfaces-json> ; reference mode builds the parents by hand
attach() {
  local node=$1 name=$2 pod=$3 ifaces=$4
  if [[ $PLUGIN == tartan ]]; then
    tartan_conf "$name" "$ifaces" >"$WORK/$pod.json"
    cni "$node" ADD "cid-$pod" "$pod" eth0 "$WORK/$pod.json"
  else
    # "net1:vlan100:10.100.0.11 net2:vlan200:10.200.0.11" style, from the JSON
    local spec ifn net ip parent
    spec=$(grep -Eo '"(network|ifname|ip)":"[^"]*"' <<<"$ifaces" | cut -d'"' -f4 | paste -sd' ')
    # shellcheck disable=SC2086 # word splitting wanted
    set -- $spec
    while (($#)); do
      net=$1 ifn=$2 ip=$3
      shift 3
      [[ $ip == dynamic ]] && ip=10.100.0.99
      if [[ $net == vlan100 ]]; then parent=eth1.100; else parent=eth2.200; fi
      link_exists "$node" "$parent" || {
        ip -n "$node" link add link "${parent%.*}" name "$parent" type vlan id "${parent#*.}"
        ip -n "$node" link set "$parent" up
      }
      if [[ $net == vlan100 ]]; then
        ref_conf macvlan "$net" "\"master\":\"$parent\",\"mode\":\"bridge\"" x "$ip/24" >"$WORK/$pod-$ifn.json"
        cni "$node" ADD "cid-$pod" "$pod" "$ifn" "$WORK/$pod-$ifn.json" "$CNI_BIN/macvlan"
      else
        ref_conf ipvlan "$net" "\"master\":\"$parent\",\"mode\":\"l2\"" x "$ip/24" >"$WORK/$pod-$ifn.json"
        cni "$node" ADD "cid-$pod" "$pod" "$ifn" "$WORK/$pod-$ifn.json" "$CNI_BIN/ipvlan"
      fi
    done
  fi
}
detach() { # node-ns pod
  local node=$1 pod=$2 f ifn
  if [[ $PLUGIN == tartan ]]; then
    cni "$node" DEL "cid-$pod" "$pod" eth0 "$WORK/$pod.json"
  else
    for f in "$WORK/$pod"-*.json; do
      ifn=$(basename "$f" .json)
      ifn=${ifn##*-}
      cni "$node" DEL "cid-$pod" "$pod" "$ifn" "$f" "$CNI_BIN/$(grep -m1 -Eo '"type": "[a-z]+"' "$f" | cut -d'"' -f4)"
    done
  fi
}
# refcount checks only make sense for Tartan (reference mode makes parents by hand)
expect_parent() { [[ $PLUGIN != tartan ]] || expect_link "$@"; }
expect_no_parent() {
  if [[ $PLUGIN == tartan ]]; then expect_no_link "$@"; else log "(reference mode: parent $2 on $1 not ref-counted, not checked)"; fi
}

# --- first attachment on node1 creates both parents -------------------------------------------
expect_no_link "$N1" eth1.100 "before any ADD"
attach "$N1" node1 "$A" '[{"network":"vlan100","ifname":"net1","ip":"10.100.0.11"},{"network":"vlan200","ifname":"net2","ip":"10.200.0.11"}]'
show "$N1" eth1.100 eth2.200
expect_detail "$N1" eth1.100 '@eth1:' "on NIC eth1"
expect_detail "$N1" eth1.100 'vlan protocol 802\.1Q id 100 ' "802.1Q id 100"
expect_detail "$N1" eth2.200 'vlan protocol 802\.1Q id 200 ' "802.1Q id 200"
expect_detail "$N1" eth2.200 '@eth2:' "on NIC eth2"
show "$A"
expect_detail "$A" net1 'macvlan +mode bridge' "macvlan bridge"
expect_detail "$A" net2 'ipvlan +mode l2' "ipvlan l2"
expect_addr "$A" net1 10.100.0.11/24
expect_addr "$A" net2 10.200.0.11/24

attach "$N2" node2 "$B" '[{"network":"vlan100","ifname":"net1","ip":"10.100.0.12"},{"network":"vlan200","ifname":"net2","ip":"10.200.0.12"}]'
expect_link "$N2" eth1.100
expect_link "$N2" eth2.200
expect_addr "$B" net1 10.100.0.12/24
expect_addr "$B" net2 10.200.0.12/24

# a second pod on node1, VLAN 100 only, dynamic address
attach "$N1" node1 "$C" '[{"network":"vlan100","ifname":"net1","ip":"dynamic"}]'
c_ip=$(ip -n "$C" -4 -o addr show dev net1 | awk '{print $4}' | cut -d/ -f1)
[[ -n $c_ip ]] || fail "pod c has no IPv4 address on net1"
[[ $c_ip != 10.100.0.11 && $c_ip != 10.100.0.12 ]] || fail "dynamic address $c_ip collides with a fixed one"
log "ok: pod c got dynamic address $c_ip"

ping_ok "$A" 10.100.0.12 "node1 -> node2 on VLAN 100 via eth1"
ping_ok "$A" 10.200.0.12 "node1 -> node2 on VLAN 200 via eth2"
ping_ok "$B" 10.100.0.11 "node2 -> node1 on VLAN 100"
ping_ok "$B" 10.200.0.11 "node2 -> node1 on VLAN 200"
ping_ok "$C" 10.100.0.12 "pod c (node1) -> node2 on VLAN 100"
ping_ok "$B" "$c_ip" "node2 -> pod c"
ping_ok "$A" "$c_ip" "same node, same macvlan parent"
bridge -n "$FAB" fdb show br tt-vm-br1 | grep -E 'vlan 100' | grep -v permanent | sed 's/^/      learned on br1: /' || true

# --- DEL: ref-counted host parents ------------------------------------------------------------
detach "$N1" "$A"
detach "$N1" "$A" # runtimes send DEL twice; the second must not drop another reference
expect_no_link "$A" net1 "after DEL"
expect_parent "$N1" eth1.100 "pod c still uses VLAN 100 on node1"
expect_no_parent "$N1" eth2.200 "last user of VLAN 200 on node1 is gone"
ping_ok "$C" 10.100.0.12 "pod c still reaches node2 after pod a left"

detach "$N1" "$C"
expect_no_parent "$N1" eth1.100 "last user of VLAN 100 on node1 is gone"
expect_parent "$N2" eth1.100 "node2 is unaffected by node1's DELs"
detach "$N2" "$B"
expect_no_parent "$N2" eth1.100 "after the last DEL on node2"
expect_no_parent "$N2" eth2.200 "after the last DEL on node2"
for n in "$N1" "$N2"; do
  expect_link "$n" eth1 "NIC survives"
  expect_link "$n" eth2 "NIC survives"
done
log "done"
