// The `meta` record of a family: the cidr and block size its blocks are cut with
// (records.ts). Allocation checks it against the spec before it touches any block.
import { TartanError } from '../cni/errors.js';
import { blockOf } from './allocator.js';
import { cidrStart } from './ip.js';
import { asCidr, asMeta, keys, recordKind } from './records.js';
import type { Ctx, Fam } from './state.js';

/**
 * Refuses a spec whose cidr or blockPrefix differs from the family's `meta`, writing `meta`
 * when there is none. A match is remembered for the instance (`fresh` reads it again):
 * claimBlock reads it once more, as `meta` goes when the family's records are forgotten
 * (forget.ts), and an instance that remembered it would otherwise cut blocks with no
 * `meta` beside them, which a later spec could overlap.
 */
export async function checkMeta(ctx: Ctx, fam: Fam, fresh = false): Promise<void> {
  const key = keys.meta(fam.net, fam.r.family);
  const want = { cidr: fam.r.cidr, blockPrefix: fam.r.blockPrefix };
  const memo = `${key} ${want.cidr} ${want.blockPrefix}`;
  if (!fresh && ctx.metaOk.has(memo)) return;
  // A lost create race means the record now exists: read it again at once, no back-off.
  for (let i = 0; ; i++) {
    const e = await ctx.store.get(key);
    const have = e ? asMeta(e).value : undefined;
    if (have && (have.cidr !== want.cidr || have.blockPrefix !== want.blockPrefix))
      mismatch(fam, have);
    if (have) break;
    const rev = await ctx.store.create(key, want);
    if (rev !== undefined) {
      await noForeignBlocks(ctx, fam, () => ctx.store.delete(key, rev));
      break;
    }
    if (i >= ctx.retry.maxRetries)
      throw new TartanError(
        'ERR_IPAM_CONTENTION',
        `network ${fam.net}: IPAM metadata keeps changing`,
      );
  }
  ctx.metaOk.add(memo);
}

/**
 * Claims a block for `node` (null: no affinity) beside the family's `meta`: false if it is
 * claimed already, or if `meta` went meanwhile (written again now; the caller starts over).
 * The one read of `meta` on this path: a remembered `meta` may have been forgotten since.
 * With the check in checkMeta this is a pair of write-then-read: of a block claimed on an
 * old spec and a `meta` written for a new one, the two writers see each other. It narrows,
 * not closes, what a node still on the old spec could do while a family is forgotten (a
 * block record written after its claim went; a third node trusting a `meta` not yet
 * checked): the controller forgets only after a grace period (ADR 0014).
 */
export async function claimBlock(
  ctx: Ctx,
  fam: Fam,
  cidr: string,
  node: string | null,
): Promise<boolean> {
  const key = keys.cidr(fam.net, fam.r.family, cidr);
  const rev = await ctx.store.create(key, { cidr, node });
  if (rev === undefined) return false;
  const e = await ctx.store.get(keys.meta(fam.net, fam.r.family));
  const have = e ? asMeta(e).value : undefined;
  if (have?.cidr === fam.r.cidr && have.blockPrefix === fam.r.blockPrefix) return true;
  await ctx.store.delete(key, rev);
  if (have) mismatch(fam, have);
  // Forgotten since this instance checked it: written again (or refused), then a new try.
  await checkMeta(ctx, fam, true);
  return false;
}

/** How an operator gets a spec's new cidr or block size accepted. */
const remedy = (net: string) =>
  'Once it holds no address its records can go: in a cluster the controller removes them, ' +
  `elsewhere \`tartanctl forget-ipam ${net}\``;

function mismatch(fam: Fam, have: { cidr: string; blockPrefix: number }): never {
  throw new TartanError(
    'ERR_IPAM_RANGE',
    `network ${fam.net}: its IPv${fam.r.family} blocks were cut from ${have.cidr} in /${have.blockPrefix}; ` +
      `the spec now says ${fam.r.cidr} in /${fam.r.blockPrefix}, which could overlap them. ` +
      remedy(fam.net),
  );
}

/**
 * After a family's `meta` was written: no block may remain that this spec would not cut
 * itself (one claimed by a node on an older spec while the family's records were being
 * forgotten). If one does, `meta` is taken back. Rare: `meta` is written only at a
 * family's first allocation.
 */
async function noForeignBlocks(ctx: Ctx, fam: Fam, takeBack: () => Promise<boolean>) {
  const { r } = fam;
  const all = await ctx.store.list(keys.family(fam.net, r.family), { consistent: true });
  for (const e of all) {
    // Claims, and block records (one may be written after its claim went).
    const kind = recordKind(e.key)?.kind;
    const cidr =
      kind === 'cidr'
        ? asCidr(e).value.cidr
        : kind === 'block'
          ? (e.value as { cidr?: unknown }).cidr
          : undefined;
    if (typeof cidr !== 'string') continue;
    const start = cidrStart(cidr, r.family);
    if (start >= r.base && start <= r.last && blockOf(r, start).cidr === cidr) continue;
    await takeBack();
    throw new TartanError(
      'ERR_IPAM_RANGE',
      `network ${fam.net}: an IPv${r.family} block ${cidr} remains from another cidr or block ` +
        `size, without the record that said so; the spec's ${r.cidr} in /${r.blockPrefix} ` +
        'could overlap it. ' +
        remedy(fam.net),
    );
  }
}
