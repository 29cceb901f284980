// The wire format both ways: encoding nested attributes and decoding what the kernel sends
// back (acks, errors with an extended ack message, the end of a dump), plus the address and
// errno helpers the driver builds its requests and messages from.
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { formatBytes as formatIp } from '../../cni/addr.js';
import { parseIp, parseMac, parsePrefix } from './addr.js';
import { NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_MULTI } from './constants.js';
import { SysError, errnoName, errnoText } from './errno.js';
import { ifinfomsg } from './headers.js';
import {
  attr,
  attrMap,
  encodeMessage,
  parseAttrs,
  parseDone,
  parseError,
  parseMessages,
  readStr,
  readU32,
  setSeq,
} from './message.js';

const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
};

describe('messages and attributes', () => {
  it('round-trips nested attributes with a fixed header inside a nest', () => {
    const msg = encodeMessage({
      type: 16,
      flags: 0x605,
      head: ifinfomsg({ index: 7, flags: 1, change: 1 }),
      attrs: [
        attr.str(3, 'net1'),
        attr.nest(18, [
          attr.chars(1, 'veth'),
          attr.nest(2, [attr.nest(1, [attr.u16(9, 5)], ifinfomsg({}))]),
        ]),
        attr.be16(15, 4789),
      ],
    });
    setSeq(msg, 42);
    const [m, ...rest] = parseMessages(msg);
    expect(rest).toEqual([]);
    expect(m).toMatchObject({ type: 16, flags: 0x605, seq: 42, pid: 0 });
    expect(readU32(m!.body, 4)).toBe(7);
    const a = attrMap(m!.body.subarray(16));
    expect(readStr(a.get(3)!)).toBe('net1');
    expect(Array.from(a.get(15)!)).toEqual([0x12, 0xb5]);
    const info = attrMap(a.get(18)!);
    expect(readStr(info.get(1)!)).toBe('veth');
    const peer = attrMap(info.get(2)!).get(1)!;
    expect(peer.length).toBe(16 + 8);
    expect(parseAttrs(peer.subarray(16))).toEqual([{ type: 9, data: Uint8Array.of(5, 0) }]);
  });

  it('splits a datagram into messages and stops at a truncated one', () => {
    const a = encodeMessage({ type: 1, flags: 0, head: new Uint8Array(4), seq: 1 });
    const b = encodeMessage({ type: 2, flags: 0, head: new Uint8Array(4), seq: 2 });
    const both = concat(a, b);
    expect(parseMessages(both).map((m) => m.seq)).toEqual([1, 2]);
    expect(parseMessages(both.subarray(0, both.length - 1)).map((m) => m.seq)).toEqual([1]);
  });

  it('reads an ack, and an error with its extended ack message (capped)', () => {
    const echoed = encodeMessage({ type: 20, flags: 0x605, head: new Uint8Array(8), seq: 9 });
    const ack = encodeMessage({
      type: NLMSG_ERROR,
      flags: NLM_F_CAPPED,
      head: concat(Uint8Array.of(0, 0, 0, 0), echoed.subarray(0, 16)),
      seq: 9,
    });
    expect(parseError(parseMessages(ack)[0]!)).toEqual({ errno: 0 });
    const err = encodeMessage({
      type: NLMSG_ERROR,
      flags: NLM_F_CAPPED | NLM_F_ACK_TLVS,
      head: concat(Uint8Array.of(0xef, 0xff, 0xff, 0xff), echoed.subarray(0, 16)),
      attrs: [attr.str(1, 'ipv4: Address already assigned'), attr.u32(2, 24)],
      seq: 9,
    });
    expect(parseError(parseMessages(err)[0]!)).toEqual({
      errno: 17,
      extack: 'ipv4: Address already assigned',
    });
  });

  it('skips a whole echoed request when the ack is not capped', () => {
    const req = encodeMessage({
      type: 24,
      flags: 5,
      head: new Uint8Array(12),
      attrs: [attr.u32(4, 3)],
    });
    const err = encodeMessage({
      type: NLMSG_ERROR,
      flags: NLM_F_ACK_TLVS,
      head: concat(Uint8Array.of(0x9b, 0xff, 0xff, 0xff), req),
      attrs: [attr.str(1, 'Nexthop has invalid gateway')],
    });
    expect(parseError(parseMessages(err)[0]!)).toEqual({
      errno: 101,
      extack: 'Nexthop has invalid gateway',
    });
  });

  it('reads the end of a dump, with ack TLVs right after the error', () => {
    const done = (errno: number, attrs: ReturnType<typeof attr.str>[] = []) => {
      const head = new Uint8Array(4);
      new DataView(head.buffer).setInt32(0, -errno, true);
      const flags = NLM_F_MULTI | (attrs.length ? NLM_F_ACK_TLVS : 0);
      return parseMessages(encodeMessage({ type: NLMSG_DONE, flags, head, attrs }))[0]!;
    };
    expect(parseDone(done(0))).toEqual({ errno: 0 });
    expect(parseDone(done(22))).toEqual({ errno: 22 });
    expect(parseDone(done(22, [attr.str(1, 'bad filter')]))).toEqual({
      errno: 22,
      extack: 'bad filter',
    });
  });
});

