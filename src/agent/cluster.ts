// The agent in a cluster: networks are ClusterNetwork and TenantNetwork objects, and a
// pod's interfaces are the ones its annotations ask for (tartan.io/interfaces or the NPWG
// k8s.v1.cni.cncf.io/networks). Informers keep the networks, the NetworkAttachmentDefinitions
// and the pods of this node in memory, so an ADD reads no API object in the common case
// and the agent keeps attaching pods on the last known state while the API server is away.
//
// Network names in the core are IPAM names (src/k8s/names.ts): a ClusterNetwork's name,
// "<namespace>/<name>" for a TenantNetwork, "nad:<namespace>/<name>" for a delegated NAD.
import type { InterfaceRequest } from '../cni/config.js';
import { TartanError } from '../cni/errors.js';
import type { KubeClient } from '../k8s/client.js';
import { createInformer, type KubeObject } from '../k8s/informer.js';
import { ipamNetworkName, NAD_PREFIX } from '../k8s/names.js';
import { resolvePodAttachments, type NetworkLookup, type PodLike } from '../k8s/resolve.js';
import { parseNetwork as parseNetworkDocument } from '../network/parse.js';
import type { Network } from '../network/schema.js';
import type { Logger } from './log.js';
import type { NetworkSource } from './networks.js';
import type { PodRef } from './pods.js';

export interface PodNetworks {
  /** Every network, by core name. */
  networks: Map<string, Network>;
  /** The pod's requests from its annotations; undefined when it has none (the conflist's apply). */
  requests?: InterfaceRequest[];
}

export interface ClusterView extends NetworkSource {
  /** Resolves when every informer has listed once. */
  synced(): Promise<void>;
  /** The networks and requests of one pod's ADD; throws a TartanError the pod's owner can act on. */
  forPod(pod: PodRef): Promise<PodNetworks>;
  /** The networks an ADD may attach to: every network but those being deleted. */
  attachable(): Promise<Map<string, Network>>;
}

const GROUP = '/apis/tartan.io/v1alpha1';
const NAD_PATH = '/apis/k8s.cni.cncf.io/v1/network-attachment-definitions';

/** deleting: the object has a deletionTimestamp (held by finalizers until its IPAM state goes). */
type Parsed = { net: Network; deleting: boolean } | { error: string };
interface PodObject extends KubeObject, PodLike {
  metadata: KubeObject['metadata'] & PodLike['metadata'];
}

