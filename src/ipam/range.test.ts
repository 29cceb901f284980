import { describe, expect, it } from 'vitest';
import type { Range } from '../network/schema.js';
import { formatIp, parseIp } from './ip.js';
import { normalize, subtract } from './intervals.js';
import { parseRange } from './range.js';

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
};

describe('parseRange', () => {
  it('reserves network, broadcast and gateway and applies pools and excludes', () => {
    const r = parseRange(
      {
        cidr: '10.0.0.0/27',
        pools: [{ start: '10.0.0.1', end: '10.0.0.20' }],
        excludes: ['10.0.0.5', '10.0.0.8/30'],
        gateway: '10.0.0.1',
      },
      4,
      't',
    );
    expect(r.cidr).toBe('10.0.0.0/27');
    expect(r.blockPrefix).toBe(27); // default /26 is shorter than the cidr: one block
    expect(r.reserved.map((v) => formatIp(v, 4))).toEqual(['10.0.0.0', '10.0.0.1', '10.0.0.31']);
    // 2,3,4 6,7 12..20
    expect(r.capacity).toBe(14n);
    expect(r.usable.map((i) => [formatIp(i.lo, 4), formatIp(i.hi, 4)])).toEqual([
      ['10.0.0.2', '10.0.0.4'],
      ['10.0.0.6', '10.0.0.7'],
      ['10.0.0.12', '10.0.0.20'],
    ]);
  });

  it('handles an IPv6 /64 with bigint arithmetic and the /122 default block', () => {
    const r = parseRange({ cidr: 'fd00:1::/64', gateway: 'fd00:1::1' }, 6, 't');
    expect(r.blockPrefix).toBe(122);
    expect(r.capacity).toBe(2n ** 64n - 2n); // minus the subnet-router anycast and the gateway
    expect(formatIp(r.last, 6)).toBe('fd00:1::ffff:ffff:ffff:ffff');
  });

  it('treats /31 and /32 (RFC 3021) and /127 (RFC 6164) as having no network address', () => {
    expect(parseRange({ cidr: '10.0.0.0/31' }, 4, 't').capacity).toBe(2n);
    expect(parseRange({ cidr: '10.0.0.7/32' }, 4, 't').capacity).toBe(1n);
    expect(parseRange({ cidr: 'fd00::/127' }, 6, 't').capacity).toBe(2n);
  });

  it('canonicalises addresses and keeps an explicit blockPrefix', () => {
    const r = parseRange(
      { cidr: 'FD00:0:0:0::/120', blockPrefix: 126, routes: [{ dst: '::/0', gw: 'fd00::0:1' }] },
      6,
      't',
    );
    expect(r.cidr).toBe('fd00::/120');
    expect(r.blockPrefix).toBe(126);
    expect(r.routes).toEqual([{ dst: '::/0', gw: 'fd00::1' }]);
  });

  it('reserves route next hops inside the cidr; an IPv6 link-local one is not in it', () => {
    const r = parseRange(
      {
        cidr: '10.0.0.0/24',
        gateway: '10.0.0.1',
        routes: [
          { dst: '10.20.0.0/16', gw: '10.0.0.254' },
          { dst: '10.30.0.0/16', gw: '10.0.0.1' },
        ],
      },
      4,
      't',
    );
    expect(r.reserved.map((v) => formatIp(v, 4))).toEqual([
      '10.0.0.0',
      '10.0.0.1',
      '10.0.0.254',
      '10.0.0.255',
    ]);
    expect(r.capacity).toBe(252n);
    expect(r.usable.map((i) => [formatIp(i.lo, 4), formatIp(i.hi, 4)])).toEqual([
      ['10.0.0.2', '10.0.0.253'],
    ]);
    const ll = parseRange({ cidr: 'fd00::/64', routes: [{ dst: '::/0', gw: 'FE80::1' }] }, 6, 't');
    expect(ll.routes).toEqual([{ dst: '::/0', gw: 'fe80::1' }]);
    expect(ll.reserved).toEqual([ll.base]);
    // RFC 3021: the lower address of a /31 is a host, and may be the other end's.
    const p2p = parseRange(
      { cidr: '10.0.0.0/31', routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.0' }] },
      4,
      't',
    );
    expect(p2p.capacity).toBe(1n);
  });

  const bad: [string, Range, 4 | 6][] = [
    ['not a cidr', { cidr: '10.0.0.0' }, 4],
    ['garbage cidr', { cidr: 'ten/8' }, 4],
    ['prefix too long', { cidr: '10.0.0.0/33' }, 4],
    ['short IPv4 form', { cidr: '10.1/16' }, 4],
    ['wrong family', { cidr: 'fd00::/64' }, 4],
    ['wrong family v6', { cidr: '10.0.0.0/24' }, 6],
    ['host bits set', { cidr: '10.0.0.5/24' }, 4],
    ['zone id', { cidr: 'fe80::%eth0/64' }, 6],
    [
      'pool start after end',
      { cidr: '10.0.0.0/24', pools: [{ start: '10.0.0.9', end: '10.0.0.8' }] },
      4,
    ],
    [
      'pool outside cidr',
      { cidr: '10.0.0.0/24', pools: [{ start: '10.0.0.9', end: '10.0.1.8' }] },
      4,
    ],
    ['pool bad address', { cidr: '10.0.0.0/24', pools: [{ start: 'x', end: '10.0.0.8' }] }, 4],
    ['pool wrong family', { cidr: 'fd00::/64', pools: [{ start: '10.0.0.1', end: 'fd00::8' }] }, 6],
    ['gateway outside', { cidr: '10.0.0.0/24', gateway: '10.0.1.1' }, 4],
    ['gateway is network address', { cidr: '10.0.0.0/24', gateway: '10.0.0.0' }, 4],
    ['gateway is broadcast', { cidr: '10.0.0.0/24', gateway: '10.0.0.255' }, 4],
    ['gateway malformed', { cidr: '10.0.0.0/24', gateway: '10.0.0' }, 4],
    ['exclude malformed', { cidr: '10.0.0.0/24', excludes: ['10.0.0.300'] }, 4],
    ['exclude bad cidr', { cidr: '10.0.0.0/24', excludes: ['10.0.0.0/40'] }, 4],
    ['exclude wrong family', { cidr: '10.0.0.0/24', excludes: ['fd00::1'] }, 4],
    ['exclude outside', { cidr: '10.0.0.0/24', excludes: ['10.9.0.0/24'] }, 4],
    ['route dst malformed', { cidr: '10.0.0.0/24', routes: [{ dst: '10.1.0.0' }] }, 4],
    ['route dst host bits', { cidr: '10.0.0.0/24', routes: [{ dst: '10.1.0.1/16' }] }, 4],
    ['route dst wrong family', { cidr: '10.0.0.0/24', routes: [{ dst: '::/0' }] }, 4],
    ['route gw malformed', { cidr: '10.0.0.0/24', routes: [{ dst: '0.0.0.0/0', gw: 'gw' }] }, 4],
    [
      'route gw outside',
      { cidr: '10.0.0.0/24', routes: [{ dst: '10.20.0.0/16', gw: '192.168.99.1' }] },
      4,
    ],
    [
      'route gw network',
      { cidr: '10.0.0.0/24', routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.0' }] },
      4,
    ],
    [
      'route gw broadcast',
      { cidr: '10.0.0.0/24', routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.255' }] },
      4,
    ],
    ['route gw outside v6', { cidr: 'fd00::/64', routes: [{ dst: '::/0', gw: 'fd01::1' }] }, 6],
    [
      'route gw subnet-router anycast',
      { cidr: 'fd00::/64', routes: [{ dst: '::/0', gw: 'fd00::' }] },
      6,
    ],
    ['multicast cidr', { cidr: '224.0.0.0/4' }, 4],
    ['loopback cidr', { cidr: '127.0.0.0/8' }, 4],
    ['"this network" cidr', { cidr: '0.0.0.0/8' }, 4],
    ['cidr of everything', { cidr: '0.0.0.0/0' }, 4],
    ['limited broadcast cidr', { cidr: '255.255.255.254/31' }, 4],
    ['unspecified cidr', { cidr: '::/128' }, 6],
    ['loopback cidr v6', { cidr: '::1/128' }, 6],
    ['multicast cidr v6', { cidr: 'ff00::/8' }, 6],
    ['link-local cidr', { cidr: 'fe80::/64' }, 6],
    ['blockPrefix shorter than cidr', { cidr: '10.0.0.0/24', blockPrefix: 23 }, 4],
    ['blockPrefix too long v4', { cidr: '10.0.0.0/24', blockPrefix: 33 }, 4],
    ['blockPrefix too long v6', { cidr: 'fd00::/64', blockPrefix: 129 }, 6],
  ];
  it.each(bad)('refuses %s with ERR_IPAM_RANGE', (_name, range, family) => {
    expect(code(() => parseRange(range, family, 'network n ipv4'))).toBe('ERR_IPAM_RANGE');
  });

  it('says why a route gateway or a cidr is refused', () => {
    const route = { dst: '10.20.0.0/16', gw: '192.168.99.1' };
    expect(() => parseRange({ cidr: '10.0.0.0/24', routes: [route] }, 4, 'n')).toThrow(
      'n: routes[0]: gateway 192.168.99.1 is not inside 10.0.0.0/24, so it cannot be reached over this network',
    );
    expect(() => parseRange({ cidr: '224.0.0.0/24' }, 4, 'n')).toThrow(
      'n: cidr 224.0.0.0/24 overlaps 224.0.0.0/4 (multicast): pods need routable unicast addresses',
    );
    expect(() => parseRange({ cidr: 'fe80::/64' }, 6, 'n')).toThrow(
      /overlaps fe80::\/10 \(link-local\)/,
    );
  });

  it('names the network in the message', () => {
    expect(() => parseRange({ cidr: '10.0.0.5/24' }, 4, 'network blue ipv4')).toThrow(
      /network blue ipv4: cidr "10.0.0.5\/24" has host bits set \(network is 10.0.0.0\/24\)/,
    );
  });
});

describe('intervals', () => {
  it('merges adjacent intervals and subtracts', () => {
    const iv = (lo: number, hi: number) => ({ lo: BigInt(lo), hi: BigInt(hi) });
    expect(normalize([iv(5, 9), iv(1, 4), iv(12, 12), iv(8, 10)])).toEqual([iv(1, 10), iv(12, 12)]);
    expect(subtract([iv(1, 10), iv(20, 30)], [iv(0, 1), iv(5, 5), iv(9, 21), iv(30, 40)])).toEqual([
      iv(2, 4),
      iv(6, 8),
      iv(22, 29),
    ]);
  });

  it('parses strictly', () => {
    expect(parseIp('010.0.0.1', 4)).toBeUndefined();
    expect(parseIp('1.2.3.4', 6)).toBeUndefined();
    expect(parseIp('::ffff:1.2.3.4', 6)).toBe(0xffff01020304n);
    expect(formatIp(0xffff01020304n, 6)).toBe('::ffff:102:304');
  });
});
