// Exact bytes of the requests, against what iproute2 6.1 sends for the command ops.ts maps
// each op to (captured with `strace -e trace=sendmsg -e write=3 ip ...`, sequence number
// zeroed): eth0 is ifindex 3, vx0 5, br0 8, br1 9, dm0p 10, dm0/dm1 11, the netns fd 4.
import { describe, expect, it } from 'vitest';
import { encodeOp, type NetlinkOp } from './encode-ops.js';
import { ctx, hex, bytes } from './encode-fixture.js';

const cases: Array<[string, NetlinkOp, string[]]> = [
  [
    'IPv4 address',
    // ip addr add 10.2.0.5/24 dev dm1 (nodad is IPv6 only)
    { op: 'addr-add', dev: 'dm1', cidr: '10.2.0.5/24', nodad: true },
    [
      '28 00 00 00 14 00 05 06 00 00 00 00 00 00 00 00',
      '02 18 00 00 0b 00 00 00 08 00 02 00 0a 02 00 05',
      '08 00 01 00 0a 02 00 05',
    ],
  ],
  [
    'IPv4 address del',
    // ip addr del 10.2.0.5/24 dev dm1
    { op: 'addr-del', dev: 'dm1', cidr: '10.2.0.5/24' },
    [
      '28 00 00 00 15 00 05 00 00 00 00 00 00 00 00 00',
      '02 18 00 00 0b 00 00 00 08 00 02 00 0a 02 00 05',
      '08 00 01 00 0a 02 00 05',
    ],
  ],
  [
    'IPv6 address del',
    // ip addr del fd01::5/64 dev dm1
    { op: 'addr-del', dev: 'dm1', cidr: 'fd01::5/64' },
    [
      '40 00 00 00 15 00 05 00 00 00 00 00 00 00 00 00',
      '0a 40 00 00 0b 00 00 00 14 00 02 00 fd 01 00 00',
      '00 00 00 00 00 00 00 00 00 00 00 05 14 00 01 00',
      'fd 01 00 00 00 00 00 00 00 00 00 00 00 00 00 05',
    ],
  ],
  [
    'IPv4 route without gateway: link scope',
    // ip route replace 10.3.0.0/16 dev eth0
    { op: 'route-add', dst: '10.3.0.0/16', dev: 'eth0' },
    [
      '2c 00 00 00 18 00 05 05 00 00 00 00 00 00 00 00',
      '02 10 00 00 fe 03 fd 01 00 00 00 00 08 00 01 00',
      '0a 03 00 00 08 00 04 00 03 00 00 00',
    ],
  ],
  [
    'IPv4 default route',
    // ip route replace 0.0.0.0/0 via 10.1.0.254 dev eth0
    { op: 'route-add', dst: '0.0.0.0/0', gw: '10.1.0.254', dev: 'eth0' },
    [
      '34 00 00 00 18 00 05 05 00 00 00 00 00 00 00 00',
      '02 00 00 00 fe 03 00 01 00 00 00 00 08 00 01 00',
      '00 00 00 00 08 00 05 00 0a 01 00 fe 08 00 04 00',
      '03 00 00 00',
    ],
  ],
  [
    'IPv4 route with every field',
    // ip route replace 10.4.0.0/16 via 10.9.0.1 dev eth0 onlink src 10.1.0.1 metric 50 table 100
    {
      op: 'route-add',
      dst: '10.4.0.0/16',
      gw: '10.9.0.1',
      dev: 'eth0',
      onlink: true,
      src: '10.1.0.1',
      metric: 50,
      table: 100,
    },
    [
      '44 00 00 00 18 00 05 05 00 00 00 00 00 00 00 00',
      '02 10 00 00 64 03 00 01 04 00 00 00 08 00 01 00',
      '0a 04 00 00 08 00 05 00 0a 09 00 01 08 00 07 00',
      '0a 01 00 01 08 00 06 00 32 00 00 00 08 00 04 00',
      '03 00 00 00',
    ],
  ],
  [
    'IPv4 route in a table > 255',
    // ip route replace 10.1.0.0/24 dev eth0 table 1000
    { op: 'route-add', dst: '10.1.0.0/24', dev: 'eth0', table: 1000 },
    [
      '34 00 00 00 18 00 05 05 00 00 00 00 00 00 00 00',
      '02 18 00 00 00 03 fd 01 00 00 00 00 08 00 01 00',
      '0a 01 00 00 08 00 0f 00 e8 03 00 00 08 00 04 00',
      '03 00 00 00',
    ],
  ],
  [
    'IPv6 default route in a table > 255',
    // ip route replace ::/0 via fd00::fe dev eth0 table 1000
    { op: 'route-add', dst: '::/0', gw: 'fd00::fe', dev: 'eth0', table: 1000 },
    [
      '54 00 00 00 18 00 05 05 00 00 00 00 00 00 00 00',
      '0a 00 00 00 00 03 00 01 00 00 00 00 14 00 01 00',
      '00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00',
      '14 00 05 00 fd 00 00 00 00 00 00 00 00 00 00 00',
      '00 00 00 fe 08 00 0f 00 e8 03 00 00 08 00 04 00',
      '03 00 00 00',
    ],
  ],
  [
    'IPv6 route without gateway: universe scope',
    // ip route replace fd05::/64 dev eth0
    { op: 'route-add', dst: 'fd05::/64', dev: 'eth0' },
    [
      '38 00 00 00 18 00 05 05 00 00 00 00 00 00 00 00',
      '0a 40 00 00 fe 03 00 01 00 00 00 00 14 00 01 00',
      'fd 05 00 00 00 00 00 00 00 00 00 00 00 00 00 00',
      '08 00 04 00 03 00 00 00',
    ],
  ],
  [
    'IPv4 rule, table > 255',
    // ip rule add from 10.1.0.1/32 lookup 1000 priority 1000
    { op: 'rule-add', from: '10.1.0.1/32', table: 1000, priority: 1000 },
    [
      '34 00 00 00 20 00 05 06 00 00 00 00 00 00 00 00',
      '02 00 20 00 00 00 00 01 00 00 00 00 08 00 02 00',
      '0a 01 00 01 08 00 0f 00 e8 03 00 00 08 00 06 00',
      'e8 03 00 00',
    ],
  ],
  [
    'IPv4 rule, small table',
    // ip rule add from 10.1.0.1/32 lookup 100 priority 1001
    { op: 'rule-add', from: '10.1.0.1/32', table: 100, priority: 1001 },
    [
      '2c 00 00 00 20 00 05 06 00 00 00 00 00 00 00 00',
      '02 00 20 00 64 00 00 01 00 00 00 00 08 00 02 00',
      '0a 01 00 01 08 00 06 00 e9 03 00 00',
    ],
  ],
  [
    'IPv6 rule',
    // ip -6 rule add from fd00::1/128 lookup 1000 priority 1000
    { op: 'rule-add', from: 'fd00::1/128', table: 1000, priority: 1000 },
    [
      '40 00 00 00 20 00 05 06 00 00 00 00 00 00 00 00',
      '0a 00 80 00 00 00 00 01 00 00 00 00 14 00 02 00',
      'fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01',
      '08 00 0f 00 e8 03 00 00 08 00 06 00 e8 03 00 00',
    ],
  ],
  [
    'IPv4 rule del',
    // ip rule del from 10.1.0.1/32 lookup 1000 priority 1000
    { op: 'rule-del', from: '10.1.0.1/32', table: 1000, priority: 1000 },
    [
      '34 00 00 00 21 00 05 00 00 00 00 00 00 00 00 00',
      '02 00 20 00 00 00 00 00 00 00 00 00 08 00 02 00',
      '0a 01 00 01 08 00 0f 00 e8 03 00 00 08 00 06 00',
      'e8 03 00 00',
    ],
  ],
  [
    'IPv6 rule del',
    // ip -6 rule del from fd00::1/128 lookup 1000 priority 1000
    { op: 'rule-del', from: 'fd00::1/128', table: 1000, priority: 1000 },
    [
      '40 00 00 00 21 00 05 00 00 00 00 00 00 00 00 00',
      '0a 00 80 00 00 00 00 00 00 00 00 00 14 00 02 00',
      'fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01',
      '08 00 0f 00 e8 03 00 00 08 00 06 00 e8 03 00 00',
    ],
  ],
  [
    'fdb append',
    // bridge fdb append 00:00:00:00:00:00 dev vx0 dst 10.1.0.9
    { op: 'fdb-append', dev: 'vx0', dst: '10.1.0.9' },
    [
      '30 00 00 00 1c 00 05 0c 00 00 00 00 00 00 00 00',
      '07 00 00 00 05 00 00 00 c0 00 02 00 0a 00 02 00',
      '00 00 00 00 00 00 00 00 08 00 01 00 0a 01 00 09',
    ],
  ],
];

describe('address, route, rule and fdb requests', () => {
  it.each(cases)('%s', (_name, op, want) => {
    expect(bytes(encodeOp(op, ctx))).toBe(hex(want));
  });
});
