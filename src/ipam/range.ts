// Parsing and validation of one address family of a network (schema `Range`) into the
// bigint form the allocator works on. Pure: no I/O. Every malformed definition is refused
// with ERR_IPAM_RANGE before any state is touched.
import { TartanError } from '../cni/errors.js';
import type { Range } from '../network/schema.js';
import { alignDown, bitsOf, type Family, formatIp, parseCidr, parseIp, sizeOf } from './ip.js';
import { type Interval, normalize, subtract, total } from './intervals.js';

/** Default block sizes: 64 addresses per block in both families (as Calico's IPv4 /26). */
export const DEFAULT_BLOCK_PREFIX: Record<Family, number> = { 4: 26, 6: 122 };

// Addresses a pod cannot use as its own: the kernel treats them as local, multicast or
// "no address", and fe80::/10 never leaves the link, so a pod on it is unreachable.
const NOT_UNICAST: Record<Family, (Interval & { what: string; cidr: string })[]> = {
  4: notUnicast(4, [
    ['0.0.0.0/8', '"this network"'],
    ['127.0.0.0/8', 'loopback'],
    ['224.0.0.0/4', 'multicast'],
    ['255.255.255.255/32', 'limited broadcast'],
  ]),
  6: notUnicast(6, [
    ['::/128', 'unspecified'],
    ['::1/128', 'loopback'],
    ['fe80::/10', 'link-local'],
    ['ff00::/8', 'multicast'],
  ]),
};

function notUnicast(family: Family, list: [string, string][]) {
  return list.map(([cidr, what]) => {
    const [lo, len] = parseCidr(cidr, family)!;
    return { lo, hi: lo + sizeOf(family, len) - 1n, what, cidr };
  });
}

/** Network and IPv4 broadcast address of a prefix; RFC 3021 /31 and RFC 6164 /127 have none. */
function edgesOf(family: Family, base: bigint, prefix: number): bigint[] {
  const last = base + sizeOf(family, prefix) - 1n;
  if (family === 4) return prefix <= 30 ? [base, last] : [];
  return prefix <= 126 ? [base] : [];
}

const LINK_LOCAL6 = 0xfe80n << 112n;

/**
 * Why `gw` cannot be the next hop of a route out of a link on base/prefix, or undefined.
 * The kernel accepts a gateway only if a connected route of the link covers it (or, in
 * IPv6, if it is link-local: the route ops always name the device); anything else passes
 * validation and then fails every ADD late with "Nexthop has invalid gateway".
 */
/** nextHopProblem for a network given as CIDR text (host bits ignored), or undefined. */
export function nextHopProblemIn(cidr: string, family: Family, gw: bigint): string | undefined {
  const c = parseCidr(cidr, family);
  return c && nextHopProblem(family, alignDown(c[0], family, c[1]), c[1], gw);
}

export function nextHopProblem(
  family: Family,
  base: bigint,
  prefix: number,
  gw: bigint,
): string | undefined {
  if (family === 6 && alignDown(gw, 6, 10) === LINK_LOCAL6) return undefined;
  const cidr = `${formatIp(base, family)}/${prefix}`;
  if (gw < base || gw > base + sizeOf(family, prefix) - 1n)
    return `is not inside ${cidr}, so it cannot be reached over this network`;
  if (edgesOf(family, base, prefix).includes(gw))
    return `is the network or broadcast address of ${cidr}`;
  return undefined;
}

export interface ParsedRange {
  family: Family;
  /** Canonical "address/prefix" of the network. */
  cidr: string;
  base: bigint;
  prefix: number;
  /** Last address of the cidr (the IPv4 broadcast address). */
  last: bigint;
  /** Effective block prefix: blockPrefix, or the default, but never shorter than the cidr. */
  blockPrefix: number;
  /** Allocation pools (normalized, inside the cidr); the whole cidr when none are given. */
  pools: Interval[];
  /** Excluded addresses (normalized, clipped to the cidr). */
  excludes: Interval[];
  /** Network address, IPv4 broadcast address, gateway and route next hops: never handed out. */
  reserved: bigint[];
  /** pools - excludes - reserved: the addresses that may be handed out. */
  usable: Interval[];
  capacity: bigint;
  gateway: string | undefined;
  routes: { dst: string; gw?: string }[];
}

