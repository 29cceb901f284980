// The pure allocator: which addresses a range offers, where a block starts, which address
// of a block is free, and whether a fixed address may be handed out. No I/O; every function
// works on bigints and the sparse alloc map of one block.
import { TartanError } from '../cni/errors.js';
import { alignDown, cidrStart, formatIp, parseIp, sizeOf } from './ip.js';
import { contains, nextIn, nth } from './intervals.js';
import type { ParsedRange } from './range.js';
import type { Block } from './records.js';
import type { Allocation } from './types.js';

export interface BlockSpan {
  start: bigint;
  end: bigint;
  cidr: string;
}

export function blockOf(r: ParsedRange, addr: bigint): BlockSpan {
  const start = alignDown(addr, r.family, r.blockPrefix);
  return {
    start,
    end: start + sizeOf(r.family, r.blockPrefix) - 1n,
    cidr: `${formatIp(start, r.family)}/${r.blockPrefix}`,
  };
}

/**
 * Parses a fixed-address request ("10.0.0.5" or "10.0.0.5/24") and checks that it may be
 * handed out. The checks run before any store access so a refused request changes nothing.
 */
export function checkFixed(r: ParsedRange, request: string, where: string): bigint {
  const slash = request.indexOf('/');
  const text = slash < 0 ? request : request.slice(0, slash);
  const addr = parseIp(text, r.family);
  const fail = (
    code: 'ERR_IPAM_OUT_OF_RANGE' | 'ERR_IPAM_RESERVED' | 'ERR_IPAM_EXCLUDED',
    m: string,
  ) => new TartanError(code, `${where}: ${m}`);
  if (addr === undefined)
    throw fail('ERR_IPAM_OUT_OF_RANGE', `"${request}" is not an IPv${r.family} address`);
  if (slash >= 0 && request.slice(slash + 1) !== String(r.prefix))
    throw fail(
      'ERR_IPAM_OUT_OF_RANGE',
      `${request}: the prefix length must be the network's /${r.prefix}`,
    );
  if (addr < r.base || addr > r.last)
    throw fail('ERR_IPAM_OUT_OF_RANGE', `${text} is not inside ${r.cidr}`);
  if (r.reserved.includes(addr)) {
    const what =
      addr === r.base
        ? 'network address'
        : addr === r.last && r.family === 4
          ? 'broadcast address'
          : text === r.gateway
            ? 'gateway'
            : 'route next hop';
    throw fail('ERR_IPAM_RESERVED', `${text} is the ${what} of ${r.cidr}`);
  }
  if (contains(r.excludes, addr))
    throw fail('ERR_IPAM_EXCLUDED', `${text} is in an excluded range of ${r.cidr}`);
  if (!contains(r.pools, addr))
    throw fail('ERR_IPAM_OUT_OF_RANGE', `${text} is outside every allocation pool of ${r.cidr}`);
  return addr;
}

/** Lowest address of the block that the range offers and no alloc holds, as an offset. */
export function lowestFree(r: ParsedRange, b: Block): bigint | undefined {
  const start = blockStart(r, b.cidr);
  const end = start + sizeOf(r.family, Number(b.cidr.slice(b.cidr.indexOf('/') + 1))) - 1n;
  let cursor = start;
  for (;;) {
    const a = nextIn(r.usable, cursor);
    if (a === undefined || a > end) return undefined;
    const off = a - start;
    if (b.allocs[String(off)] === undefined) return off;
    cursor = a + 1n;
  }
}

/** How many blocks' worth of the range a new block is picked from at random (see below). */
export const PROBE_BLOCKS = 1024n;

/**
 * A random usable address among the first PROBE_BLOCKS blocks' worth of the range: random so
 * nodes claiming blocks at the same time rarely pick the same one, but within a window so an
 * IPv6 /64 is still used from its start (fd00::1:0 rather than fd00::94aa:4d5e:d3ad:1000).
 */
export function randomUsable(r: ParsedRange, random: () => number): bigint | undefined {
  const window = PROBE_BLOCKS * sizeOf(r.family, r.blockPrefix);
  const span = r.capacity < window ? r.capacity : window;
  if (span === 0n) return undefined;
  return nth(r.usable, (BigInt(Math.floor(random() * 2 ** 53)) * span) >> 53n);
}

/**
 * First block (walking forward from `from` and wrapping) that offers a usable address and
 * does not exist yet. Jumps over existing blocks and unusable gaps, so the cost is bounded by
 * the number of existing blocks, not by the size of the range.
 */
export function findNewBlock(
  r: ParsedRange,
  exists: (start: bigint) => boolean,
  from: bigint,
): BlockSpan | undefined {
  let cursor = from;
  for (let pass = 0; pass < 2; pass++) {
    for (;;) {
      const a = nextIn(r.usable, cursor);
      if (a === undefined || (pass === 1 && a > from)) break;
      const span = blockOf(r, a);
      if (!exists(span.start)) return span;
      cursor = span.end + 1n;
    }
    cursor = r.base;
  }
  return undefined;
}

export function toAllocation(
  r: ParsedRange,
  block: { cidr: string; node: string | null },
  addr: bigint,
  seq: number,
): Allocation {
  const a: Allocation = {
    family: r.family,
    address: formatIp(addr, r.family),
    prefixLength: r.prefix,
    seq,
    block: block.cidr,
    blockNode: block.node,
  };
  if (r.gateway !== undefined) a.gateway = r.gateway;
  return a;
}

export const blockStart = (r: ParsedRange, cidr: string): bigint => cidrStart(cidr, r.family);
