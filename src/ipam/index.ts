// Cluster-wide IPAM: the API the CNI core and the controller use. State layout: records.ts.
import { TartanError } from '../cni/errors.js';
import type { NetworkSpec } from '../network/schema.js';
import type { Store } from '../store/types.js';
import { checkFixed } from './allocator.js';
import { allocDynamic, allocFixed, warmNode } from './blocks.js';
import { NodeCache } from './cache.js';
import { allocWithClaim, dropClaimRef, listClaims, releaseClaim } from './claims.js';
import { collect, DEFAULT_GC_GRACE_MS, usageOf } from './gc.js';
import { parseRange, type ParsedRange } from './range.js';
import { checkMeta } from './meta.js';
import { handleOf, NO_NODE } from './records.js';
import { addressOf, findHandle, releaseOne } from './release.js';
import { allocationOf, type Ctx, type Fam, type Got } from './state.js';
import type { AllocateRequest, Allocation, Ipam, IpamOptions } from './types.js';

export type * from './types.js';
export { parseRange, type ParsedRange } from './range.js';
export { auditIpam, type AuditReport } from './audit.js';

const FAMILIES = [4, 6] as const;

function rangesOf(network: string, spec: NetworkSpec): ParsedRange[] {
  const out: ParsedRange[] = [];
  if (spec.ipv4) out.push(parseRange(spec.ipv4, 4, `network ${network} ipv4`));
  if (spec.ipv6) out.push(parseRange(spec.ipv6, 6, `network ${network} ipv6`));
  return out;
}

/** Names that become parts of keys and handles ("<containerId>/<ifname>"). */
function need(value: string, what: string): void {
  if (value === '' || value.includes('/') || value === NO_NODE)
    throw new TartanError('ERR_IPAM_OUT_OF_RANGE', `IPAM request: invalid ${what} "${value}"`);
}

export function createIpam(backing: Store, opts: IpamOptions = {}): Ipam {
  const cache = opts.nodeCache === false ? undefined : new NodeCache();
  const store = cache ? cache.wrap(backing) : backing;
  const ctx: Ctx = {
    store,
    cache,
    retry: {
      maxRetries: opts.maxRetries ?? 20,
      random: opts.random ?? Math.random,
      sleep: opts.sleep ?? ((ms) => new Promise((res) => setTimeout(res, ms))),
    },
    now: opts.now ?? Date.now,
    metaOk: new Set(),
  };
  async function allocate(req: AllocateRequest): Promise<Allocation[]> {
    need(req.node, 'node');
    need(req.containerId, 'containerId');
    need(req.ifname, 'ifname');
    const owner = {
      node: req.node,
      handle: handleOf(req.containerId, req.ifname),
      claim: req.claim,
    };
    // Everything that can be refused without the store is refused before any write.
    const plans: { fam: Fam; fixed: bigint | undefined }[] = [];
    for (const f of FAMILIES) {
      const range = f === 4 ? req.spec.ipv4 : req.spec.ipv6;
      const want = (f === 4 ? req.ip : req.ip6) ?? (range ? 'dynamic' : 'none');
      if (want === 'none') continue;
      const where = `network ${req.network} ipv${f}`;
      if (!range)
        throw new TartanError(
          'ERR_IPAM_OUT_OF_RANGE',
          `${where}: the network has no IPv${f} range`,
        );
      const r = parseRange(range, f, where);
      const fixed = want === 'dynamic' ? undefined : checkFixed(r, want, where);
      if (fixed === undefined && r.capacity === 0n)
        throw new TartanError('ERR_IPAM_EXHAUSTED', `${where}: the range offers no address`);
      plans.push({ fam: { net: req.network, r }, fixed });
    }
    const one = async (p: (typeof plans)[number]): Promise<Got> => {
      // Both are reads: the first allocation of an instance need not wait for one, then the other.
      const dynamic = p.fixed === undefined && owner.claim === undefined;
      await Promise.all([checkMeta(ctx, p.fam), dynamic && warmNode(ctx, p.fam, owner.node)]);
      if (owner.claim !== undefined)
        return allocWithClaim(ctx, p.fam, { ...owner, claim: owner.claim }, p.fixed);
      return p.fixed === undefined
        ? allocDynamic(ctx, p.fam, owner)
        : allocFixed(ctx, p.fam, owner, p.fixed);
    };
    // Families run in parallel, with two exceptions: under a claim both write the one claim
    // record, and a fixed address (the likely refusal: taken) goes first so a refused request
    // has not written the other family's block.
    const settled: PromiseSettledResult<Got>[] = [];
    const serial =
      owner.claim !== undefined || (plans.length > 1 && plans.some((p) => p.fixed !== undefined));
    if (!serial) settled.push(...(await Promise.allSettled(plans.map(one))));
    else {
      const ordered = [...plans].sort(
        (a, b) => Number(a.fixed === undefined) - Number(b.fixed === undefined),
      );
      for (const p of ordered) {
        const s = await one(p).then(
          (value) => ({ status: 'fulfilled', value }) as const,
          (reason: unknown) => ({ status: 'rejected', reason }) as const,
        );
        settled.push(s);
        if (s.status === 'rejected') break;
      }
    }
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) {
      // All or nothing: give back what this call created (not what the handle already held).
      // Best effort: the caller needs the first error, and GC reclaims what a failed
      // rollback leaves (its handle never becomes a valid attachment).
      for (const s of settled)
        if (s.status === 'fulfilled' && s.value.created) {
          const a = s.value.alloc;
          await releaseOne(ctx, req.network, owner.handle, a, true)
            .then(async () => {
              if (owner.claim !== undefined) await dropClaimRef(ctx, req.network, owner.claim, a);
            })
            .catch(() => undefined);
        }
      throw failed.reason;
    }
    return settled
      .map((s) => (s as PromiseFulfilledResult<Got>).value.alloc)
      .sort((a, b) => a.family - b.family);
  }

  return {
    allocate,

    async release(req) {
      const handle = handleOf(req.containerId, req.ifname);
      let freed = 0;
      if (req.allocations) {
        for (const a of req.allocations) if (await releaseOne(ctx, req.network, handle, a)) freed++;
        return freed;
      }
      // Families absent from the spec are searched too: the range may have been removed.
      for (const f of FAMILIES)
        for (const { e, off, a } of await findHandle(ctx, req.network, f, handle, req.node)) {
          const t = { family: f, block: e.value.cidr, blockNode: e.value.node, seq: a.seq };
          if (
            await releaseOne(ctx, req.network, handle, {
              ...t,
              address: addressOf(f, e.value.cidr, off),
            })
          )
            freed++;
        }
      return freed;
    },

    async find(network, spec, containerId, ifname, node) {
      const handle = handleOf(containerId, ifname);
      const out: Allocation[] = [];
      for (const r of rangesOf(network, spec))
        for (const { e, off, a } of await findHandle(ctx, network, r.family, handle, node))
          out.push(allocationOf(r, e, off, a));
      return out;
    },

    async gc(req) {
      return collect(ctx, {
        net: req.network,
        node: req.node,
        valid: req.valid,
        graceMs: req.graceMs ?? DEFAULT_GC_GRACE_MS,
        now: req.now ?? ctx.now(),
      });
    },

    async releaseClaim(network, _spec, claim) {
      await releaseClaim(ctx, network, claim);
    },

    async claims(network, spec) {
      const ranges = rangesOf(network, spec);
      return listClaims(ctx, network, (f) => ranges.find((r) => r.family === f)?.prefix);
    },

    async usage(network, spec) {
      return usageOf(ctx, network, rangesOf(network, spec));
    },
  };
}
