// VLAN / VNI assignment for TenantNetworks from the tenant's TenantConfig (DANM semantics:
// the tenant is offered host devices, each with VLAN or VNI ranges; a TenantNetwork names a
// device and gets a free id from that device's ranges). Each id in use has one record in the
// store (segments/vlan/<device>/<id>, segments/vni/<id>): create-if-absent is the whole
// lock, so two TenantNetworks created at the same moment never get the same id, with no
// global lock and no read-modify-write of a shared object.
import type { KubeClient } from '../k8s/client.js';
import { setFinalizers, type FinalizableMeta } from '../k8s/finalizers.js';
import { API_GROUP_PATH, segmentKeys } from '../k8s/names.js';
import type { NetworkSpec } from '../network/schema.js';
import type { Store } from '../store/types.js';
import { IPAM_FINALIZER } from './network-ipam.js';

export interface IdRange {
  start: number;
  end: number;
}

export interface TenantConfig {
  metadata: { name: string };
  spec: {
    namespaces: string[];
    hostDevices?: { name: string; vlans?: IdRange[]; vnis?: IdRange[] }[];
    devicePools?: string[];
  };
}

/** Who holds a segment: a TenantNetwork, or (namespace '') a ClusterNetwork. */
export interface Reservation {
  namespace: string;
  name: string;
  tenant: string;
  at: number;
}

const holderOf = (h: Reservation) =>
  h.namespace ? `TenantNetwork ${h.namespace}/${h.name}` : `ClusterNetwork ${h.name}`;

export type Segment = { type: 'vlan'; device: string; id: number } | { type: 'vni'; id: number };

/** The spec as stored in Kubernetes: the network schema plus the pool of a device plugin. */
export type KubeNetworkSpec = NetworkSpec & { devicePool?: string };

export class Denied extends Error {}

export async function listTenantConfigs(client: KubeClient): Promise<TenantConfig[]> {
  const res = await client.must<{ items: TenantConfig[] }>({
    method: 'GET',
    path: `${API_GROUP_PATH}/tenantconfigs`,
  });
  return res.items;
}

export async function tenantOf(
  client: KubeClient,
  namespace: string,
): Promise<TenantConfig | undefined> {
  return (await listTenantConfigs(client)).find((t) => t.spec.namespaces.includes(namespace));
}

const keyOf = (s: Segment) =>
  s.type === 'vlan' ? segmentKeys.vlan(s.device, s.id) : segmentKeys.vni(s.id);
const describe = (s: Segment) =>
  s.type === 'vlan' ? `VLAN ${s.id} on ${s.device}` : `VNI ${s.id}`;

/** The segment a network spec carries, if any. */
export function segmentOf(spec: NetworkSpec): Segment | undefined {
  if (spec.vlan !== undefined && spec.device)
    return { type: 'vlan', device: spec.device, id: spec.vlan };
  if (spec.vxlan?.vni !== undefined) return { type: 'vni', id: spec.vxlan.vni };
  return undefined;
}

const inRanges = (id: number, ranges: IdRange[]) =>
  ranges.some((r) => id >= r.start && id <= r.end);

/**
 * Checks a new TenantNetwork against its tenant and reserves its segment: the one it asks
 * for, or a free one from its device's ranges (assigned: true, to be written into the spec).
 * undefined: the network has no segment. Throws Denied with a message for its author.
 */
