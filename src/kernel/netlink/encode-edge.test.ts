// Requests whose bytes differ from a plain iproute2 capture on purpose, the keywords ops may
// carry ("default", "all"), and the refusals that happen before anything is sent.
import { describe, expect, it } from 'vitest';
import { encodeOp } from './encode-ops.js';
import { ctx, bytes } from './encode-fixture.js';
import { getLinkByName } from './encode-links.js';

describe('requests beyond the plain captures', () => {
  it('IPv6 nodad: the header flag iproute2 sets, plus IFA_FLAGS (u32) as modern kernels read', () => {
    // ip addr add fd01::5/64 dev dm1 nodad: 64 bytes, ifa_flags 0x02 ...
    const ip = [
      '40 00 00 00 14 00 05 06 00 00 00 00 00 00 00 00',
      '0a 40 02 00 0b 00 00 00 14 00 02 00 fd 01 00 00',
      '00 00 00 00 00 00 00 00 00 00 00 05 14 00 01 00',
      'fd 01 00 00 00 00 00 00 00 00 00 00 00 00 00 05',
    ].join(' ');
    // ... then 8 more bytes: IFA_FLAGS = IFA_F_NODAD.
    const want = `48${ip.slice(2)} 08 00 08 00 02 00 00 00`;
    const op = { op: 'addr-add', dev: 'dm1', cidr: 'fd01::5/64', nodad: true } as const;
    expect(bytes(encodeOp(op, ctx))).toBe(want);
  });

  it('loopback IPv4 addresses get host scope (ip addr add 127.0.0.5/8 dev eth0)', () => {
    const op = { op: 'addr-add', dev: 'eth0', cidr: '127.0.0.5/8' } as const;
    expect(bytes(encodeOp(op, ctx))).toBe(
      '28 00 00 00 14 00 05 06 00 00 00 00 00 00 00 00 02 08 00 fe 03 00 00 00 ' +
        '08 00 02 00 7f 00 00 05 08 00 01 00 7f 00 00 05',
    );
  });

  it('"default" sends no RTA_DST and takes the family of the gateway', () => {
    // ip route replace default via 10.1.0.254 dev eth0 table 200
    const op = { op: 'route-add', dst: 'default', gw: '10.1.0.254', dev: 'eth0', table: 200 };
    expect(bytes(encodeOp(op as never, ctx))).toBe(
      '2c 00 00 00 18 00 05 05 00 00 00 00 00 00 00 00 02 00 00 00 c8 03 00 01 00 00 00 00 ' +
        '08 00 05 00 0a 01 00 fe 08 00 04 00 03 00 00 00',
    );
  });

  it('"from all" is an empty FRA_SRC (ip rule add from all lookup 100 priority 5)', () => {
    const op = { op: 'rule-add', from: 'all', table: 100, priority: 5 } as const;
    expect(bytes(encodeOp(op, ctx))).toBe(
      '28 00 00 00 20 00 05 06 00 00 00 00 00 00 00 00 02 00 00 00 64 00 00 01 00 00 00 00 ' +
        '04 00 02 00 08 00 06 00 05 00 00 00',
    );
  });

  it('link set keeps ip order: mtu, master, netns, name', () => {
    // ip link set dev dm5 mtu 1400 master br0 netns /run/netns/pod name dm6
    const op = {
      op: 'link-set',
      name: 'dm5',
      mtu: 1400,
      master: 'br0',
      intoNs: '/run/netns/pod',
      newName: 'dm6',
    } as const;
    expect(bytes(encodeOp(op, ctx))).toBe(
      '40 00 00 00 10 00 05 00 00 00 00 00 00 00 00 00 00 00 00 00 0d 00 00 00 00 00 00 00 ' +
        '00 00 00 00 08 00 04 00 78 05 00 00 08 00 0a 00 08 00 00 00 08 00 1c 00 04 00 00 00 ' +
        '08 00 03 00 64 6d 36 00',
    );
  });

  it('link down clears IFF_UP through ifi_change', () => {
    const b = encodeOp({ op: 'link-set', name: 'dm1', down: true }, ctx);
    expect(bytes(b.subarray(16, 32))).toBe('00 00 00 00 0b 00 00 00 00 00 00 00 01 00 00 00');
  });

  it('a name lookup is RTM_GETLINK without stats and without the VF list', () => {
    // As ip sends it, but for the mask: RTEXT_FILTER_SKIP_STATS (8) alone, not | VF (1).
    expect(bytes(getLinkByName('eth0'))).toBe(
      '34 00 00 00 12 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 ' +
        '00 00 00 00 08 00 1d 00 08 00 00 00 09 00 03 00 65 74 68 30 00 00 00 00',
    );
  });
});

describe('refusals before sending', () => {
  it.each([
    [{ op: 'addr-add', dev: 'dm1', cidr: '10.0.0.300/24' }, /invalid address/],
    [{ op: 'addr-add', dev: 'dm1', cidr: '10.0.0.3/33' }, /invalid prefix length/],
    [{ op: 'addr-add', dev: 'dm1', cidr: 'fe80::1%eth0/64' }, /invalid address/],
    [{ op: 'link-set', name: 'dm1', mac: '02:00:00:00:00' }, /invalid MAC/],
    [{ op: 'macvlan-add', name: 'x', parent: 'eth0', mode: 'l2' }, /unknown macvlan mode "l2"/],
    [{ op: 'ipvlan-add', name: 'x', parent: 'eth0', mode: 'bridge' }, /unknown ipvlan mode/],
    [{ op: 'bridge-add', name: 'a-name-far-too-long' }, /invalid interface name/],
    [{ op: 'link-set', name: 'dm1', newName: 'a/b' }, /invalid interface name/],
    [{ op: 'route-add', dst: '10.0.0.0/8', gw: 'fd00::1', dev: 'eth0' }, /not of the family/],
    [{ op: 'route-add', dst: '10.0.0.0/8', dev: 'nosuch' }, /Cannot find device "nosuch"/],
    [{ op: 'sysctl', key: 'net/x', value: '1' }, /no netlink encoding/],
  ])('%j', (op, err) => {
    expect(() => encodeOp(op as never, ctx)).toThrow(err);
  });
});
