// Exact bytes of the requests, against what iproute2 6.1 sends for the command ops.ts maps
// each op to (captured with `strace -e trace=sendmsg -e write=3 ip ...`, sequence number
// zeroed): eth0 is ifindex 3, vx0 5, br0 8, br1 9, dm0p 10, dm0/dm1 11, the netns fd 4.
import { describe, expect, it } from 'vitest';
import { encodeOp, type NetlinkOp } from './encode-ops.js';
import { ctx, hex, bytes } from './encode-fixture.js';

const cases: Array<[string, NetlinkOp, string[]]> = [
  [
    'macvlan into a netns with mtu and mac',
    // ip link add link eth0 name net1 netns /run/netns/pod mtu 1400 address 02:11:22:33:44:55 type macvlan mode bridge
    {
      op: 'macvlan-add',
      name: 'net1',
      parent: 'eth0',
      mode: 'bridge',
      intoNs: '/run/netns/pod',
      mtu: 1400,
      mac: '02:11:22:33:44:55',
    },
    [
      '6c 00 00 00 10 00 05 06 00 00 00 00 00 00 00 00',
      '00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00',
      '08 00 1c 00 04 00 00 00 08 00 04 00 78 05 00 00',
      '0a 00 01 00 02 11 22 33 44 55 00 00 08 00 05 00',
      '03 00 00 00 09 00 03 00 6e 65 74 31 00 00 00 00',
      '1c 00 12 00 0b 00 01 00 6d 61 63 76 6c 61 6e 00',
      '0c 00 02 00 08 00 01 00 04 00 00 00',
    ],
  ],
  [
    'veth with its peer in a netns',
    // ip link add vh0 mtu 1450 type veth peer name eth1 netns /run/netns/pod mtu 1450 address 02:aa:bb:cc:dd:ee
    {
      op: 'veth-add',
      name: 'vh0',
      peer: 'eth1',
      peerNs: '/run/netns/pod',
      mtu: 1450,
      peerMac: '02:aa:bb:cc:dd:ee',
    },
    [
      '7c 00 00 00 10 00 05 06 00 00 00 00 00 00 00 00',
      '00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00',
      '08 00 04 00 aa 05 00 00 08 00 03 00 76 68 30 00',
      '4c 00 12 00 08 00 01 00 76 65 74 68 40 00 02 00',
      '3c 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00',
      '00 00 00 00 08 00 1c 00 04 00 00 00 08 00 04 00',
      'aa 05 00 00 0a 00 01 00 02 aa bb cc dd ee 00 00',
      '09 00 03 00 65 74 68 31 00 00 00 00',
    ],
  ],
  [
    'vxlan without group (nolearning)',
    // ip link add vx0 mtu 1400 type vxlan id 1000 dstport 4789 local 10.1.0.1 dev eth0 nolearning
    {
      op: 'vxlan-add',
      name: 'vx0',
      vni: 1000,
      port: 4789,
      local: '10.1.0.1',
      dev: 'eth0',
      mtu: 1400,
    },
    [
      '6c 00 00 00 10 00 05 06 00 00 00 00 00 00 00 00',
      '00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00',
      '08 00 04 00 78 05 00 00 08 00 03 00 76 78 30 00',
      '3c 00 12 00 09 00 01 00 76 78 6c 61 6e 00 00 00',
      '2c 00 02 00 08 00 03 00 03 00 00 00 08 00 01 00',
      'e8 03 00 00 08 00 04 00 0a 01 00 01 05 00 07 00',
      '00 00 00 00 06 00 0f 00 12 b5 00 00',
    ],
  ],
  [
    'vxlan with a multicast group',
    // ip link add vx1 type vxlan id 1001 dstport 4789 local 10.1.0.1 dev eth0 group 239.1.1.1
    {
      op: 'vxlan-add',
      name: 'vx1',
      vni: 1001,
      port: 4789,
      local: '10.1.0.1',
      dev: 'eth0',
      group: '239.1.1.1',
    },
    [
      '6c 00 00 00 10 00 05 06 00 00 00 00 00 00 00 00',
      '00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00',
      '08 00 03 00 76 78 31 00 44 00 12 00 09 00 01 00',
      '76 78 6c 61 6e 00 00 00 34 00 02 00 08 00 03 00',
      '03 00 00 00 08 00 01 00 e9 03 00 00 08 00 04 00',
      '0a 01 00 01 08 00 02 00 ef 01 01 01 05 00 07 00',
      '01 00 00 00 06 00 0f 00 12 b5 00 00',
    ],
  ],
  [
    'vxlan over IPv6',
    // ip link add vx2 type vxlan id 1002 dstport 4789 local fd00::1 dev eth0 nolearning
    { op: 'vxlan-add', name: 'vx2', vni: 1002, port: 4789, local: 'fd00::1', dev: 'eth0' },
    [
      '70 00 00 00 10 00 05 06 00 00 00 00 00 00 00 00',
      '00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00',
      '08 00 03 00 76 78 32 00 48 00 12 00 09 00 01 00',
      '76 78 6c 61 6e 00 00 00 38 00 02 00 08 00 03 00',
      '03 00 00 00 08 00 01 00 ea 03 00 00 14 00 11 00',
      'fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01',
      '05 00 07 00 00 00 00 00 06 00 0f 00 12 b5 00 00',
    ],
  ],
  [
    'bridge with mtu',
    // ip link add br0 mtu 1500 type bridge
    { op: 'bridge-add', name: 'br0', mtu: 1500 },
    [
      '40 00 00 00 10 00 05 06 00 00 00 00 00 00 00 00',
      '00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00',
      '08 00 04 00 dc 05 00 00 08 00 03 00 62 72 30 00',
      '10 00 12 00 0a 00 01 00 62 72 69 64 67 65 00 00',
    ],
  ],
  [
    'bridge',
    // ip link add br1 type bridge
    { op: 'bridge-add', name: 'br1' },
    [
      '38 00 00 00 10 00 05 06 00 00 00 00 00 00 00 00',
      '00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00',
      '08 00 03 00 62 72 31 00 10 00 12 00 0a 00 01 00',
      '62 72 69 64 67 65 00 00',
    ],
  ],
  [
    'vlan',
    // ip link add link eth0 name eth0.100 mtu 1400 type vlan id 100
    { op: 'vlan-add', name: 'eth0.100', parent: 'eth0', id: 100, mtu: 1400 },
    [
      '58 00 00 00 10 00 05 06 00 00 00 00 00 00 00 00',
      '00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00',
      '08 00 04 00 78 05 00 00 08 00 05 00 03 00 00 00',
      '0d 00 03 00 65 74 68 30 2e 31 30 30 00 00 00 00',
      '18 00 12 00 08 00 01 00 76 6c 61 6e 0c 00 02 00',
      '06 00 01 00 64 00 00 00',
    ],
  ],
  [
    'ipvlan l3s into a netns',
    // ip link add link eth0 name ipv0 netns /run/netns/pod mtu 1400 type ipvlan mode l3s
    {
      op: 'ipvlan-add',
      name: 'ipv0',
      parent: 'eth0',
      mode: 'l3s',
      intoNs: '/run/netns/pod',
      mtu: 1400,
    },
    [
      '68 00 00 00 10 00 05 06 00 00 00 00 00 00 00 00',
      '00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00',
      '08 00 1c 00 04 00 00 00 08 00 04 00 78 05 00 00',
      '08 00 05 00 03 00 00 00 09 00 03 00 69 70 76 30',
      '00 00 00 00 24 00 12 00 0a 00 01 00 69 70 76 6c',
      '61 6e 00 00 14 00 02 00 06 00 01 00 02 00 00 00',
      '06 00 02 00 00 00 00 00',
    ],
  ],
  [
    'link set with every field',
    // ip link set dev dm0 down name dm1 address 02:00:00:00:00:01 mtu 1300 master br0 up
    {
      op: 'link-set',
      name: 'dm0',
      down: true,
      newName: 'dm1',
      mac: '02:00:00:00:00:01',
      mtu: 1300,
      master: 'br0',
      up: true,
    },
    [
      '44 00 00 00 10 00 05 00 00 00 00 00 00 00 00 00',
      '00 00 00 00 0b 00 00 00 01 00 00 00 01 00 00 00',
      '0a 00 01 00 02 00 00 00 00 01 00 00 08 00 04 00',
      '14 05 00 00 08 00 0a 00 08 00 00 00 08 00 03 00',
      '64 6d 31 00',
    ],
  ],
  [
    'link set into a netns',
    // ip link set dev dm0p netns /run/netns/pod
    { op: 'link-set', name: 'dm0p', intoNs: '/run/netns/pod' },
    [
      '28 00 00 00 10 00 05 00 00 00 00 00 00 00 00 00',
      '00 00 00 00 0a 00 00 00 00 00 00 00 00 00 00 00',
      '08 00 1c 00 04 00 00 00',
    ],
  ],
  [
    'link up',
    // ip link set dev dm1 up
    { op: 'link-set', name: 'dm1', up: true },
    [
      '20 00 00 00 10 00 05 00 00 00 00 00 00 00 00 00',
      '00 00 00 00 0b 00 00 00 01 00 00 00 01 00 00 00',
    ],
  ],
  [
    'link del',
    // ip link del dev br1
    { op: 'link-del', name: 'br1' },
    [
      '20 00 00 00 11 00 05 00 00 00 00 00 00 00 00 00',
      '00 00 00 00 09 00 00 00 00 00 00 00 00 00 00 00',
    ],
  ],
];

describe('link requests', () => {
  it.each(cases)('%s', (_name, op, want) => {
    expect(bytes(encodeOp(op, ctx))).toBe(hex(want));
  });
});
