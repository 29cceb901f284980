// Netlink wire format (man 7 netlink, man 7 rtnetlink): a 16-byte nlmsghdr, a fixed family
// header (ifinfomsg, ifaddrmsg, rtmsg, ...), then type-length-value attributes, each padded
// to 4 bytes, some nesting further attributes. Host byte order, which is little-endian on
// every platform Tartan ships for. Pure code: no I/O, importable from Node and Bun alike.
import { NLA_TYPE_MASK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSGERR_ATTR_MSG } from './constants.js';

/** A leaf attribute holds bytes; a nest holds an optional fixed header and more attributes. */
export type Attr =
  { type: number; data: Uint8Array } | { type: number; head?: Uint8Array; nest: Attr[] };

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** Everything after the nlmsghdr. */
  body: Uint8Array;
}

const align = (n: number): number => (n + 3) & ~3;
const utf8 = new TextEncoder();
const view = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

export function fixed(size: number, fill: (v: DataView) => void): Uint8Array {
  const b = new Uint8Array(size);
  fill(view(b));
  return b;
}

export const attr = {
  bytes: (type: number, data: Uint8Array): Attr => ({ type, data }),
  u8: (type: number, v: number): Attr => ({ type, data: new Uint8Array([v]) }),
  u16: (type: number, v: number): Attr => ({
    type,
    data: fixed(2, (d) => d.setUint16(0, v, true)),
  }),
  u32: (type: number, v: number): Attr => ({
    type,
    data: fixed(4, (d) => d.setUint32(0, v, true)),
  }),
  /** Network byte order, e.g. a UDP port. */
  be16: (type: number, v: number): Attr => ({ type, data: fixed(2, (d) => d.setUint16(0, v)) }),
  /** NUL-terminated string (interface names). */
  str: (type: number, s: string): Attr => ({ type, data: utf8.encode(`${s}\0`) }),
  /** String without its NUL: what iproute2 sends for IFLA_INFO_KIND; the kernel takes both. */
  chars: (type: number, s: string): Attr => ({ type, data: utf8.encode(s) }),
  nest: (type: number, nest: Attr[], head?: Uint8Array): Attr =>
    head ? { type, head, nest } : { type, nest },
};

function attrsSize(attrs: Attr[]): number {
  let n = 0;
  for (const a of attrs)
    n +=
      'data' in a
        ? align(4 + a.data.length)
        : 4 + (a.head ? align(a.head.length) : 0) + attrsSize(a.nest);
  return n;
}

function writeAttrs(out: Uint8Array, off: number, attrs: Attr[]): number {
  const d = view(out);
  for (const a of attrs) {
    const start = off;
    if ('data' in a) {
      d.setUint16(off, 4 + a.data.length, true);
      d.setUint16(off + 2, a.type, true);
      out.set(a.data, off + 4);
      off += align(4 + a.data.length);
      continue;
    }
    off += 4;
    if (a.head) {
      out.set(a.head, off);
      off += align(a.head.length);
    }
    off = writeAttrs(out, off, a.nest);
    d.setUint16(start, off - start, true);
    d.setUint16(start + 2, a.type, true);
  }
  return off;
}

/** One request: header (sequence number 0 until the socket stamps its own), family header,
 * attributes. */
export function encodeMessage(m: {
  type: number;
  flags: number;
  head: Uint8Array;
  attrs?: Attr[];
  seq?: number;
}): Uint8Array {
  const attrs = m.attrs ?? [];
  const len = 16 + align(m.head.length) + attrsSize(attrs);
  const out = new Uint8Array(len);
  const d = view(out);
  d.setUint32(0, len, true);
  d.setUint16(4, m.type, true);
  d.setUint16(6, m.flags, true);
  d.setUint32(8, m.seq ?? 0, true);
  out.set(m.head, 16);
  writeAttrs(out, 16 + align(m.head.length), attrs);
  return out;
}

export function setSeq(msg: Uint8Array, seq: number): void {
  view(msg).setUint32(8, seq, true);
}

/** Splits a datagram from the kernel into its messages. */
export function parseMessages(buf: Uint8Array): NlMessage[] {
  const d = view(buf);
  const out: NlMessage[] = [];
  let off = 0;
  while (off + 16 <= buf.length) {
    const len = d.getUint32(off, true);
    if (len < 16 || off + len > buf.length) break;
    out.push({
      type: d.getUint16(off + 4, true),
      flags: d.getUint16(off + 6, true),
      seq: d.getUint32(off + 8, true),
      pid: d.getUint32(off + 12, true),
      body: buf.subarray(off + 16, off + len),
    });
    off += align(len);
  }
  return out;
}

/** Attributes in order (type without the NESTED / NET_BYTEORDER bits). */
export function parseAttrs(b: Uint8Array): Array<{ type: number; data: Uint8Array }> {
  const d = view(b);
  const out: Array<{ type: number; data: Uint8Array }> = [];
  let off = 0;
  while (off + 4 <= b.length) {
    const len = d.getUint16(off, true);
    if (len < 4 || off + len > b.length) break;
    out.push({
      type: d.getUint16(off + 2, true) & NLA_TYPE_MASK,
      data: b.subarray(off + 4, off + len),
    });
    off += align(len);
  }
  return out;
}

export function attrMap(b: Uint8Array): Map<number, Uint8Array> {
  const m = new Map<number, Uint8Array>();
  for (const a of parseAttrs(b)) if (!m.has(a.type)) m.set(a.type, a.data);
  return m;
}

export const readU32 = (b: Uint8Array, off = 0): number => view(b).getUint32(off, true);
export const readI32 = (b: Uint8Array, off = 0): number => view(b).getInt32(off, true);
export const readStr = (b: Uint8Array): string => {
  const nul = b.indexOf(0);
  return new TextDecoder().decode(nul < 0 ? b : b.subarray(0, nul));
};

/** An NLMSG_ERROR body: 0 is an ack, else a negative errno, plus the extended ack message
 * (NETLINK_EXT_ACK) that follows the echoed request header (or whole request if uncapped). */
export function parseError(m: NlMessage): { errno: number; extack?: string } {
  const errno = -readI32(m.body, 0) | 0;
  if (!(m.flags & NLM_F_ACK_TLVS) || m.body.length < 20) return { errno };
  const echoed = m.flags & NLM_F_CAPPED ? 16 : readU32(m.body, 4);
  const msg = attrMap(m.body.subarray(4 + align(echoed))).get(NLMSGERR_ATTR_MSG);
  return msg ? { errno, extack: readStr(msg) } : { errno };
}

/** The int that ends a dump: 0, or a negative errno followed directly by ack TLVs. */
export function parseDone(m: NlMessage): { errno: number; extack?: string } {
  const errno = m.body.length >= 4 ? -readI32(m.body, 0) | 0 : 0;
  if (errno === 0 || !(m.flags & NLM_F_ACK_TLVS)) return { errno };
  const msg = attrMap(m.body.subarray(4)).get(NLMSGERR_ATTR_MSG);
  return msg ? { errno, extack: readStr(msg) } : { errno };
}
