// The fixed family headers that follow nlmsghdr in rtnetlink requests (linux/rtnetlink.h,
// if_link.h, if_addr.h, fib_rules.h, neighbour.h). Fields left out are zero.
import { fixed } from './message.js';

export function ifinfomsg(h: { family?: number; index?: number; flags?: number; change?: number }) {
  return fixed(16, (d) => {
    d.setUint8(0, h.family ?? 0);
    d.setInt32(4, h.index ?? 0, true);
    d.setUint32(8, h.flags ?? 0, true);
    d.setUint32(12, h.change ?? 0, true);
  });
}

export function ifaddrmsg(h: {
  family: number;
  prefixlen: number;
  flags?: number;
  scope?: number;
  index: number;
}) {
  return fixed(8, (d) => {
    d.setUint8(0, h.family);
    d.setUint8(1, h.prefixlen);
    d.setUint8(2, h.flags ?? 0);
    d.setUint8(3, h.scope ?? 0);
    d.setUint32(4, h.index, true);
  });
}

/** struct rtmsg and struct fib_rule_hdr share one layout: 8 bytes then a u32 of flags. */
function eightAndFlags(bytes: number[], flags: number): Uint8Array {
  return fixed(12, (d) => {
    for (let i = 0; i < 8; i++) d.setUint8(i, bytes[i] ?? 0);
    d.setUint32(8, flags, true);
  });
}

export function rtmsg(h: {
  family: number;
  dstLen: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  flags?: number;
}) {
  const b = [h.family, h.dstLen, 0, 0, h.table, h.protocol, h.scope, h.type];
  return eightAndFlags(b, h.flags ?? 0);
}

export function fibRuleHdr(h: { family: number; srcLen: number; table: number; action: number }) {
  return eightAndFlags([h.family, 0, h.srcLen, 0, h.table, 0, 0, h.action], 0);
}

export function ndmsg(h: { family: number; ifindex: number; state: number; flags: number }) {
  return fixed(12, (d) => {
    d.setUint8(0, h.family);
    d.setInt32(4, h.ifindex, true);
    d.setUint16(8, h.state, true);
    d.setUint8(10, h.flags);
  });
}
