// Garbage collection of leaked addresses, and pool usage.
//
// The CNI GC verb runs in a short-lived process and the runtime's list of valid attachments
// can trail a pod that is being created right now, so one observation is never enough: the
// first run writes gcMark (the time it saw the alloc without a valid attachment) into the
// alloc itself, and a later run releases it only if it is still invalid a grace period after
// that mark. An alloc whose attachment is valid again has its mark cleared. GC lists every
// block (it is periodic, not per pod, so a full list is affordable) and so also finds allocs
// the per-node index no longer points at.
//
// Borrow pointers (nodes/<node>/borrowed/<handle>) are written before the alloc they point
// at, so one whose alloc never came (a lost race, a failed store write, a crash) is left
// behind, and every allocation on that node reads it from then on. GC treats them like
// allocs: marked when first seen leading to no alloc of their handle, deleted at that
// revision a grace period later if the block, read again, still holds none. Re-pointing
// writes a new revision, which saves it.
import { type Ctx, dropPointer } from './state.js';
import { cidrStart, type Family, formatIp } from './ip.js';
import type { ParsedRange } from './range.js';
import {
  type Alloc,
  asClaim,
  type Block,
  type Claim,
  getBlock,
  handleOf,
  keys,
  listBlocks,
  listNodes,
  type PointerEntry,
} from './records.js';
import { CONFLICT, retrying } from './retry.js';
import type { Entry } from '../store/types.js';
import type { Usage } from './types.js';

export const DEFAULT_GC_GRACE_MS = 5 * 60_000;

export interface GcInput {
  net: string;
  node: string | undefined;
  valid: Array<{ containerId: string; ifname: string }>;
  graceMs: number;
  now: number;
}

export async function collect(ctx: Ctx, g: GcInput): Promise<{ marked: number; released: number }> {
  const valid = new Set(g.valid.map((v) => handleOf(v.containerId, v.ifname)));
  const prefix = keys.claims(g.net);
  const claims = new Map<string, Claim>();
  for (const e of await ctx.store.list(prefix))
    claims.set(decodeURIComponent(e.key.slice(prefix.length)), asClaim(e).value);
  let marked = 0;
  let released = 0;
  for (const f of [4, 6] as const) {
    const { blocks, pointers } = await listNodes(ctx.store, g.net, f);
    for (const first of blocks) {
      let e: typeof first | undefined = first;
      const dropped: Alloc[] = [];
      await retrying(ctx.retry, `network ${g.net}: gc of ${first.value.cidr}`, async (n) => {
        if (n > 0) e = await getBlock(ctx.store, first.key, f);
        if (!e) return;
        const r = sweep(e.value, f, g, valid, claims);
        if (r.marked + r.released + r.cleared === 0) return;
        if ((await ctx.store.update(e.key, r.next, e.rev)) === undefined) return CONFLICT;
        marked += r.marked;
        released += r.released;
        dropped.push(...r.dropped);
      });
      for (const a of dropped)
        if (a.handle !== null && a.node !== first.value.node)
          await dropPointer(ctx, g.net, f, a.node, a.handle, first.value.cidr);
    }
    await sweepPointers(ctx, g, f, blocks, pointers);
  }
  return { marked, released };
}

async function sweepPointers(
  ctx: Ctx,
  g: GcInput,
  f: Family,
  blocks: Entry<Block>[],
  pointers: PointerEntry[],
): Promise<void> {
  const byKey = new Map(blocks.map((b) => [b.key, b.value]));
  const holds = (b: Block | undefined, handle: string) =>
    b !== undefined && Object.values(b.allocs).some((a) => a.handle === handle);
  for (const { node, handle, e } of pointers) {
    if (g.node !== undefined && node !== g.node) continue;
    const { block, blockNode, gcMark } = e.value;
    const at = keys.block(g.net, f, blockNode, block);
    // Updates and deletes are compare-and-swaps at the listed revision: a pointer changed
    // since is left for the next run.
    if (holds(byKey.get(at), handle)) {
      if (gcMark !== undefined) await ctx.store.update(e.key, { block, blockNode }, e.rev);
    } else if (gcMark === undefined) {
      await ctx.store.update(e.key, { block, blockNode, gcMark: g.now }, e.rev);
    } else if (g.now - gcMark >= g.graceMs) {
      if (!holds((await getBlock(ctx.store, at, f))?.value, handle))
        await ctx.store.delete(e.key, e.rev);
    }
  }
}

function sweep(b: Block, f: Family, g: GcInput, valid: Set<string>, claims: Map<string, Claim>) {
  const start = cidrStart(b.cidr, f);
  const allocs: Block['allocs'] = {};
  const dropped: Alloc[] = [];
  let marked = 0;
  let released = 0;
  let cleared = 0;
  for (const [off, a] of Object.entries(b.allocs)) {
    allocs[off] = a;
    if (g.node !== undefined && a.node !== g.node) continue;
    const ref = a.claim === undefined ? undefined : claims.get(a.claim)?.[f === 4 ? 'v4' : 'v6'];
    const claimed =
      ref !== undefined &&
      ref.block === b.cidr &&
      ref.seq === a.seq &&
      ref.address === formatIp(start + BigInt(off), f);
    const live = claimed || (a.handle !== null && valid.has(a.handle));
    if (live) {
      if (a.gcMark !== undefined) {
        const { gcMark: _m, ...rest } = a;
        allocs[off] = rest;
        cleared++;
      }
    } else if (a.gcMark === undefined) {
      allocs[off] = { ...a, gcMark: g.now };
      marked++;
    } else if (g.now - a.gcMark >= g.graceMs) {
      delete allocs[off];
      dropped.push(a);
      released++;
    }
  }
  return { next: { ...b, allocs }, marked, released, cleared, dropped };
}

export async function usageOf(ctx: Ctx, net: string, ranges: ParsedRange[]): Promise<Usage[]> {
  return Promise.all(
    ranges.map(async (r) => {
      const blocks = await listBlocks(ctx.store, net, r.family);
      const inUse = blocks.reduce((n, e) => n + Object.keys(e.value.allocs).length, 0);
      return { family: r.family, capacity: r.capacity, inUse, blocks: blocks.length };
    }),
  );
}
