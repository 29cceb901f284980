// Dynamic and fixed allocation into node-affine blocks. Key layout: records.ts.
//
// Common path of a dynamic allocation: one list of the node's records (its blocks and its
// pointers; skipped when the instance's node cache has them), one compare-and-swap on a
// block with room. Claiming a new block costs two creates; only when no block is free does
// a node list the network's blocks and borrow an address from another node's block.
import { TartanError } from '../cni/errors.js';
import type { Entry } from '../store/types.js';
import {
  blockOf,
  blockStart,
  findNewBlock,
  lowestFree,
  randomUsable,
  type BlockSpan,
} from './allocator.js';
import { cidrStart, formatIp } from './ip.js';
import { claimBlock } from './meta.js';
import {
  type Block,
  getBlock,
  getBorrowed,
  getCidr,
  holderOf,
  keys,
  listBlocks,
  listCidrs,
  classifyNode,
  type NodeRecords,
} from './records.js';
import { CONFLICT, type Conflict, retrying } from './retry.js';
import {
  addTo,
  allocsOf,
  type BlockEntry,
  createBlock,
  type Ctx,
  existing,
  type Fam,
  type Got,
  type Owner,
  pointAt,
  rebind,
} from './state.js';

function exhausted(fam: Fam): never {
  throw new TartanError(
    'ERR_IPAM_EXHAUSTED',
    `network ${fam.net}: no free IPv${fam.r.family} address in ${fam.r.cidr}`,
  );
}

/** The node's records: from the instance's cache on a first attempt, else one list. */
async function nodeRecords(ctx: Ctx, fam: Fam, node: string, fresh: boolean) {
  const prefix = keys.node(fam.net, fam.r.family, node);
  const hit = fresh ? undefined : ctx.cache?.get(prefix);
  if (hit) return { recs: classifyNode(prefix, hit, fam.r.family), cached: true };
  const entries = await ctx.store.list(prefix);
  const recs = classifyNode(prefix, entries, fam.r.family);
  ctx.cache?.put(prefix, entries);
  return { recs, cached: false };
}

/** Fills the node cache (if any, and if empty) ahead of an allocation. */
export async function warmNode(ctx: Ctx, fam: Fam, node: string): Promise<void> {
  if (ctx.cache && !ctx.cache.get(keys.node(fam.net, fam.r.family, node)))
    await nodeRecords(ctx, fam, node, true);
}

export function allocDynamic(ctx: Ctx, fam: Fam, o: Owner): Promise<Got> {
  const { net, r } = fam;
  return retrying(ctx.retry, `network ${net}: allocating an IPv${r.family} address`, async (n) => {
    const first = await nodeRecords(ctx, fam, o.node, n > 0);
    let recs = first.recs;
    // The cached copy serves the common path only. Anything else starts from fresh reads:
    // a cached "already holds one" may have been released by another process since, and
    // full blocks may have room again.
    const common =
      allocsOf(recs.blocks, o.handle).length === 0 &&
      !recs.borrowed.has(o.handle) &&
      recs.blocks.some((e) => lowestFree(r, e.value) !== undefined);
    if (first.cached && !common) recs = (await nodeRecords(ctx, fam, o.node, true)).recs;
    const mine = allocsOf(recs.blocks, o.handle)[0] ?? (await viaPointer(ctx, fam, recs, o.handle));
    if (mine) return existing(ctx, fam, mine, o);
    for (const e of recs.blocks) {
      const off = lowestFree(r, e.value);
      if (off !== undefined) return addTo(ctx, fam, e, off, o);
    }
    return outsideOwnBlocks(ctx, fam, o, recs);
  });
}

/** The handle's alloc in another node's block, found through the node's pointer. */
async function viaPointer(ctx: Ctx, fam: Fam, recs: NodeRecords, handle: string) {
  const p = recs.borrowed.get(handle)?.value;
  if (!p) return undefined;
  const key = keys.block(fam.net, fam.r.family, p.blockNode, p.block);
  return allocsOf([await getBlock(ctx.store, key, fam.r.family)], handle)[0];
}

/** The node's blocks are full: claim a new block, or borrow from another node's. */
async function outsideOwnBlocks(
  ctx: Ctx,
  fam: Fam,
  o: Owner,
  recs: NodeRecords,
): Promise<Got | Conflict> {
  const { net, r } = fam;
  const probe = randomUsable(r, ctx.retry.random);
  if (probe === undefined) exhausted(fam);
  // A random probe claims a free block with one create while the range is sparsely used,
  // and spreads nodes so they rarely race for the same block.
  const span = blockOf(r, probe);
  if (!recs.blocks.some((e) => e.value.cidr === span.cidr)) {
    if (await claimBlock(ctx, fam, span.cidr, o.node)) return fill(ctx, fam, span, o.node, o);
  }
  const claimed = await listCidrs(ctx.store, net, r.family);
  const own = new Set(recs.blocks.map((e) => e.value.cidr));
  for (const [cidr, node] of claimed) {
    // Ours, but its record was never written (a crash between the two creates): write it.
    if (node === o.node && !own.has(cidr))
      return fill(ctx, fam, blockOf(r, cidrStart(cidr, r.family)), node, o);
  }
  const starts = new Set([...claimed.keys()].map((c) => cidrStart(c, r.family)));
  const fresh = findNewBlock(r, (s) => starts.has(s), span.start);
  if (fresh) {
    if (!(await claimBlock(ctx, fam, fresh.cidr, o.node))) return CONFLICT;
    return fill(ctx, fam, fresh, o.node, o);
  }
  return borrow(ctx, fam, o, recs, claimed);
}

