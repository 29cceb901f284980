// What the leader does each round: network status (capacity, in use, conditions), IPAM
// garbage collection against the pods that exist, and events for what it changed.
import { createIpam } from '../ipam/index.js';
import type { Ipam } from '../ipam/types.js';
import { handleOf } from '../ipam/records.js';
import type { KubeClient } from '../k8s/client.js';
import {
  API_GROUP_PATH,
  ATTACHMENT_LABEL,
  ipamNetworkName,
  networkPath,
  type NetworkId,
} from '../k8s/names.js';
import type { NetworkSpec } from '../network/schema.js';
import type { Store } from '../store/types.js';
import { reconcileClaims, type ClaimRound } from './claims.js';
import { specProblem } from './network-rules.js';
import { reconcileNetworkIpam, type NetworkObject } from './network-ipam.js';
import { finalizeTenantNetworks } from './segments.js';

interface NetObj {
  metadata: NetworkObject['metadata'] & { uid?: string; generation?: number };
  spec: NetworkSpec;
  status?: { conditions?: Condition[] };
}
interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}
interface AttachmentObj {
  metadata: { name: string; namespace: string; labels?: Record<string, string> };
  spec: {
    pod: string;
    podUID?: string;
    containerId: string;
    ifname: string;
    network: { kind: string; name: string };
  };
}
interface PodObj {
  metadata: { name: string; namespace: string; uid: string };
}

export interface ReconcileDeps {
  client: KubeClient;
  store: Store;
  component?: string;
  /** Grace between a leak's first sighting and its release (IPAM gc). */
  gcGraceMs?: number;
  /** Grace before a network's IPAM records are forgotten (network-ipam.ts, FORGET_GRACE_MS). */
  forgetGraceMs?: number;
  /** First sightings of moved specs, kept across rounds by the caller (network-ipam.ts). */
  sightings?: Map<string, { what: string; at: number }>;
  now?: () => number;
}

/**
 * Records a core/v1 Event. Events are best effort (the API may drop them under load), so a
 * failure here never fails the reconcile round that reports it.
 */
