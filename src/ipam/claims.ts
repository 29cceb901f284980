// Persistent claims: a name (StatefulSet pod, IPAMClaim) that keeps its addresses across pod
// delete and re-create. The claim record points at the alloc; the alloc, in its block, stays
// the single source of truth and carries `claim` so a release of the pod's handle keeps it.
//
// Order of writes: the alloc first (marked with the claim), then the claim record. A crash in
// between leaves an alloc marked for a claim that does not point at it: release and GC treat
// such an alloc as an ordinary one, so it cannot leak.
import { TartanError } from '../cni/errors.js';
import { allocDynamic, allocFixed } from './blocks.js';
import { findHandle, releaseOne } from './release.js';
import {
  allocationOf,
  existing,
  type Ctx,
  type Fam,
  type Got,
  type Owner,
  rebind,
} from './state.js';
import { cidrStart, formatIp, parseIp } from './ip.js';
import {
  asClaim,
  type Block,
  type Claim,
  type ClaimRef,
  getBlock,
  getClaim,
  keys,
  listBlocks,
} from './records.js';
import { CONFLICT, type Conflict, retrying } from './retry.js';
import type { Allocation, ClaimInfo } from './types.js';

/**
 * Allocates (or re-binds) the claim's address of one family for this owner. A handle that
 * already holds an address keeps it (idempotence first): it is put under the claim unless the
 * claim points at a different live address, which is refused rather than guessed at.
 */
export function allocWithClaim(
  ctx: Ctx,
  fam: Fam,
  o: Owner & { claim: string },
  fixed?: bigint,
): Promise<Got> {
  const { net, r } = fam;
  const ckey = keys.claim(net, o.claim);
  const fk = r.family === 4 ? 'v4' : 'v6';
  const refused = (m: string) =>
    new TartanError('ERR_IPAM_CLAIM', `network ${net}: claim ${o.claim}: ${m}`);
  return retrying(ctx.retry, `network ${net}: claim ${o.claim}`, async () => {
    const [c, mine] = await Promise.all([
      getClaim(ctx.store, ckey),
      findHandle(ctx, net, r.family, o.handle, o.node).then((m) => m[0]),
    ]);
    const ref = c?.value[fk];
    const target = ref && (await resolve(ctx, fam, ref, o.claim));
    const mineAddr = mine && allocationOf(r, mine.e, mine.off, mine.a).address;
    const want = mineAddr ?? target?.address;
    if (fixed !== undefined && want !== undefined && parseIp(want, r.family) !== fixed)
      throw refused(`it holds ${want}, not the requested ${formatIp(fixed, r.family)}`);
    let got: Got | Conflict;
    if (mine) {
      if (target && (target.e.key !== mine.e.key || target.off !== mine.off))
        throw refused(`it points at ${target.address} but ${o.handle} already holds ${mineAddr}`);
      if (mine.a.claim !== undefined && mine.a.claim !== o.claim)
        throw refused(`${o.handle} already holds ${mineAddr} under claim ${mine.a.claim}`);
      got = await existing(ctx, fam, mine, o);
    } else if (target) {
      got = await rebind(ctx, fam, target, o);
    } else {
      got =
        fixed === undefined
          ? await allocDynamic(ctx, fam, o)
          : await allocFixed(ctx, fam, o, fixed);
    }
    if (got === CONFLICT) return CONFLICT;
    const a = got.alloc;
    const nextRef = {
      block: a.block,
      blockNode: a.blockNode ?? null,
      address: a.address,
      seq: a.seq,
    };
    if (
      ref &&
      ref.block === nextRef.block &&
      ref.address === nextRef.address &&
      ref.seq === nextRef.seq
    )
      return got;
    const next: Claim = { ...c?.value, [fk]: nextRef };
    const rev = c ? await ctx.store.update(ckey, next, c.rev) : await ctx.store.create(ckey, next);
    if (rev === undefined) {
      // Another pod of the same claim got there first: give ours back and take the claim's.
      if (got.created) await releaseOne(ctx, net, o.handle, { ...a, seq: a.seq }, true);
      return CONFLICT;
    }
    return got;
  });
}

/** The alloc a claim record points at, if it is still the one the record was written for. */
async function resolve(ctx: Ctx, fam: Fam, ref: ClaimRef, name: string) {
  const f = fam.r.family;
  const e = await getBlock(ctx.store, keys.block(fam.net, f, ref.blockNode, ref.block), f);
  const ip = parseIp(ref.address, f);
  if (!e || ip === undefined) return undefined;
  const off = String(ip - cidrStart(e.value.cidr, f));
  const a = e.value.allocs[off];
  return a && a.seq === ref.seq && a.claim === name
    ? { e, off, a, address: ref.address }
    : undefined;
}

