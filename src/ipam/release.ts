// Release by handle and seq, and lookup of a handle's addresses.
import { cidrStart, type Family, formatIp, parseIp } from './ip.js';
import { getBlock, getCidr, getClaim, keys, listBlocks, readNode } from './records.js';
import { CONFLICT, retrying } from './retry.js';
import { allocsOf, type Ctx, dropPointer, type Found } from './state.js';

/** Does claim `name` point at exactly this alloc? */
async function claimHolds(
  ctx: Ctx,
  net: string,
  f: Family,
  name: string,
  cidr: string,
  address: string,
  seq: number,
) {
  const ref = (await getClaim(ctx.store, keys.claim(net, name)))?.value[`v${f}`];
  return ref !== undefined && ref.block === cidr && ref.address === address && ref.seq === seq;
}

export interface ReleaseTarget {
  family: Family;
  block: string;
  /** Where the block's record lives; looked up from its cidrs record when unknown. */
  blockNode?: string | null | undefined;
  address: string;
  /** The seq the address was given out with; undefined frees whatever the handle holds there. */
  seq: number | undefined;
}

/**
 * Frees the handle's alloc if it is still the one given out with `seq`. An address a
 * persistent claim points at is kept, with no handle, for the claim's next pod; `force` frees
 * it anyway (rollback of a failed allocate). Works from stored records alone, so it still
 * works after the range was removed from the spec.
 */
export async function releaseOne(
  ctx: Ctx,
  net: string,
  handle: string,
  t: ReleaseTarget,
  force = false,
) {
  const f = t.family;
  const ip = parseIp(t.address, f);
  const start = parseIp(t.block.slice(0, t.block.indexOf('/')), f);
  if (ip === undefined || start === undefined || ip < start) return false;
  const off = String(ip - start);
  const blockNode =
    t.blockNode !== undefined
      ? t.blockNode
      : (await getCidr(ctx.store, keys.cidr(net, f, t.block)))?.value.node;
  if (blockNode === undefined) return false;
  const key = keys.block(net, f, blockNode, t.block);
  let after: { freed: boolean; node: string } | undefined;
  await retrying(ctx.retry, `network ${net}: releasing ${t.address}`, async () => {
    after = undefined;
    const e = await getBlock(ctx.store, key, f);
    const a = e?.value.allocs[off];
    if (!e || !a || a.handle !== handle || (t.seq !== undefined && a.seq !== t.seq)) return;
    const keep =
      !force &&
      a.claim !== undefined &&
      (await claimHolds(ctx, net, f, a.claim, t.block, formatIp(ip, f), a.seq));
    const allocs = { ...e.value.allocs };
    if (keep) allocs[off] = { handle: null, seq: a.seq, node: a.node, claim: a.claim! };
    else delete allocs[off];
    if ((await ctx.store.update(key, { ...e.value, allocs }, e.rev)) === undefined) return CONFLICT;
    after = { freed: !keep, node: a.node };
  });
  if (after && blockNode !== after.node)
    await dropPointer(ctx, net, f, after.node, handle, t.block);
  return after?.freed ?? false;
}

/** Every alloc of a handle: from the node's records if the node is known, else from all blocks. */
export async function findHandle(
  ctx: Ctx,
  net: string,
  f: Family,
  handle: string,
  node?: string,
): Promise<Found[]> {
  if (node === undefined) return allocsOf(await listBlocks(ctx.store, net, f), handle);
  const recs = await readNode(ctx.store, net, f, node);
  const found = allocsOf(recs.blocks, handle);
  const p = recs.borrowed.get(handle)?.value;
  if (p)
    found.push(
      ...allocsOf([await getBlock(ctx.store, keys.block(net, f, p.blockNode, p.block), f)], handle),
    );
  return found;
}

export const addressOf = (f: Family, cidr: string, off: string) =>
  formatIp(cidrStart(cidr, f) + BigInt(off), f);
