// Decoding link and address dumps into the shape the iproute2 driver gives.
import { describe, expect, it } from 'vitest';
import * as C from './constants.js';
import { parseIp } from './addr.js';
import { NetlinkSocket, type Libc } from './ffi.js';
import { ifaddrmsg, ifinfomsg } from './headers.js';
import { attr, encodeMessage, parseMessages, type NlMessage } from './message.js';
import {
  addrDumpRequest,
  decodeAddrs,
  decodeLinks,
  linkDumpRequest,
  readAddresses,
} from './read.js';

const link = (index: number, name: string) =>
  encodeMessage({
    type: C.RTM_NEWLINK,
    flags: C.NLM_F_MULTI,
    head: ifinfomsg({ index }),
    attrs: [attr.u32(C.IFLA_MTU, 1500), attr.str(C.IFLA_IFNAME, name)],
  });

const addr = (index: number, cidr: string, o: { flags?: number; wide?: number } = {}) => {
  const [ip, len] = cidr.split('/') as [string, string];
  const p = parseIp(ip);
  const attrs = [attr.bytes(C.IFA_ADDRESS, p.bytes)];
  // The kernel sends IFA_LOCAL for IPv4 only.
  if (p.family === C.AF_INET) attrs.push(attr.bytes(C.IFA_LOCAL, p.bytes));
  if (o.wide !== undefined) attrs.push(attr.u32(C.IFA_FLAGS, o.wide));
  return encodeMessage({
    type: C.RTM_NEWADDR,
    flags: C.NLM_F_MULTI,
    head: ifaddrmsg({ family: p.family, prefixlen: Number(len), flags: o.flags ?? 0, index }),
    attrs,
  });
};

const msgs = (...parts: Uint8Array[]): NlMessage[] => parts.flatMap((p) => parseMessages(p));

describe('address dump', () => {
  const links = msgs(link(1, 'lo'), link(7, 'net1'), link(9, 'net2'));
  // The kernel dumps IPv4 for every link, then IPv6.
  const addrs = msgs(
    addr(1, '127.0.0.1/8'),
    addr(9, '10.2.0.5/24'),
    addr(7, '10.1.0.5/24'),
    addr(7, '10.1.0.6/24'),
    addr(1, '::1/128', { wide: 0x80 }),
    addr(7, 'fd00::5/64', { flags: 0x02, wide: C.IFA_F_NODAD }),
    addr(9, 'fd00:2::5/64', { flags: 0, wide: C.IFA_F_TENTATIVE | C.IFA_F_DADFAILED }),
  );

  it('decodes names and addresses', () => {
    expect([...decodeLinks(links)]).toEqual([
      [1, 'lo'],
      [7, 'net1'],
      [9, 'net2'],
    ]);
    expect(decodeAddrs(addrs)[5]).toEqual({ index: 7, family: 6, cidr: 'fd00::5/64', flags: 2 });
  });

  it('groups by link in link order, IPv4 first, with iproute2 flag names', () => {
    const seen: number[] = [];
    const got = readAddresses((req) => {
      seen.push(parseMessages(req)[0]!.type);
      return req[4] === C.RTM_GETLINK ? links : addrs;
    });
    expect(seen).toEqual([C.RTM_GETLINK, C.RTM_GETADDR]);
    expect(got).toEqual([
      { dev: 'lo', family: 4, cidr: '127.0.0.1/8', flags: [] },
      { dev: 'lo', family: 6, cidr: '::1/128', flags: [] },
      { dev: 'net1', family: 4, cidr: '10.1.0.5/24', flags: [] },
      { dev: 'net1', family: 4, cidr: '10.1.0.6/24', flags: [] },
      { dev: 'net1', family: 6, cidr: 'fd00::5/64', flags: ['nodad'] },
      { dev: 'net2', family: 4, cidr: '10.2.0.5/24', flags: [] },
      { dev: 'net2', family: 6, cidr: 'fd00:2::5/64', flags: ['tentative', 'dadfailed'] },
    ]);
  });

  it('asks for dumps', () => {
    const [l] = parseMessages(linkDumpRequest());
    const [a] = parseMessages(addrDumpRequest());
    expect([l!.type, l!.flags, a!.type, a!.flags]).toEqual([18, 0x301, 22, 0x301]);
  });
});

describe('a reply larger than the receive buffer', () => {
  it('is an error that says so, not a wait for the timeout', () => {
    // A netlink socket copies what fits and, with MSG_TRUNC, returns the whole length.
    const MSG_TRUNC = 0x20;
    let reply: Uint8Array | undefined;
    const libc = {
      socket: () => 7,
      setsockopt: () => 0,
      close: () => 0,
      send: (_fd: number, b: Uint8Array) => {
        const seq = new DataView(b.buffer, b.byteOffset).getUint32(8, true);
        // A NIC with a few hundred VFs, had their list been asked for.
        reply = encodeMessage({
          type: 16,
          flags: 0,
          seq,
          head: ifinfomsg({ index: 42 }),
          attrs: [attr.str(3, 'ens1f0'), attr.bytes(22, new Uint8Array(340 * 196))],
        });
        return b.length;
      },
      recv: (_fd: number, buf: Uint8Array, len: number, flags: number) => {
        const d = reply;
        if (!d) return -1; // the rest was dropped: nothing more comes (EAGAIN at SO_RCVTIMEO)
        reply = undefined;
        buf.set(d.subarray(0, Math.min(len, d.length)));
        return flags & MSG_TRUNC ? d.length : Math.min(len, d.length);
      },
      errno: () => 11,
    } as unknown as Libc;
    const sock = NetlinkSocket.open(libc);
    expect(() => sock.transact(linkDumpRequest(), 'dump')).toThrow(
      /netlink reply of \d+ bytes is larger than the 65536-byte buffer/,
    );
  });
});