/** Rollback: the claim record forgets an address this call gave it (and goes if left empty). */
export async function dropClaimRef(ctx: Ctx, net: string, name: string, a: Allocation) {
  const ckey = keys.claim(net, name);
  const fk = a.family === 4 ? 'v4' : 'v6';
  await retrying(ctx.retry, `network ${net}: claim ${name}`, async () => {
    const c = await getClaim(ctx.store, ckey);
    const ref = c?.value[fk];
    if (!c || !ref || ref.address !== a.address || ref.seq !== a.seq) return;
    const rest: Claim = { ...c.value };
    delete rest[fk];
    const done =
      rest.v4 || rest.v6
        ? (await ctx.store.update(ckey, rest, c.rev)) !== undefined
        : await ctx.store.delete(ckey, c.rev);
    return done ? undefined : CONFLICT;
  });
}

/** Frees the claim's addresses (those still held by a pod stay with it until its release). */
export async function releaseClaim(ctx: Ctx, net: string, name: string): Promise<void> {
  const ckey = keys.claim(net, name);
  await retrying(ctx.retry, `network ${net}: releasing claim ${name}`, async () => {
    const c = await getClaim(ctx.store, ckey);
    if (!c) return;
    for (const f of [4, 6] as const) {
      const ref = c.value[f === 4 ? 'v4' : 'v6'];
      if (ref) await unclaim(ctx, net, f, name, ref);
    }
    return (await ctx.store.delete(ckey, c.rev)) ? undefined : CONFLICT;
  });
}

async function unclaim(ctx: Ctx, net: string, f: 4 | 6, name: string, ref: ClaimRef) {
  const key = keys.block(net, f, ref.blockNode, ref.block);
  const start = parseIp(ref.block.slice(0, ref.block.indexOf('/')), f);
  const ip = parseIp(ref.address, f);
  if (start === undefined || ip === undefined) return;
  const off = String(ip - start);
  await retrying(ctx.retry, `network ${net}: releasing claim ${name}`, async () => {
    const e = await getBlock(ctx.store, key, f);
    const a = e?.value.allocs[off];
    if (!e || !a || a.claim !== name || a.seq !== ref.seq) return;
    const allocs = { ...e.value.allocs };
    if (a.handle === null) delete allocs[off];
    else allocs[off] = { handle: a.handle, seq: a.seq, node: a.node };
    return (await ctx.store.update(key, { ...e.value, allocs }, e.rev)) === undefined
      ? CONFLICT
      : undefined;
  });
}

/**
 * The network's claims: each name, the addresses it keeps (address/prefix of the network's
 * range), and the handle of the pod interface that holds each now, if one does.
 */
export async function listClaims(
  ctx: Ctx,
  net: string,
  prefixOf: (f: 4 | 6) => number | undefined,
): Promise<ClaimInfo[]> {
  const prefix = keys.claims(net);
  const entries = await ctx.store.list(prefix);
  // Each family's blocks in one list when there are claims (not one read per claim).
  const blocks = new Map<4 | 6, Map<string, Block>>();
  const blocksOf = async (f: 4 | 6) => {
    let m = blocks.get(f);
    if (!m) {
      m = new Map((await listBlocks(ctx.store, net, f)).map((b) => [b.key, b.value]));
      blocks.set(f, m);
    }
    return m;
  };
  const out: ClaimInfo[] = [];
  for (const e of entries) {
    const c = asClaim(e).value;
    const info: ClaimInfo = {
      name: decodeURIComponent(e.key.slice(prefix.length)),
      ips: [],
      holders: [],
    };
    for (const f of [4, 6] as const) {
      const ref = c[f === 4 ? 'v4' : 'v6'];
      const len = prefixOf(f);
      if (!ref || len === undefined) continue;
      info.ips.push(`${ref.address}/${len}`);
      const start = parseIp(ref.block.slice(0, ref.block.indexOf('/')), f);
      const ip = parseIp(ref.address, f);
      if (start === undefined || ip === undefined) continue;
      const b = (await blocksOf(f)).get(keys.block(net, f, ref.blockNode, ref.block));
      const a = b?.allocs[String(ip - start)];
      if (
        a &&
        a.claim === info.name &&
        a.seq === ref.seq &&
        a.handle !== null &&
        !info.holders.includes(a.handle)
      )
        info.holders.push(a.handle);
    }
    out.push(info);
  }
  return out;
}