export async function emitEvent(
  deps: ReconcileDeps,
  obj: { kind: string; apiVersion: string; name: string; namespace?: string; uid?: string },
  type: 'Normal' | 'Warning',
  reason: string,
  message: string,
): Promise<void> {
  // The API server files events about cluster-scoped objects under "default" only.
  const ns = obj.namespace ?? 'default';
  const t = new Date(deps.now?.() ?? Date.now()).toISOString();
  await deps.client.request({
    method: 'POST',
    path: `/api/v1/namespaces/${ns}/events`,
    body: {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${obj.name}.`, namespace: ns },
      involvedObject: {
        kind: obj.kind,
        apiVersion: obj.apiVersion,
        name: obj.name,
        namespace: obj.namespace,
        uid: obj.uid,
      },
      type,
      reason,
      message,
      source: { component: deps.component ?? 'tartan-controller' },
      firstTimestamp: t,
      lastTimestamp: t,
      count: 1,
    },
  });
}

async function listNetworks(client: KubeClient): Promise<{ id: NetworkId; obj: NetObj }[]> {
  const out: { id: NetworkId; obj: NetObj }[] = [];
  for (const kind of ['ClusterNetwork', 'TenantNetwork'] as const) {
    const plural = kind === 'ClusterNetwork' ? 'clusternetworks' : 'tenantnetworks';
    const res = await client.must<{ items: NetObj[] }>({
      method: 'GET',
      path: `${API_GROUP_PATH}/${plural}`,
    });
    for (const obj of res.items)
      out.push({ id: { kind, name: obj.metadata.name, namespace: obj.metadata.namespace }, obj });
  }
  return out;
}

/** Status of one network, written through the status subresource. */
export async function updateNetworkStatus(
  deps: ReconcileDeps,
  ipam: Ipam,
  id: NetworkId,
  obj: NetObj,
  attachments: number,
) {
  const problem = specProblem(obj.spec);
  const usage = problem ? [] : await ipam.usage(ipamNetworkName(id), obj.spec);
  const of = (f: 4 | 6) => usage.find((u) => u.family === f);
  const full = usage.some((u) => u.capacity > 0n && BigInt(u.inUse) >= u.capacity);
  const [status, reason, message]: [Condition['status'], string, string] = problem
    ? ['False', 'InvalidSpec', problem]
    : full
      ? [
          'False',
          'PoolExhausted',
          'no free address left in ' +
            usage
              .filter((u) => BigInt(u.inUse) >= u.capacity)
              .map((u) => `IPv${u.family}`)
              .join(', '),
        ]
      : ['True', 'Ready', 'spec valid; addresses available'];
  const t = new Date(deps.now?.() ?? Date.now()).toISOString();
  const prev = obj.status?.conditions?.find((c) => c.type === 'Ready');
  const cond: Condition = {
    type: 'Ready',
    status,
    reason,
    message,
    // Kubernetes convention: the time the status last changed, not the time of this check.
    lastTransitionTime: prev && prev.status === status ? prev.lastTransitionTime : t,
    ...(obj.metadata.generation ? { observedGeneration: obj.metadata.generation } : {}),
  };
  const capacity: Record<string, string> = {};
  const inUse: Record<string, number> = {};
  for (const f of [4, 6] as const) {
    const u = of(f);
    if (u) {
      capacity[`ipv${f}`] = u.capacity.toString();
      inUse[`ipv${f}`] = u.inUse;
    }
  }
  await deps.client.must({
    method: 'PATCH',
    path: `${networkPath(id)}/status`,
    body: {
      status: {
        conditions: [cond],
        capacity,
        inUse,
        attachments,
        observedGeneration: obj.metadata.generation,
      },
    },
  });
  if (!prev || prev.status !== status)
    await emitEvent(
      deps,
      {
        kind: id.kind,
        apiVersion: 'tartan.io/v1alpha1',
        name: id.name,
        namespace: id.namespace,
        uid: obj.metadata.uid,
      },
      status === 'True' ? 'Normal' : 'Warning',
      reason,
      message,
    );
}

export interface RoundResult {
  released: number;
  /** What happened to networks' IPAM state: "<network>: forgotten", "...: family 4 reset". */
  networkIpam: string[];
  staleAttachments: number;
  finalized: number;
  claims: ClaimRound;
}

/**
 * One round: attachments whose pod is gone are deleted, then every network's addresses not
 * held by a live attachment are collected (two sightings a grace period apart, as the CNI GC
 * does), its IPAM records looked after (network-ipam.ts) and its status written, then
 * deleted TenantNetworks whose records are gone free their VLAN/VNI, then claims are matched
 * with their IPAMClaim objects (claims.ts). Returns what was done, for logs and tests.
 */
export async function reconcileOnce(deps: ReconcileDeps): Promise<RoundResult> {
  const { client, store } = deps;
  const ipam = createIpam(store);
  // Attachments first, then pods: an Attachment is written after its pod exists, so every
  // Attachment listed has its pod in the later list unless the pod is really gone. The other
  // order took the Attachment of a pod created between the two lists for a stale one, and
  // its address was freed a grace period later while the pod used it.
  const atts = await client.must<{ items: AttachmentObj[] }>({
    method: 'GET',
    path: `${API_GROUP_PATH}/attachments`,
  });
  const pods = await client.must<{ items: PodObj[] }>({ method: 'GET', path: '/api/v1/pods' });
  const live = new Map(
    pods.items.map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, p.metadata.uid]),
  );
  const valid: AttachmentObj[] = [];
  let staleAttachments = 0;
  for (const a of atts.items) {
    const uid = live.get(`${a.metadata.namespace}/${a.spec.pod}`);
    if (uid !== undefined && (!a.spec.podUID || a.spec.podUID === uid)) {
      valid.push(a);
      continue;
    }
    const res = await client.request({
      method: 'DELETE',
      path: `${API_GROUP_PATH}/namespaces/${a.metadata.namespace}/attachments/${a.metadata.name}`,
    });
    if (res.status === 200) staleAttachments++;
  }
  let released = 0;
  const networkIpam: string[] = [];
  // Without the caller's map every round is a first sighting: no family is ever reset.
  const sightings = deps.sightings ?? new Map<string, { what: string; at: number }>();
  const networks = await listNetworks(client);
  for (const { id, obj } of networks) {
    const ref = {
      kind: id.kind,
      apiVersion: 'tartan.io/v1alpha1',
      name: id.name,
      namespace: id.namespace,
      uid: obj.metadata.uid,
    };
    const mine = valid.filter((a) =>
      id.kind === 'ClusterNetwork'
        ? a.metadata.labels?.[ATTACHMENT_LABEL.ClusterNetwork] === id.name
        : a.metadata.namespace === id.namespace &&
          a.metadata.labels?.[ATTACHMENT_LABEL.TenantNetwork] === id.name,
    );
    if (!specProblem(obj.spec)) {
      const r = await ipam.gc({
        network: ipamNetworkName(id),
        spec: obj.spec,
        valid: mine.map((a) => ({ containerId: a.spec.containerId, ifname: a.spec.ifname })),
        graceMs: deps.gcGraceMs ?? 5 * 60_000,
        ...(deps.now ? { now: deps.now() } : {}),
      });
      released += r.released;
      if (r.released)
        await emitEvent(
          deps,
          ref,
          'Normal',
          'AddressesReleased',
          `released ${r.released} address${r.released === 1 ? '' : 'es'} held by no live pod`,
        );
    }
    const outcomes = await reconcileNetworkIpam(client, store, id, obj, !specProblem(obj.spec), {
      now: deps.now?.() ?? Date.now(),
      sightings,
      ...(deps.forgetGraceMs === undefined ? {} : { graceMs: deps.forgetGraceMs }),
    });
    for (const o of outcomes) {
      networkIpam.push(`${ipamNetworkName(id)}: ${o}`);
      if (o === 'forgotten' || o?.endsWith('reset'))
        await emitEvent(
          deps,
          ref,
          'Normal',
          'IpamStateForgotten',
          o === 'forgotten'
            ? 'the deleted network held no address: its IPAM records are removed'
            : `${o}: its records no longer fitted the spec (cidr or block size moved, family dropped, or no meta record) and held no address`,
        );
    }
    // Gone once its finalizer is: no status to write.
    if (outcomes.includes('forgotten')) continue;
    await updateNetworkStatus(deps, ipam, id, obj, mine.length);
  }
  // Sightings of networks that are gone go too.
  const names = new Set(networks.map((n) => ipamNetworkName(n.id)));
  for (const k of sightings.keys())
    if (!names.has(k.slice(0, k.lastIndexOf(' ')))) sightings.delete(k);
  // TenantNetworks being deleted whose IPAM records went above: free their VLAN/VNI.
  const finalized = (await finalizeTenantNetworks(client, store)).length;
  const podOfHandle = new Map<string, string>(
    valid.map((a) => [handleOf(a.spec.containerId, a.spec.ifname), a.spec.pod]),
  );
  const claims = await reconcileClaims(
    client,
    store,
    networks.map((n) => ({ id: n.id, spec: n.obj.spec, valid: !specProblem(n.obj.spec) })),
    (handle) => podOfHandle.get(handle),
    ipam,
  );
  return { released, networkIpam, staleAttachments, finalized, claims };
}