describe('addresses', () => {
  it('parses prefixes like iproute2', () => {
    expect(parsePrefix('10.1.0.0/16')).toMatchObject({ family: 2, len: 16, explicit: true });
    expect(parsePrefix('10.1.0.7')).toMatchObject({ family: 2, len: 32, explicit: false });
    expect(parsePrefix('fd00::/8')).toMatchObject({ family: 10, len: 8 });
    expect(Array.from(parseIp('fd00::1').bytes)).toEqual([0xfd, ...Array(14).fill(0), 1]);
    expect(() => parseIp('10.1')).toThrow(/invalid address/);
    expect(() => parsePrefix('10.0.0.0/x')).toThrow(/invalid prefix length/);
  });

  it('parses what inet_pton parses, to the same bytes as ipaddr.js', () => {
    const good = [
      '::',
      '::1',
      '1::',
      'fd00::1',
      'FD00:0:0:0:0:0:0:A',
      '2001:db8:1:2:3:4:5:6',
      '1:2:3:4:5:6:7::',
      '::2:3:4:5:6:7:8',
      '::ffff:192.0.2.1',
      '64:ff9b::10.0.0.1',
      '1:2:3:4:5:6:10.0.0.1',
      '0.0.0.0',
      '255.255.255.255',
      '192.0.2.10',
    ];
    for (const s of good)
      expect(Array.from(parseIp(s).bytes), s).toEqual(ipaddr.parse(s).toByteArray());
    // ipaddr.js reads this one as ::ffff:192.0.2.1; inet_pton does not.
    expect(Array.from(parseIp('::192.0.2.1').bytes)).toEqual([...Array(12).fill(0), 192, 0, 2, 1]);
    const bad = [
      '',
      ':',
      ':::',
      '1:::2',
      '1::2::3',
      ':1::2',
      '1::2:',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7',
      '1:2:3:4:5:6:7:8::',
      '12345::',
      'g::1',
      '::1.2.3',
      '1.2.3.4::',
      '::1.2.3.256',
      '1.2.3',
      '1.2.3.4.5',
      '01.2.3.4',
      '256.1.1.1',
      '1.2.3.-4',
      ' 1.2.3.4',
      'fe80::1%eth0',
    ];
    for (const s of bad) expect(() => parseIp(s), s).toThrow(/invalid address/);
  });

  it('parses MACs and prints addresses back', () => {
    expect(Array.from(parseMac('02:AA:b:0:00:ff'))).toEqual([2, 0xaa, 0xb, 0, 0, 0xff]);
    expect(() => parseMac('02:aa:bb:cc:dd:ee:ff')).toThrow(/invalid MAC/);
    expect(formatIp(Uint8Array.of(10, 0, 0, 1))).toBe('10.0.0.1');
    expect(formatIp(parseIp('fd00:0:0::a:1').bytes)).toBe('fd00::a:1');
  });
});

describe('errno', () => {
  it('names and words errors as strerror does', () => {
    expect([errnoName(17), errnoText(17)]).toEqual(['EEXIST', 'File exists']);
    expect([errnoName(95), errnoText(95)]).toEqual(['EOPNOTSUPP', 'Operation not supported']);
    expect(errnoName(3)).toBe('ESRCH');
    expect(errnoText(999)).toBe('Unknown error 999');
    expect(new SysError(19).message).toBe('No such device (ENODEV)');
    expect(new SysError(101, 'Nexthop has invalid gateway.', 'x').message).toBe(
      'x: Network is unreachable (ENETUNREACH): Nexthop has invalid gateway',
    );
  });
});