/** A network object as the core uses it (parsed and checked like a file), or why not. */
function parseNetwork(o: KubeObject, kind: 'ClusterNetwork' | 'TenantNetwork'): Parsed {
  const id = { kind, name: o.metadata.name, namespace: o.metadata.namespace };
  try {
    const net = parseNetworkDocument(
      {
        apiVersion: 'tartan.io/v1alpha1',
        kind,
        metadata: { name: id.name, ...(id.namespace ? { namespace: id.namespace } : {}) },
        spec: (o as { spec?: unknown }).spec,
      },
      `${kind} ${ipamNetworkName(id)}`,
    );
    const deleting = (o.metadata as { deletionTimestamp?: string }).deletionTimestamp !== undefined;
    return {
      net: { ...net, metadata: { ...net.metadata, name: ipamNetworkName(id) } },
      deleting,
    };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

export function clusterView(client: KubeClient, node: string, log: Logger): ClusterView {
  const onError = (what: string, e: Error) =>
    log.warn('kubernetes watch', { what, error: e.message });
  const cluster = createInformer<Parsed>(client, `${GROUP}/clusternetworks`, {
    transform: (o) => parseNetwork(o, 'ClusterNetwork'),
    onError,
  });
  const tenant = createInformer<Parsed>(client, `${GROUP}/tenantnetworks`, {
    transform: (o) => parseNetwork(o, 'TenantNetwork'),
    onError,
  });
  const nads = createInformer<{ spec?: { config?: string } }>(client, NAD_PATH, {
    transform: (o) => o as { spec?: { config?: string } },
    onError,
  });
  const pods = createInformer<PodObject>(
    client,
    `/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${node}`)}`,
    {
      // Only what resolving needs: a node's pods' specs and statuses are most of their size.
      transform: (o) => {
        const m = (o as PodObject).metadata;
        return {
          metadata: {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            ...(m.annotations ? { annotations: m.annotations } : {}),
          },
        };
      },
      onError,
    },
  );
  const all = [cluster, tenant, nads, pods];

  const usable = (p: Parsed | undefined, what: string) => {
    if (!p) return undefined;
    if ('error' in p) throw new TartanError('ERR_CONFIG', `${what} is not usable: ${p.error}`);
    // Its IPAM records go once it holds no address (src/controller/network-ipam.ts): a pod
    // attached now would hold one in records about to be forgotten.
    if (p.deleting)
      throw new TartanError('ERR_CONFIG', `${what} is being deleted: no pod can attach to it`);
    return { spec: p.net.spec };
  };
  const lookup: NetworkLookup = {
    tenantNetwork: async (ns, name) =>
      usable(tenant.get(`${ns}/${name}`), `TenantNetwork ${ns}/${name}`),
    clusterNetwork: async (name) => usable(cluster.get(name), `ClusterNetwork ${name}`),
    nad: async (ns, name) => nads.get(`${ns}/${name}`),
  };

  // Every network (DEL, CHECK, GC and STATUS see those being deleted too), and the ones an
  // ADD may attach to.
  let memo: { at: string; nets: Map<string, Network>; live: Map<string, Network> } | undefined;
  const current = () => {
    const at = `${cluster.revision}/${tenant.revision}`;
    if (memo?.at === at) return memo;
    const nets = new Map<string, Network>();
    const live = new Map<string, Network>();
    for (const inf of [cluster, tenant])
      for (const p of inf.values())
        if ('net' in p) {
          nets.set(p.net.metadata.name, p.net);
          if (!p.deleting) live.set(p.net.metadata.name, p.net);
        }
    memo = { at, nets, live };
    return memo;
  };
  const networks = () => current().nets;

  async function podObject(ref: PodRef): Promise<PodLike> {
    const cached = pods.get(`${ref.namespace}/${ref.name}`);
    if (cached && (ref.uid === undefined || cached.metadata.uid === ref.uid)) return cached;
    // Not seen yet (the watch event may trail the kubelet's call) or an older pod of the
    // same name: ask the API server.
    const res = await client.request<PodObject & { message?: string }>({
      method: 'GET',
      path: `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/pods/${encodeURIComponent(ref.name)}`,
    });
    if (res.status === 404)
      throw new TartanError('ERR_IFACE_REQUEST', `pod ${ref.namespace}/${ref.name} does not exist`);
    if (res.status >= 400)
      throw new TartanError(
        'ERR_STORE',
        `cannot read pod ${ref.namespace}/${ref.name}: ${res.status} ${res.body?.message ?? ''}`,
        { cniCode: 11 },
      );
    return res.body;
  }

  return {
    async networks() {
      return networks();
    },
    async synced() {
      await Promise.all(all.map((i) => i.synced()));
    },
    async attachable() {
      return current().live;
    },
    async forPod(ref) {
      const pod = await podObject(ref);
      const nets = current().live;
      const a = pod.metadata.annotations ?? {};
      // The conflist's requests: a network being deleted is unknown to them.
      if (!a['tartan.io/interfaces'] && !a['k8s.v1.cni.cncf.io/networks'])
        return { networks: nets };
      const atts = await resolvePodAttachments(pod, lookup);
      const out = new Map(nets);
      const requests = atts.map((t): InterfaceRequest => {
        let name: string;
        if (t.nadConfig !== undefined) {
          name = `${NAD_PREFIX}${t.network.namespace}/${t.network.name}`;
          out.set(name, nadNetwork(name, t.network.namespace!, t.nadConfig));
        } else {
          name = ipamNetworkName({
            kind: t.network.kind as 'ClusterNetwork' | 'TenantNetwork',
            name: t.network.name,
            namespace: t.network.namespace,
          });
        }
        return { ...t.request, network: name };
      });
      return { networks: out, requests };
    },
    close() {
      for (const i of all) i.close();
    },
  };
}

/**
 * A NetworkAttachmentDefinition as a delegated network: its config goes to the plugin as is.
 * resolvePodAttachments refused a config that is no CNI configuration object
 * (nadConfigProblem), so it parses.
 */
function nadNetwork(name: string, ns: string, config: string): Network {
  return {
    apiVersion: 'tartan.io/v1alpha1',
    kind: 'TenantNetwork',
    metadata: { name, namespace: ns },
    spec: { type: 'delegate', delegate: JSON.parse(config) as Record<string, unknown> },
  };
}
