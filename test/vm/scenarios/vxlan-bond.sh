#!/usr/bin/env bash
# A VXLAN parent on a bond, two nodes.
#
#   tt-vm-node1 bond0 (active-backup: ens1, ens2) 192.168.50.1 ─┐
#                                                               ├─ tt-vm-fabric: bridge tt-vm-brx
#   tt-vm-node2 bond0 (active-backup: ens1, ens2) 192.168.50.2 ─┘
#
# Network "internal": macvlan on a VXLAN (VNI 4242, static remotes = both nodes) whose
# lower device and local address come from bond0. Pods a (node1) and b (node2).
# Checks: the node's VXLAN link has id 4242, dev bond0, local = the bond's address, dstport
# 4789, and a flood entry towards the other node only; pods ping across; after failing the
# bond's active slave the ping still works (through the backup slave); DEL removes the VXLAN
# link once its last user is gone and leaves bond0 alone.
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
require_plugin

N1=tt-vm-node1 N2=tt-vm-node2 FAB=tt-vm-fabric A=tt-vm-pod-a B=tt-vm-pod-b
netns_add "$N1" "$N2" "$FAB" "$A" "$B"

ip -n "$FAB" link add tt-vm-brx type bridge
ip -n "$FAB" link set tt-vm-brx up
for n in 1 2; do
  node=tt-vm-node$n
  ip -n "$node" link add bond0 type bond mode active-backup miimon 50
  for s in 1 2; do
    veth_to_fabric "$node" "ens$s" "$FAB" "tt-vm-n${n}s$s"
    ip -n "$FAB" link set "tt-vm-n${n}s$s" master tt-vm-brx
    ip -n "$node" link set "ens$s" down
    ip -n "$node" link set "ens$s" master bond0
  done
  ip -n "$node" addr add "192.168.50.$n/24" dev bond0
  ip -n "$node" link set bond0 up
done
log "topology: node1/node2 bond0 (active-backup ens1+ens2) -> $FAB tt-vm-brx; 192.168.50.1 / .2"
sleep 0.3
ping_ok "$N1" 192.168.50.2 "underlay over the bonds"
expect_detail "$N1" bond0 'bond mode active-backup' "bond mode"

network_file internal 'type: macvlan
mode: bridge
device: bond0
vxlan: { vni: 4242, port: 4789, remotes: [192.168.50.1, 192.168.50.2] }
ipv4: { cidr: 10.42.0.0/24, pools: [{ start: 10.42.0.10, end: 10.42.0.200 }] }'

# The node's VXLAN link for VNI 4242 (whatever Tartan names it).
vxlan_link() { # node-ns
  ip -n "$1" -d -o link show type vxlan 2>/dev/null | awk -F': ' '/vxlan id 4242 / && !n++ { sub(/@.*/, "", $2); print $2 }'
}

attach() { # node-ns node-name pod ip
  local node=$1 name=$2 pod=$3 ip=$4
  if [[ $PLUGIN == tartan ]]; then
    tartan_conf "$name" "[{\"network\":\"internal\",\"ifname\":\"net1\",\"ip\":\"$ip\"}]" >"$WORK/$pod.json"
    cni "$node" ADD "cid-$pod" "$pod" eth0 "$WORK/$pod.json"
  else
    local local_ip remote
    local_ip=$(ip -n "$node" -4 -o addr show dev bond0 | awk '{print $4}' | cut -d/ -f1)
    if [[ -z $(vxlan_link "$node") ]]; then
      ip -n "$node" link add tt-vm-vx4242 type vxlan id 4242 dev bond0 local "$local_ip" dstport 4789 nolearning
      for remote in 192.168.50.1 192.168.50.2; do
        [[ $remote == "$local_ip" ]] || bridge -n "$node" fdb append 00:00:00:00:00:00 dev tt-vm-vx4242 dst "$remote"
      done
      ip -n "$node" link set tt-vm-vx4242 up
    fi
    ref_conf macvlan internal '"master":"tt-vm-vx4242","mode":"bridge"' x "$ip/24" >"$WORK/$pod.json"
    cni "$node" ADD "cid-$pod" "$pod" net1 "$WORK/$pod.json" "$CNI_BIN/macvlan"
  fi
}
detach() { # node-ns pod
  if [[ $PLUGIN == tartan ]]; then
    cni "$1" DEL "cid-$2" "$2" eth0 "$WORK/$2.json"
  else
    cni "$1" DEL "cid-$2" "$2" net1 "$WORK/$2.json" "$CNI_BIN/macvlan"
  fi
}

