// Addresses as the kernel wants them: raw bytes in network order, with the family and the
// prefix length carried beside them, as iproute2's get_prefix() reads its arguments.
// Parsing is by hand, to inet_pton()'s rules: ipaddr.js costs ~1 ms for its first IPv6
// parse in a fresh Bun process and ~40 us after, against a budget of < 1 ms for a whole
// attachment. Printing (reads only, off the ADD path) uses ipaddr.js.
import ipaddr from 'ipaddr.js';
import { AF_INET, AF_INET6 } from './constants.js';

export interface IpBytes {
  family: typeof AF_INET | typeof AF_INET6;
  bytes: Uint8Array;
}

export interface Prefix extends IpBytes {
  len: number;
  /** Whether the text said "/len" (iproute2 treats a bare address as a host prefix). */
  explicit: boolean;
}

/** A run of 1..max digits in the given base, or -1. */
function digits(s: string, base: 10 | 16, max: number): number {
  if (s.length === 0 || s.length > max) return -1;
  let v = 0;
  for (let i = 0; i < s.length; i++) {
    const d = parseInt(s[i]!, base);
    if (Number.isNaN(d)) return -1;
    v = v * base + d;
  }
  return v;
}

function parse4(s: string): number[] | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const p of parts) {
    const v = digits(p, 10, 3);
    // inet_pton refuses leading zeros (no octal guessing).
    if (v < 0 || v > 255 || (p.length > 1 && p[0] === '0')) return undefined;
    out.push(v);
  }
  return out;
}

function groups(s: string): number[] | undefined {
  if (s === '') return [];
  const out: number[] = [];
  for (const p of s.split(':')) {
    const v = digits(p, 16, 4);
    if (v < 0) return undefined;
    out.push(v >> 8, v & 0xff);
  }
  return out;
}

function parse6(s: string): number[] | undefined {
  let text = s;
  let tail: number[] = [];
  // A dotted IPv4 address may end it (::ffff:192.0.2.1).
  if (s.includes('.')) {
    const c = s.lastIndexOf(':');
    const v4 = c < 0 ? undefined : parse4(s.slice(c + 1));
    if (!v4) return undefined;
    tail = v4;
    text = s.endsWith(`::${s.slice(c + 1)}`) ? s.slice(0, c + 1) : s.slice(0, c);
  }
  const gap = text.indexOf('::');
  if (gap !== text.lastIndexOf('::')) return undefined;
  if (gap < 0) {
    const all = groups(text);
    return all && all.length + tail.length === 16 ? [...all, ...tail] : undefined;
  }
  const head = groups(text.slice(0, gap));
  const rest = groups(text.slice(gap + 2));
  if (!head || !rest) return undefined;
  const fill = 16 - head.length - rest.length - tail.length;
  // "::" stands for at least one group.
  if (fill < 2) return undefined;
  return [...head, ...new Array<number>(fill).fill(0), ...rest, ...tail];
}

export function parseIp(s: string): IpBytes {
  const v4 = s.includes(':') ? undefined : parse4(s);
  if (v4) return { family: AF_INET, bytes: new Uint8Array(v4) };
  const v6 = v4 || !s.includes(':') ? undefined : parse6(s);
  if (v6) return { family: AF_INET6, bytes: new Uint8Array(v6) };
  throw new Error(`invalid address ${JSON.stringify(s)}`);
}

/** "a.b.c.d/n", "x::y/n" or a bare address. */
export function parsePrefix(s: string): Prefix {
  const slash = s.indexOf('/');
  const ip = parseIp(slash < 0 ? s : s.slice(0, slash));
  const max = ip.family === AF_INET ? 32 : 128;
  if (slash < 0) return { ...ip, len: max, explicit: false };
  const len = digits(s.slice(slash + 1), 10, 3);
  if (len < 0 || len > max) throw new Error(`invalid prefix length in ${JSON.stringify(s)}`);
  return { ...ip, len, explicit: true };
}

/** iproute2's "default" / "all" keywords: the zero-length prefix of either family. */
export const isAnyKeyword = (s: string): boolean => s === 'default' || s === 'all' || s === 'any';

export function parseMac(s: string): Uint8Array {
  const parts = s.split(':');
  const bytes = parts.map((p) => digits(p, 16, 2));
  if (parts.length !== 6 || bytes.some((b) => b < 0))
    throw new Error(`invalid MAC address ${JSON.stringify(s)}`);
  return new Uint8Array(bytes);
}

/** Text form of 4 or 16 address bytes, as iproute2 prints them. */
export function formatIp(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  if (b.length === 16) return ipaddr.fromByteArray(Array.from(b)).toString();
  throw new Error(`unexpected address length ${b.length}`);
}