export async function reserveSegment(
  store: Store,
  tenant: TenantConfig | undefined,
  net: { namespace: string; name: string; spec: KubeNetworkSpec },
  dryRun: boolean,
): Promise<{ segment: Segment; assigned: boolean } | undefined> {
  const { namespace, name, spec } = net;
  if (!tenant)
    throw new Denied(
      `namespace ${namespace} belongs to no TenantConfig: an operator must create a TenantConfig listing it before TenantNetworks can be made there`,
    );
  const t = tenant.metadata.name;
  // Both would reach past what the tenant is offered: a named bridge may be the operator's
  // (its pods would join that L2), and a delegate's configuration names any host device.
  if (spec.bridge !== undefined)
    throw new Denied(
      `a TenantNetwork cannot name a host bridge (${spec.bridge}): Tartan names it for the network`,
    );
  if (spec.type === 'delegate')
    throw new Denied(
      `a TenantNetwork cannot delegate to a CNI configuration (it could name any host device); use a NetworkAttachmentDefinition`,
    );
  if (spec.devicePool !== undefined && !(tenant.spec.devicePools ?? []).includes(spec.devicePool))
    throw new Denied(`device pool ${spec.devicePool} is not offered to tenant ${t}`);
  if (!spec.device) {
    if (spec.vlan !== undefined || spec.vxlan)
      throw new Denied(`a VLAN or VXLAN TenantNetwork must name one of tenant ${t}'s host devices`);
    return undefined;
  }
  const devices = tenant.spec.hostDevices ?? [];
  const dev = devices.find((d) => d.name === spec.device);
  if (!dev)
    throw new Denied(
      `host device ${spec.device} is not offered to tenant ${t} (offered: ${devices.map((d) => d.name).join(', ') || 'none'})`,
    );
  const reservation: Reservation = { namespace, name, tenant: t, at: Date.now() };
  const vlans = dev.vlans ?? [];
  const vnis = dev.vnis ?? [];
  let type: 'vlan' | 'vni';
  let asked: number | undefined;
  if (vlans.length) {
    if (spec.vxlan)
      throw new Denied(`host device ${dev.name} is offered to tenant ${t} with VLANs, not VXLAN`);
    [type, asked] = ['vlan', spec.vlan];
  } else if (vnis.length) {
    if (spec.vlan !== undefined)
      throw new Denied(
        `host device ${dev.name} is offered to tenant ${t} with VXLAN VNIs, not VLANs`,
      );
    [type, asked] = ['vni', spec.vxlan?.vni];
  } else {
    if (spec.vlan !== undefined || spec.vxlan)
      throw new Denied(
        `host device ${dev.name} is offered to tenant ${t} untagged: no VLAN or VNI may be set`,
      );
    return undefined;
  }
  const ranges = type === 'vlan' ? vlans : vnis;
  const seg = (id: number): Segment =>
    type === 'vlan' ? { type, device: dev.name, id } : { type, id };
  const fmt = (rs: IdRange[]) =>
    rs.map((r) => (r.start === r.end ? `${r.start}` : `${r.start}-${r.end}`)).join(', ');
  if (asked !== undefined) {
    if (!inRanges(asked, ranges))
      throw new Denied(
        `${describe(seg(asked))} is outside tenant ${t}'s ${type === 'vlan' ? 'VLAN' : 'VNI'} ranges (${fmt(ranges)})`,
      );
    const mine = { segment: seg(asked), assigned: false };
    if (dryRun) return mine;
    if ((await store.create(keyOf(seg(asked)), reservation)) === undefined) {
      const holder = (await store.get<Reservation>(keyOf(seg(asked))))?.value;
      if (!holder || holder.namespace !== namespace || holder.name !== name)
        throw new Denied(
          `${describe(seg(asked))} is already used by ${holder ? holderOf(holder) : 'another network'}`,
        );
    }
    return mine;
  }
  // Skip the ids already listed; a create that still loses a race moves on to the next id.
  const prefix =
    type === 'vlan' ? `segments/vlan/${encodeURIComponent(dev.name)}/` : 'segments/vni/';
  const taken = new Set((await store.list(prefix)).map((e) => Number(e.key.slice(prefix.length))));
  for (const r of ranges)
    for (let id = r.start; id <= r.end; id++) {
      if (taken.has(id)) continue;
      if (dryRun) return { segment: seg(id), assigned: true };
      if ((await store.create(keyOf(seg(id)), reservation)) !== undefined)
        return { segment: seg(id), assigned: true };
    }
  throw new Denied(
    `tenant ${t} has no free ${type === 'vlan' ? 'VLAN' : 'VNI'} left on ${dev.name} (ranges ${fmt(ranges)})`,
  );
}

/**
 * Reserves a ClusterNetwork's VLAN or VNI against TenantNetworks: a tenant given a segment
 * that an operator's network carries would put its pods on that network's L2. ClusterNetworks
 * may share a segment with each other (the operator's own choice); the record names the
 * first, and the controller keeps it while any ClusterNetwork carries it (reconcileSegments).
 */
export async function reserveClusterSegment(
  store: Store,
  net: { name: string; spec: NetworkSpec },
  dryRun: boolean,
): Promise<void> {
  const s = segmentOf(net.spec);
  if (!s) return;
  const mine: Reservation = { namespace: '', name: net.name, tenant: '', at: Date.now() };
  // A holder that goes between the create and the read is gone: try again.
  for (let i = 0; i < 3; i++) {
    if (!dryRun && (await store.create(keyOf(s), mine)) !== undefined) return;
    const e = await store.get<Reservation>(keyOf(s));
    const holder = e?.value;
    if (holder?.namespace)
      throw new Denied(`${describe(s)} is already used by ${holderOf(holder)}`);
    if (e && !dryRun)
      // Shared with a ClusterNetwork, perhaps one deleted a moment ago: a new revision keeps
      // the controller from releasing the record on a list taken before this network.
      await store.update(e.key, { ...e.value, at: mine.at }, e.rev);
    if (holder || dryRun) return;
  }
  throw new Error(`${describe(s)}: its reservation keeps changing; try again`);
}