export function parseRange(range: Range, family: Family, where: string): ParsedRange {
  const bad = (msg: string): never => {
    throw new TartanError('ERR_IPAM_RANGE', `${where}: ${msg}`);
  };
  const bits = bitsOf(family);
  const cidrParsed = parseCidr(range.cidr, family);
  if (!cidrParsed) bad(`cidr "${range.cidr}" is not an IPv${family} CIDR`);
  const [addr, prefix] = cidrParsed!;
  const base = alignDown(addr, family, prefix);
  if (base !== addr)
    bad(`cidr "${range.cidr}" has host bits set (network is ${formatIp(base, family)}/${prefix})`);
  const last = base + sizeOf(family, prefix) - 1n;
  const inside = (v: bigint) => v >= base && v <= last;
  const cidr = `${formatIp(base, family)}/${prefix}`;
  const special = NOT_UNICAST[family].find((x) => x.lo <= last && x.hi >= base);
  if (special)
    bad(
      `cidr ${cidr} overlaps ${special.cidr} (${special.what}): pods need routable unicast addresses`,
    );

  const ip = (s: string, what: string): bigint => {
    const v = parseIp(s, family);
    if (v === undefined) bad(`${what} "${s}" is not an IPv${family} address`);
    return v!;
  };

  const pools: Interval[] = [];
  for (const [i, p] of (range.pools ?? []).entries()) {
    const lo = ip(p.start, `pools[${i}].start`);
    const hi = ip(p.end, `pools[${i}].end`);
    if (lo > hi) bad(`pools[${i}]: start ${p.start} is after end ${p.end}`);
    if (!inside(lo) || !inside(hi)) bad(`pools[${i}] ${p.start}-${p.end} is not inside ${cidr}`);
    pools.push({ lo, hi });
  }
  if (pools.length === 0) pools.push({ lo: base, hi: last });

  const excludes: Interval[] = [];
  for (const [i, x] of (range.excludes ?? []).entries()) {
    let lo: bigint;
    let hi: bigint;
    if (x.includes('/')) {
      const c = parseCidr(x, family);
      if (!c) bad(`excludes[${i}] "${x}" is not an IPv${family} address or CIDR`);
      lo = alignDown(c![0], family, c![1]);
      hi = lo + sizeOf(family, c![1]) - 1n;
    } else {
      lo = hi = ip(x, `excludes[${i}]`);
    }
    // A typo here would silently hand out an address meant to be kept free: refuse it.
    if (hi < base || lo > last) bad(`excludes[${i}] "${x}" does not overlap ${cidr}`);
    excludes.push({ lo: lo < base ? base : lo, hi: hi > last ? last : hi });
  }

  const reserved = edgesOf(family, base, prefix);
  let gateway: string | undefined;
  if (range.gateway !== undefined) {
    const gw = ip(range.gateway, 'gateway');
    if (!inside(gw)) bad(`gateway ${range.gateway} is not inside ${cidr}`);
    if (reserved.includes(gw)) bad(`gateway ${range.gateway} is the network or broadcast address`);
    reserved.push(gw);
    gateway = formatIp(gw, family);
  }

  const routes: { dst: string; gw?: string }[] = [];
  for (const [i, r] of (range.routes ?? []).entries()) {
    const dst = parseCidr(r.dst, family);
    if (!dst) bad(`routes[${i}].dst "${r.dst}" is not an IPv${family} CIDR`);
    if (alignDown(dst![0], family, dst![1]) !== dst![0])
      bad(`routes[${i}].dst "${r.dst}" has host bits set`);
    const route: { dst: string; gw?: string } = { dst: `${formatIp(dst![0], family)}/${dst![1]}` };
    if (r.gw !== undefined) {
      const gw = ip(r.gw, `routes[${i}].gw`);
      const problem = nextHopProblem(family, base, prefix, gw);
      if (problem) bad(`routes[${i}]: gateway ${r.gw} ${problem}`);
      // The router's own address: a pod given it would answer for the router.
      if (inside(gw)) reserved.push(gw);
      route.gw = formatIp(gw, family);
    }
    routes.push(route);
  }

  const requested = range.blockPrefix;
  if (requested !== undefined && (requested < prefix || requested > bits))
    bad(`blockPrefix /${requested} must be between the cidr prefix /${prefix} and /${bits}`);
  const blockPrefix = requested ?? Math.max(DEFAULT_BLOCK_PREFIX[family], prefix);

  const normPools = normalize(pools);
  const normExcludes = normalize(excludes);
  const reservedIv = normalize(reserved.map((v) => ({ lo: v, hi: v })));
  const usable = subtract(subtract(normPools, normExcludes), reservedIv);
  return {
    family,
    cidr,
    base,
    prefix,
    last,
    blockPrefix,
    pools: normPools,
    excludes: normExcludes,
    reserved: [...new Set(reserved)].sort((a, b) => (a < b ? -1 : 1)),
    usable,
    capacity: total(usable),
    gateway,
    routes,
  };
}
