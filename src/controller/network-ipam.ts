// A network's IPAM state lives as long as the network. Blocks are cut from a family's cidr
// in its block size, and that pair never changes while records exist (src/ipam/records.ts),
// so records left behind would refuse every allocation of a network re-created under the
// same name with another cidr, or of an unused network whose cidr was edited (the webhook
// admits both). The controller therefore
// - keeps the finalizer `tartan.io/ipam` on every network (the mutating webhook adds it at
//   creation; this adds it to networks made before, or while the webhook was bypassed),
// - forgets a deleted network's records once none holds an address (the webhook refused the
//   delete while any did; GC frees leaked ones), then drops the finalizer: until then the
//   name cannot be taken again, and agents attach no new pod to a network being deleted,
// - forgets one family's records when the spec moved its cidr or block size, or dropped the
//   family, and that family holds no address.
import { forgetNetwork } from '../ipam/forget.js';
import type { Family } from '../ipam/ip.js';
import { parseRange } from '../ipam/range.js';
import { keys } from '../ipam/records.js';
import type { KubeClient } from '../k8s/client.js';
import { setFinalizers, type FinalizableMeta } from '../k8s/finalizers.js';
import { ipamNetworkName, networkPath, type NetworkId } from '../k8s/names.js';
import type { NetworkSpec } from '../network/schema.js';
import type { Store } from '../store/types.js';

export const IPAM_FINALIZER = 'tartan.io/ipam';

export type NetworkIpamOutcome =
  'finalizer added' | 'forgotten' | 'waiting' | `family ${Family} reset` | undefined;

export interface NetworkObject {
  metadata: Omit<FinalizableMeta, 'namespace'> & { namespace?: string };
  spec: NetworkSpec;
}

/** What this round did about one network's IPAM state (for logs, events and tests). */
export async function reconcileNetworkIpam(
  client: KubeClient,
  store: Store,
  id: NetworkId,
  obj: NetworkObject,
  specValid: boolean,
): Promise<NetworkIpamOutcome[]> {
  const m = { ...obj.metadata, namespace: obj.metadata.namespace ?? '' };
  const finalizers = m.finalizers ?? [];
  const net = ipamNetworkName(id);
  if (m.deletionTimestamp) {
    if (!finalizers.includes(IPAM_FINALIZER)) return [];
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
    const meta = await store.get<{ cidr: string; blockPrefix: number }>(keys.meta(net, f));
    if (!meta) {
      // Records without `meta`: a block cut by a node still on an older spec while the
      // family was being forgotten. The allocator writes no new `meta` beside a block it
      // would not cut itself (meta.ts); these go once they hold nothing.
      if ((await store.list(keys.family(net, f))).length === 0) continue;
      if ((await forgetNetwork(store, net, f)).forgotten) out.push(`family ${f} reset`);
      continue;
    }
    const range = f === 4 ? obj.spec.ipv4 : obj.spec.ipv6;
    // As the allocator compares them (src/ipam/index.ts, checkMeta): canonical, effective.
    const want = range && parseRange(range, f, `network ${net}`);
    if (want && want.cidr === meta.value.cidr && want.blockPrefix === meta.value.blockPrefix)
      continue;
    if ((await forgetNetwork(store, net, f)).forgotten) out.push(`family ${f} reset`);
  }
  return out;
}
