#!/usr/bin/env bash
# The VM kernel offers what the host kernel lacks (no Tartan involved): ipvlan l2/l3/l3s,
# 802.1Q VLAN, bonding, dummy, vrf, macvlan, vxlan, SCTP and nftables, each created inside a
# scratch namespace. If this fails, every other scenario's failure is the VM's, not Tartan's.
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

NS=tt-vm-kernel
netns_add "$NS"
log "kernel $(uname -r)"
k() { # what, command...
  local what=$1
  shift
  "$@" || fail "$what: '$*' failed"
  log "ok: $what"
}
k "dummy" ip -n "$NS" link add tt-vm-d0 type dummy
k "ipvlan l2" ip -n "$NS" link add tt-vm-ipl2 link tt-vm-d0 type ipvlan mode l2
k "ipvlan l3" ip -n "$NS" link add tt-vm-ipl3 link tt-vm-d0 type ipvlan mode l3
k "ipvlan l3s" ip -n "$NS" link add tt-vm-ipl3s link tt-vm-d0 type ipvlan mode l3s
k "802.1Q VLAN" ip -n "$NS" link add link tt-vm-d0 name tt-vm-d0.100 type vlan id 100
k "macvlan on a VLAN" ip -n "$NS" link add tt-vm-mv link tt-vm-d0.100 type macvlan mode bridge
k "bond active-backup" ip -n "$NS" link add tt-vm-bond type bond mode active-backup miimon 100
k "vrf" ip -n "$NS" link add tt-vm-vrf type vrf table 100
k "vxlan" ip -n "$NS" link add tt-vm-vx type vxlan id 42 dstport 4789 dev tt-vm-d0
k "nftables" ip netns exec "$NS" nft add table inet tt-vm-t
k "nftables chain" ip netns exec "$NS" nft add chain inet tt-vm-t c '{ type filter hook forward priority 0; }'
k "SCTP (module loaded)" test -d /proc/sys/net/sctp
ip -n "$NS" -br link | sed 's/^/      /'
ip -n "$NS" link del tt-vm-bond 2>/dev/null || true # a bond's sysfs entries outlive the netns briefly
log "done"
