// Addresses as the kernel wants them: raw bytes in network order, with the family and the
// prefix length carried beside them, as iproute2's get_prefix() reads its arguments.
// Parsing by hand (src/cni/addr.ts), to inet_pton()'s rules.
import { digits, parse4, parse6 } from '../../cni/addr.js';
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