/** Writes the first alloc into a claimed block whose record does not exist yet. */
async function fill(ctx: Ctx, fam: Fam, span: BlockSpan, node: string | null, o: Owner) {
  const empty: Block = { cidr: span.cidr, node, seq: 0, allocs: {} };
  const off = lowestFree(fam.r, empty);
  if (off === undefined) exhausted(fam); // cannot happen: only blocks with usable addresses are claimed
  return createBlock(ctx, fam, span, node, off, o);
}

/** No free block left: take a free address from any other block, recording a pointer first. */
async function borrow(
  ctx: Ctx,
  fam: Fam,
  o: Owner,
  recs: NodeRecords,
  claimed: Map<string, string | null>,
) {
  const { net, r } = fam;
  const all: (BlockEntry | { cidr: string; node: string | null })[] = await listBlocks(
    ctx.store,
    net,
    r.family,
  );
  // Claimed blocks whose record was never written are empty: they count too.
  const written = new Set(all.map((e) => ('key' in e ? e.value.cidr : e.cidr)));
  for (const [cidr, node] of claimed) if (!written.has(cidr)) all.push({ cidr, node });
  const first = Math.floor(ctx.retry.random() * all.length);
  for (let i = 0; i < all.length; i++) {
    const c = all[(first + i) % all.length]!;
    const block: Block = 'key' in c ? c.value : { cidr: c.cidr, node: c.node, seq: 0, allocs: {} };
    if (block.node === o.node) continue;
    const off = lowestFree(r, block);
    if (off === undefined) continue;
    const to = { block: block.cidr, blockNode: block.node };
    if ((await pointAt(ctx, fam, o, to, recs.borrowed.get(o.handle) ?? null)) === CONFLICT)
      return CONFLICT;
    if ('key' in c) return addTo(ctx, fam, c as Entry<Block>, off, o);
    return createBlock(ctx, fam, blockOf(r, cidrStart(block.cidr, r.family)), block.node, off, o);
  }
  return exhausted(fam);
}

/** A fixed address, already checked against the range by checkFixed. */
export function allocFixed(ctx: Ctx, fam: Fam, o: Owner, addr: bigint): Promise<Got> {
  const { net, r } = fam;
  const span = blockOf(r, addr);
  const off = addr - span.start;
  const text = formatIp(addr, r.family);
  return retrying(ctx.retry, `network ${net}: allocating ${text}`, async () => {
    // As allocDynamic: one address per family and handle. Another fixed address for a
    // handle that holds one would be a second allocation its DEL never frees.
    const recs = (await nodeRecords(ctx, fam, o.node, true)).recs;
    const mine = allocsOf(recs.blocks, o.handle)[0] ?? (await viaPointer(ctx, fam, recs, o.handle));
    if (mine) {
      const held = blockStart(r, mine.e.value.cidr) + BigInt(mine.off);
      if (held === addr) return existing(ctx, fam, mine, o);
      throw new TartanError(
        'ERR_IPAM_TAKEN',
        `network ${net}: ${holderOf(mine.a)} already holds ${formatIp(held, r.family)}, not the requested ${text}`,
      );
    }
    const claim = await getCidr(ctx.store, keys.cidr(net, r.family, span.cidr));
    const node = claim ? claim.value.node : null;
    const e =
      claim && (await getBlock(ctx.store, keys.block(net, r.family, node, span.cidr), r.family));
    const a = e?.value.allocs[String(off)];
    if (e && a) {
      const found = { e, off: String(off), a };
      if (a.handle === o.handle) return existing(ctx, fam, found, o);
      if (o.claim !== undefined && a.claim === o.claim) return rebind(ctx, fam, found, o);
      throw new TartanError(
        'ERR_IPAM_TAKEN',
        `network ${net}: ${text} is already held by ${holderOf(a)}`,
      );
    }
    if (node !== o.node) {
      const cur = await getBorrowed(ctx.store, keys.borrowed(net, r.family, o.node, o.handle));
      if (
        (await pointAt(ctx, fam, o, { block: span.cidr, blockNode: node }, cur ?? null)) ===
        CONFLICT
      )
        return CONFLICT;
    }
    // A fixed address outside any claimed block claims its block for no node.
    if (!claim && !(await claimBlock(ctx, fam, span.cidr, null))) return CONFLICT;
    return e ? addTo(ctx, fam, e, off, o) : createBlock(ctx, fam, span, node, off, o);
  });
}
