// A network's IPAM state lives as long as the network. Blocks are cut from a family's cidr
// in its block size, and that pair never changes while records exist (src/ipam/records.ts),
// so records left behind would refuse every allocation of a network re-created under the
// same name with another cidr, or of an unused network whose cidr was edited (the webhook
// admits both). The controller therefore
// - keeps the finalizer `tartan.io/ipam` on every network (the mutating webhook adds it at
//   creation; this adds it to networks made before, or while the webhook was bypassed),
// - forgets a deleted network's records once none holds an address (the webhook refused the
//   delete while any did; GC frees leaked ones) and the deletion is older than a grace
//   period, then drops the finalizer: until then the name cannot be taken again, and agents
//   attach no new pod to a network being deleted,
// - forgets one family's records when the spec moved its cidr or block size, or dropped the
//   family, for longer than the grace period, and that family holds no address.
import { forgetNetwork } from '../ipam/forget.js';
import type { Family } from '../ipam/ip.js';
import { parseRange } from '../ipam/range.js';
import { keys } from '../ipam/records.js';
import type { KubeClient } from '../k8s/client.js';
import { setFinalizers, type FinalizableMeta } from '../k8s/finalizers.js';
import { ipamNetworkName, networkPath, type NetworkId } from '../k8s/names.js';
import type { NetworkSpec, Range } from '../network/schema.js';
import type { Store } from '../store/types.js';

export const IPAM_FINALIZER = 'tartan.io/ipam';

export type NetworkIpamOutcome =
  | 'finalizer added'
  | 'forgotten'
  | 'waiting'
  | `family ${Family} reset`
  | `family ${Family} waiting`
  | undefined;

export interface NetworkObject {
  metadata: Omit<FinalizableMeta, 'namespace'> & { namespace?: string };
  spec: NetworkSpec;
}

/**
 * How long a deletion, a moved spec or records without `meta` must have been seen before
 * the records are forgotten: longer than any agent takes to see the change (its informer,
 * normally well under a second). An agent still allocating on the old spec while records
 * are forgotten could cut a block next to another geometry's; ADR 0014.
 */
export const FORGET_GRACE_MS = 60_000;

export interface ForgetTiming {
  /** Default FORGET_GRACE_MS. */
  graceMs?: number;
  now: number;
  /**
   * When each family's moved spec or missing `meta` was first seen ("<net> v<f>" -> what and
   * when), kept by the caller across rounds. A controller that restarts sees them anew: the
   * grace starts again, which only delays.
   */
  sightings: Map<string, { what: string; at: number }>;
}

/** What this round did about one network's IPAM state (for logs, events and tests). */
export async function reconcileNetworkIpam(
  client: KubeClient,
  store: Store,
  id: NetworkId,
  obj: NetworkObject,
  specValid: boolean,
  t: ForgetTiming,
): Promise<NetworkIpamOutcome[]> {
  const grace = t.graceMs ?? FORGET_GRACE_MS;
  const m = { ...obj.metadata, namespace: obj.metadata.namespace ?? '' };
  const finalizers = m.finalizers ?? [];
  const net = ipamNetworkName(id);
  if (m.deletionTimestamp) {
    if (!finalizers.includes(IPAM_FINALIZER)) return [];
    // The API server's clock against ours: a skew only moves the grace.
    if (t.now - Date.parse(m.deletionTimestamp) < grace) return ['waiting'];
    const r = await forgetNetwork(store, net);
    if (!r.forgotten) return ['waiting'];
    const left = finalizers.filter((f) => f !== IPAM_FINALIZER);
    const status = await setFinalizers(client, networkPath(id), m, left);
    return status === 200 ? ['forgotten'] : ['waiting'];
  }
  const out: NetworkIpamOutcome[] = [];
  if (!finalizers.includes(IPAM_FINALIZER)) {
    const status = await setFinalizers(client, networkPath(id), m, [...finalizers, IPAM_FINALIZER]);
    if (status === 200) out.push('finalizer added');
  }
  // An invalid spec says nothing reliable about what the records should be.
  if (!specValid) return out;
  for (const f of [4, 6] as const) {
    const seen = `${net} v${f}`;
    const what = await mismatch(store, net, f, f === 4 ? obj.spec.ipv4 : obj.spec.ipv6);
    if (what === undefined) {
      t.sightings.delete(seen);
      continue;
    }
    const first = t.sightings.get(seen);
    if (first?.what !== what) t.sightings.set(seen, { what, at: t.now });
    else if (t.now - first.at >= grace && (await forgetNetwork(store, net, f)).forgotten) {
      t.sightings.delete(seen);
      out.push(`family ${f} reset`);
      continue;
    }
    out.push(`family ${f} waiting`);
  }
  return out;
}

/**
 * Why a family's records no longer fit the spec, or undefined: the spec moved its cidr or
 * block size or dropped it, or there are records without `meta` (a block cut by a node still
 * on an older spec while the family was being forgotten; the allocator writes no new `meta`
 * beside a block it would not cut itself, meta.ts).
 */
async function mismatch(
  store: Store,
  net: string,
  f: Family,
  range: Range | undefined,
): Promise<string | undefined> {
  const meta = await store.get<{ cidr: string; blockPrefix: number }>(keys.meta(net, f));
  if (!meta) return (await store.list(keys.family(net, f))).length ? 'no meta' : undefined;
  // As the allocator compares them (src/ipam/meta.ts): canonical, effective.
  const want = range && parseRange(range, f, `network ${net}`);
  if (want && want.cidr === meta.value.cidr && want.blockPrefix === meta.value.blockPrefix)
    return undefined;
  return `${meta.value.cidr}/${meta.value.blockPrefix} -> ${want ? `${want.cidr}/${want.blockPrefix}` : 'none'}`;
}
