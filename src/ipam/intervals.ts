// Closed intervals of addresses [lo, hi] as bigints. Pools, excludes and the usable space
// of a range are kept as short sorted lists of these, never as per-address sets.

export interface Interval {
  lo: bigint;
  hi: bigint;
}

/** Sorts and merges overlapping or adjacent intervals. */
export function normalize(list: readonly Interval[]): Interval[] {
  const sorted = [...list].sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
  const out: Interval[] = [];
  for (const iv of sorted) {
    const last = out[out.length - 1];
    if (last && iv.lo <= last.hi + 1n) {
      if (iv.hi > last.hi) last.hi = iv.hi;
    } else out.push({ lo: iv.lo, hi: iv.hi });
  }
  return out;
}

/** a minus b; both normalized. */
export function subtract(a: readonly Interval[], b: readonly Interval[]): Interval[] {
  const out: Interval[] = [];
  let j = 0;
  for (const iv of a) {
    let lo = iv.lo;
    while (j < b.length && b[j]!.hi < lo) j++;
    let k = j;
    while (k < b.length && b[k]!.lo <= iv.hi) {
      const cut = b[k]!;
      if (cut.lo > lo) out.push({ lo, hi: cut.lo - 1n });
      if (cut.hi + 1n > lo) lo = cut.hi + 1n;
      k++;
    }
    if (lo <= iv.hi) out.push({ lo, hi: iv.hi });
  }
  return out;
}

/** The parts of a normalized list that fall inside [lo, hi]. */
export function clip(list: readonly Interval[], lo: bigint, hi: bigint): Interval[] {
  const out: Interval[] = [];
  for (let i = firstEndingAtOrAfter(list, lo); i < list.length; i++) {
    const iv = list[i]!;
    if (iv.lo > hi) break;
    out.push({ lo: iv.lo > lo ? iv.lo : lo, hi: iv.hi < hi ? iv.hi : hi });
  }
  return out;
}

export function contains(list: readonly Interval[], v: bigint): boolean {
  const iv = list[firstEndingAtOrAfter(list, v)];
  return iv !== undefined && iv.lo <= v;
}

export const total = (list: readonly Interval[]): bigint =>
  list.reduce((n, iv) => n + (iv.hi - iv.lo + 1n), 0n);

/** The n-th address (0-based) of a normalized list, or undefined if n >= total. */
export function nth(list: readonly Interval[], n: bigint): bigint | undefined {
  let left = n;
  for (const iv of list) {
    const len = iv.hi - iv.lo + 1n;
    if (left < len) return iv.lo + left;
    left -= len;
  }
  return undefined;
}

/** The first address >= v in a normalized list, or undefined. */
export function nextIn(list: readonly Interval[], v: bigint): bigint | undefined {
  const iv = list[firstEndingAtOrAfter(list, v)];
  if (!iv) return undefined;
  return iv.lo > v ? iv.lo : v;
}

/** Binary search: index of the first interval whose hi >= v (list.length if none). */
function firstEndingAtOrAfter(list: readonly Interval[], v: bigint): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]!.hi < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