/**
 * The finalizer that keeps a TenantNetwork's segment reserved until the network is really
 * being deleted: releasing it in the DELETE admission instead would free an id that a
 * network still carries whenever the delete fails after admission.
 */
export const SEGMENT_FINALIZER = 'tartan.io/segment';

/** Frees the segment of a deleted TenantNetwork, if the record is still its own. */
export async function releaseSegment(
  store: Store,
  net: { namespace: string; name: string; spec: NetworkSpec },
): Promise<boolean> {
  const s = segmentOf(net.spec);
  if (!s) return false;
  const e = await store.get<Reservation>(keyOf(s));
  if (!e || e.value.namespace !== net.namespace || e.value.name !== net.name) return false;
  return store.delete(e.key, e.rev);
}

/**
 * Releases reservations whose network is gone or now carries another id, older than graceMs
 * (a create admitted moments ago may not be stored yet), and reserves the segments of
 * ClusterNetworks that have none (made before reservations existed, or while the webhook
 * was bypassed). For the controller's GC.
 */
export async function reconcileSegments(
  client: KubeClient,
  store: Store,
  graceMs: number,
  now = Date.now(),
): Promise<string[]> {
  const released: string[] = [];
  // undefined: the ClusterNetworks could not be listed; their records are left as they are
  // this round, and the TenantNetworks' are still looked after.
  let carried: Map<string, string> | undefined;
  const cns = await client.request<{
    items: { metadata: { name: string }; spec: NetworkSpec }[];
  }>({ method: 'GET', path: `${API_GROUP_PATH}/clusternetworks` });
  if (cns.status === 200) {
    carried = new Map();
    for (const cn of cns.body.items) {
      const s = segmentOf(cn.spec);
      if (s && !carried.has(keyOf(s))) carried.set(keyOf(s), cn.metadata.name);
    }
  }
  const records = await store.list<Reservation>(segmentKeys.all);
  const held = new Set(records.map((e) => e.key));
  // A TenantNetwork that already holds a ClusterNetwork's segment (made before these
  // reservations) keeps it: the controller never moves a network. New overlaps are refused.
  for (const [key, name] of carried ?? [])
    if (!held.has(key)) await store.create(key, { namespace: '', name, tenant: '', at: now });
  for (const e of records) {
    if (now - e.value.at < graceMs) continue;
    if (e.value.namespace === '') {
      if (carried && !carried.has(e.key) && (await store.delete(e.key, e.rev)))
        released.push(e.key);
      continue;
    }
    const path = `${API_GROUP_PATH}/namespaces/${e.value.namespace}/tenantnetworks/${e.value.name}`;
    const res = await client.request<{ spec: NetworkSpec }>({ method: 'GET', path });
    if (res.status === 200) {
      const s = segmentOf(res.body.spec);
      if (s && keyOf(s) === e.key) continue;
    } else if (res.status !== 404) continue; // unsure: keep it
    if (await store.delete(e.key, e.rev)) released.push(e.key);
  }
  return released;
}

interface TenantNetworkObj {
  metadata: FinalizableMeta;
  spec: KubeNetworkSpec;
}

/**
 * For TenantNetworks being deleted and whose IPAM records are gone: free the segment, then
 * drop the finalizer (CAS).
 */
export async function finalizeTenantNetworks(client: KubeClient, store: Store): Promise<string[]> {
  const done: string[] = [];
  const list = await client.must<{ items: TenantNetworkObj[] }>({
    method: 'GET',
    path: `${API_GROUP_PATH}/tenantnetworks`,
  });
  for (const n of list.items) {
    const m = n.metadata;
    if (!m.deletionTimestamp || !m.finalizers?.includes(SEGMENT_FINALIZER)) continue;
    // A pod still holds an address there (network-ipam.ts): it is still on the segment.
    if (m.finalizers.includes(IPAM_FINALIZER)) continue;
    await releaseSegment(store, { namespace: m.namespace, name: m.name, spec: n.spec });
    const status = await setFinalizers(
      client,
      `${API_GROUP_PATH}/namespaces/${m.namespace}/tenantnetworks/${m.name}`,
      m,
      m.finalizers.filter((f) => f !== SEGMENT_FINALIZER),
    );
    if (status === 200) done.push(`${m.namespace}/${m.name}`);
  }
  return done;
}
