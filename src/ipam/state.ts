// Shared building blocks of the store-facing IPAM: the context, and the single-record
// compare-and-swap writes every path is made of. Each write returns CONFLICT when its CAS
// lost a race; the caller then starts over from fresh reads (retry.ts).
import { TartanError } from '../cni/errors.js';
import type { Entry, Store } from '../store/types.js';
import type { NodeCache } from './cache.js';
import { blockStart, type BlockSpan, toAllocation } from './allocator.js';
import type { Family } from './ip.js';
import type { ParsedRange } from './range.js';
import { type Alloc, type Block, type Borrowed, getBorrowed, keys } from './records.js';
import { CONFLICT, type Conflict, type RetryPolicy } from './retry.js';
import type { Allocation } from './types.js';

export interface Ctx {
  /** Wrapped by `cache` when there is one, so that it follows this instance's writes. */
  store: Store;
  retry: RetryPolicy;
  now: () => number;
  cache: NodeCache | undefined;
  /** The `meta` records this instance found to match a spec (meta.ts). */
  metaOk: Set<string>;
}

/** One address family of one network. */
export interface Fam {
  net: string;
  r: ParsedRange;
}

export interface Got {
  alloc: Allocation;
  /** False when the handle already held the address (idempotent repeat or claim rebind). */
  created: boolean;
}

export interface Owner {
  node: string;
  handle: string;
  claim: string | undefined;
}

export type BlockEntry = Entry<Block>;

export interface Found {
  e: BlockEntry;
  off: string;
  a: Alloc;
}

/** Every alloc of a handle among the given blocks. */
export function allocsOf(blocks: readonly (BlockEntry | undefined)[], handle: string): Found[] {
  const out: Found[] = [];
  for (const e of blocks)
    for (const [off, a] of Object.entries(e?.value.allocs ?? {}))
      if (a.handle === handle) out.push({ e: e!, off, a });
  return out;
}

export const allocationOf = (r: ParsedRange, e: BlockEntry, off: string, a: Alloc) =>
  toAllocation(r, e.value, blockStart(r, e.value.cidr) + BigInt(off), a.seq);

function newAlloc(o: Owner, seq: number): Alloc {
  const a: Alloc = { handle: o.handle, seq, node: o.node };
  if (o.claim !== undefined) a.claim = o.claim;
  return a;
}

/** CAS: the block with a new alloc at off. */
export async function addTo(ctx: Ctx, fam: Fam, e: BlockEntry, off: bigint, o: Owner) {
  const seq = e.value.seq + 1;
  const allocs = { ...e.value.allocs, [String(off)]: newAlloc(o, seq) };
  const next: Block = { cidr: e.value.cidr, node: e.value.node, seq, allocs };
  if ((await ctx.store.update(e.key, next, e.rev)) === undefined) return CONFLICT;
  const addr = blockStart(fam.r, e.value.cidr) + off;
  return { alloc: toAllocation(fam.r, next, addr, seq), created: true };
}

/** Creates the record of a claimed block (its cidrs record says `node`) holding one alloc. */
export async function createBlock(
  ctx: Ctx,
  fam: Fam,
  span: BlockSpan,
  node: string | null,
  off: bigint,
  o: Owner,
) {
  const block: Block = { cidr: span.cidr, node, seq: 1, allocs: { [String(off)]: newAlloc(o, 1) } };
  const key = keys.block(fam.net, fam.r.family, node, span.cidr);
  if ((await ctx.store.create(key, block)) === undefined) return CONFLICT;
  return { alloc: toAllocation(fam.r, block, span.start + off, 1), created: true };
}

/**
 * Records that the handle holds an address in a block that is not its node's own. `cur` is
 * the pointer as the caller already read it (null: known to be absent; undefined: read it).
 */
export async function pointAt(
  ctx: Ctx,
  fam: Fam,
  o: Owner,
  to: Borrowed,
  cur?: Entry<Borrowed> | null,
) {
  const key = keys.borrowed(fam.net, fam.r.family, o.node, o.handle);
  const e = cur === null ? undefined : (cur ?? (await getBorrowed(ctx.store, key)));
  // A pointer GC has marked is written again: the new revision is what keeps GC from
  // deleting it (it deletes only the revision it marked).
  if (
    e &&
    e.value.block === to.block &&
    e.value.blockNode === to.blockNode &&
    e.value.gcMark === undefined
  )
    return true;
  const rev = e ? await ctx.store.update(key, to, e.rev) : await ctx.store.create(key, to);
  return rev === undefined ? CONFLICT : true;
}

/** Drops a node's pointer from a handle to a block (best effort: it is only a hint). */
export async function dropPointer(
  ctx: Ctx,
  net: string,
  f: Family,
  node: string,
  handle: string,
  cidr: string,
) {
  const key = keys.borrowed(net, f, node, handle);
  for (let i = 0; i < 3; i++) {
    const e = await getBorrowed(ctx.store, key);
    if (!e || e.value.block !== cidr || (await ctx.store.delete(key, e.rev))) return;
  }
}

/** Points an existing alloc (a persistent claim's, or the handle's own) at this owner. */
export async function rebind(ctx: Ctx, fam: Fam, f: Found, o: Owner): Promise<Got | Conflict> {
  const { e, off, a } = f;
  // The pointer must exist before the alloc names the handle, or a repeat would miss it.
  if (a.handle !== o.handle && e.value.node !== o.node) {
    const to = { block: e.value.cidr, blockNode: e.value.node };
    if ((await pointAt(ctx, fam, o, to)) === CONFLICT) return CONFLICT;
  }
  const na: Alloc = { handle: o.handle, seq: a.seq, node: o.node };
  const claim = o.claim ?? a.claim;
  if (claim !== undefined) na.claim = claim;
  const next: Block = { ...e.value, allocs: { ...e.value.allocs, [off]: na } };
  if ((await ctx.store.update(e.key, next, e.rev)) === undefined) return CONFLICT;
  return { alloc: allocationOf(fam.r, e, off, a), created: false };
}

/**
 * The handle already holds this alloc: return it, binding it to the request's claim. A GC
 * mark on it goes: the handle is asking for it now (a repeated ADD after one that died
 * before the pod was recorded anywhere), and the mark's time would let the next GC free it
 * long before a grace period has passed since then.
 */
export async function existing(ctx: Ctx, fam: Fam, f: Found, o: Owner): Promise<Got | Conflict> {
  if (o.claim === undefined || f.a.claim === o.claim) {
    if (f.a.gcMark !== undefined) {
      const { gcMark: _mark, ...a } = f.a;
      const next: Block = { ...f.e.value, allocs: { ...f.e.value.allocs, [f.off]: a } };
      if ((await ctx.store.update(f.e.key, next, f.e.rev)) === undefined) return CONFLICT;
    }
    return { alloc: allocationOf(fam.r, f.e, f.off, f.a), created: false };
  }
  if (f.a.claim !== undefined)
    throw new TartanError(
      'ERR_IPAM_CLAIM',
      `network ${fam.net}: ${o.handle} already holds an address of claim ${f.a.claim}`,
    );
  return rebind(ctx, fam, f, o);
}