attach "$N1" node1 "$A" 10.42.0.11
attach "$N2" node2 "$B" 10.42.0.12

vx1=$(vxlan_link "$N1")
vx2=$(vxlan_link "$N2")
[[ -n $vx1 ]] || {
  show "$N1"
  fail "node1 has no VXLAN link with id 4242 after ADD"
}
[[ -n $vx2 ]] || fail "node2 has no VXLAN link with id 4242 after ADD"
show "$N1" "$vx1"
expect_detail "$N1" "$vx1" 'vxlan id 4242 ' "VNI"
expect_detail "$N1" "$vx1" 'local 192\.168\.50\.1 ' "local address taken from bond0"
expect_detail "$N1" "$vx1" ' dev bond0 ' "lower device bond0"
expect_detail "$N1" "$vx1" 'dstport 4789 ' "UDP port"
expect_detail "$N2" "$vx2" 'local 192\.168\.50\.2 ' "local address taken from node2's bond0"
fdb1=$(bridge -n "$N1" fdb show dev "$vx1")
echo "$fdb1" | sed 's/^/      node1 fdb: /'
grep -q '00:00:00:00:00:00 dst 192.168.50.2 ' <<<"$fdb1" || fail "node1's $vx1 has no flood entry towards 192.168.50.2"
if grep -q 'dst 192.168.50.1 ' <<<"$fdb1"; then
  fail "node1's $vx1 floods to its own address 192.168.50.1 (the local node must be left out of remotes)"
fi
log "ok: node1 floods VNI 4242 to node2 only"
show "$A" net1
expect_detail "$A" net1 "macvlan +mode bridge" "macvlan on the VXLAN link"
expect_detail "$A" net1 "@if[0-9]+:|link-netns $N1" "lower device in node1"
expect_addr "$A" net1 10.42.0.11/24
expect_addr "$B" net1 10.42.0.12/24

ping_ok "$A" 10.42.0.12 "pod a (node1) -> pod b (node2) over VXLAN on bond0"
ping_ok "$B" 10.42.0.11 "pod b -> pod a"

# --- fail the active slave of node1's bond --------------------------------------------------------
active=$(ip -n "$N1" -d link show dev bond0 | grep -Eo 'active_slave [a-z0-9]+' | awk '{print $2}')
[[ -n $active ]] || fail "cannot read node1's active bond slave"
ip -n "$FAB" link set "tt-vm-n1s${active#ens}" down # carrier loss on node1's $active
for _ in $(seq 1 40); do
  now=$(ip -n "$N1" -d link show dev bond0 | grep -Eo 'active_slave [a-z0-9]+' | awk '{print $2}')
  [[ -n $now && $now != "$active" ]] && break
  sleep 0.1
done
[[ $now != "$active" ]] || fail "bond0 on node1 did not fail over from $active"
log "ok: node1 bond0 failed over $active -> $now"
ping_ok "$A" 10.42.0.12 "pod a -> pod b after failover"
ping_ok "$B" 10.42.0.11 "pod b -> pod a after failover"

# --- DEL -----------------------------------------------------------------------------------------
detach "$N1" "$A"
detach "$N1" "$A"
expect_no_link "$A" net1 "after DEL"
if [[ $PLUGIN == tartan ]]; then
  [[ -z $(vxlan_link "$N1") ]] || fail "node1 still has VXLAN link $(vxlan_link "$N1") after the last DEL"
  log "ok: node1's VXLAN link is gone after its last user's DEL"
  [[ -n $(vxlan_link "$N2") ]] || fail "node2 lost its VXLAN link while pod b still uses it"
fi
detach "$N2" "$B"
if [[ $PLUGIN == tartan ]]; then
  [[ -z $(vxlan_link "$N2") ]] || fail "node2 still has VXLAN link after the last DEL"
  log "ok: node2's VXLAN link is gone after its last user's DEL"
fi
expect_link "$N1" bond0 "bond survives"
expect_link "$N2" bond0 "bond survives"
log "done"
