// Address <-> bigint conversion. All IPAM arithmetic is done on bigints so an IPv6 /64 (or
// any prefix) costs the same as an IPv4 /24: nothing is ever expanded into a bitmap.
import { formatBytes, parse4, parse6 } from '../cni/addr.js';

export type Family = 4 | 6;

export const bitsOf = (family: Family): number => (family === 4 ? 32 : 128);

/**
 * Strict parse of one address of the given family, or undefined: IPv4 as four decimal
 * octets (no "10.1", no "0x0a.0.0.1"), IPv6 without a zone id. A configured address in a
 * telco network file must be written out in full.
 */
export function parseIp(s: string, family: Family): bigint | undefined {
  const bytes = family === 4 ? (s.includes(':') ? undefined : parse4(s)) : parse6(s);
  return bytes && bytesToBig(bytes);
}

/** Family of an address string (4, 6) or undefined if it is not a strict address. */
export function familyOf(s: string): Family | undefined {
  if (parseIp(s, 4) !== undefined) return 4;
  if (parseIp(s, 6) !== undefined) return 6;
  return undefined;
}

/** Parses "addr/len" (len within the family's width) into [address, prefix length]. */
export function parseCidr(s: string, family: Family): [bigint, number] | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIp(s.slice(0, slash), family);
  const lenText = s.slice(slash + 1);
  if (ip === undefined || !/^\d{1,3}$/.test(lenText)) return undefined;
  const len = Number(lenText);
  if (len > bitsOf(family)) return undefined;
  return [ip, len];
}

export function formatIp(v: bigint, family: Family): string {
  const n = family === 4 ? 4 : 16;
  const bytes = new Array<number>(n);
  let x = v;
  for (let i = n - 1; i >= 0; i--) {
    bytes[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  // IPv6 in the RFC 5952 canonical form, so keys derived from it are stable.
  return formatBytes(bytes);
}

/** Number of addresses in a prefix of length len. */
export const sizeOf = (family: Family, len: number): bigint => 1n << BigInt(bitsOf(family) - len);

/** First address of the prefix of length len containing v. */
export const alignDown = (v: bigint, family: Family, len: number): bigint =>
  v & ~(sizeOf(family, len) - 1n);

/** First address of a stored "address/prefix" string (validated when it was read). */
export const cidrStart = (cidr: string, family: Family): bigint =>
  parseIp(cidr.slice(0, cidr.indexOf('/')), family)!;

function bytesToBig(bytes: number[]): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}
