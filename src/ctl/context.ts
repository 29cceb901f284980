// Where tartanctl finds things: a running lab (--lab), or explicit paths on a node.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadLabState } from '../lab/lab.js';
import { loadNetworks } from '../network/load.js';
import type { Network } from '../network/schema.js';
import { createKubeClient } from '../k8s/client.js';
import { parseNetwork } from '../network/parse.js';
import { openStore } from '../store/index.js';
import { kubernetesStoreWith } from '../store/kubernetes.js';
import { loadKubeconfig } from '../k8s/kubeconfig.js';
import type { Store, StoreConfig } from '../store/types.js';

export interface NodeRef {
  name: string;
  stateDir: string;
  /** netns the node lives in (lab), or undefined for this host. */
  netns?: string;
}

/** What the cluster recorded for one pod interface (the Attachment object's spec). */
export interface ClusterAttachment {
  pod: string;
  namespace: string;
  node: string;
  containerId: string;
  ifname: string;
  network: string;
  ips: string[];
}

export interface Context {
  networks: Map<string, Network>;
  /** Set when the context is a cluster: the Attachment objects (node state is per node). */
  attachments?: ClusterAttachment[];
  store: Store;
  nodes: NodeRef[];
  /** pod name -> containerId, where known (lab). */
  pods: Map<string, { containerId: string; node: string }>;
}

export interface ContextOpts {
  lab?: string;
  kubeconfig?: string;
  /** Namespace of Tartan's records in the cluster. */
  namespace?: string;
  networksDir?: string;
  storePath?: string;
  etcd?: string;
  stateDir?: string;
  node?: string;
}

export async function openContext(o: ContextOpts): Promise<Context> {
  if (o.kubeconfig) return openCluster(o.kubeconfig, o.namespace ?? 'tartan-system');
  if (o.lab) {
    const st = loadLabState(o.lab);
    if (!st) throw new Error(`lab ${o.lab} is not up (npm run lab -- up)`);
    return {
      networks: await loadNetworks(join(st.dir, 'networks')),
      store: await openStore({ type: 'file', path: join(st.dir, 'ipam.db') }),
      nodes: st.scenario.nodes.map((n) => ({
        name: n.name,
        stateDir: join(st.dir, `state-${n.name}`),
        netns: `${st.prefix}-${n.name}`,
      })),
      pods: new Map(
        st.scenario.pods.map((p) => [p.name, { containerId: `lab-${p.name}`, node: p.node }]),
      ),
    };
  }
  const storeCfg: StoreConfig = o.etcd
    ? { type: 'etcd', endpoints: o.etcd.split(',') }
    : { type: 'file', path: o.storePath ?? '/var/lib/tartan/ipam.db' };
  // A node of a cluster has no networks directory (its networks are API objects): the
  // default one may be absent, which leaves the views by network empty and `check` (which
  // reads the node's records) working. One that is named must be there.
  const networks =
    o.networksDir === undefined && !existsSync(DEFAULT_NETWORKS_DIR)
      ? new Map<string, Network>()
      : await loadNetworks(o.networksDir ?? DEFAULT_NETWORKS_DIR);
  return {
    networks,
    store: await openStore(storeCfg),
    nodes: [{ name: o.node ?? 'local', stateDir: o.stateDir ?? '/var/lib/tartan' }],
    pods: new Map(),
  };
}

const DEFAULT_NETWORKS_DIR = '/etc/tartan/networks';

type Obj = { metadata: { name: string; namespace?: string }; spec: Record<string, unknown> };

async function openCluster(kubeconfig: string, namespace: string): Promise<Context> {
  const client = createKubeClient(loadKubeconfig(kubeconfig));
  const list = async (path: string) =>
    (await client.must<{ items: Obj[] }>({ method: 'GET', path })).items;
  const networks = new Map<string, Network>();
  const base = '/apis/tartan.io/v1alpha1';
  for (const [kind, path] of [
    ['ClusterNetwork', `${base}/clusternetworks`],
    ['TenantNetwork', `${base}/tenantnetworks`],
  ] as const)
    for (const o of await list(path)) {
      const name = o.metadata.namespace
        ? `${o.metadata.namespace}/${o.metadata.name}`
        : o.metadata.name;
      networks.set(
        name,
        parseNetwork(
          {
            apiVersion: 'tartan.io/v1alpha1',
            kind,
            metadata: { name: o.metadata.name },
            spec: o.spec,
          },
          `${kind} ${name}`,
        ),
      );
    }
  const attachments = (await list(`${base}/attachments`)).map((o): ClusterAttachment => {
    const s = o.spec as {
      pod: string;
      node: string;
      containerId: string;
      ifname: string;
      network: { name: string; namespace?: string };
      ips?: string[];
    };
    return {
      pod: s.pod,
      namespace: o.metadata.namespace ?? '',
      node: s.node,
      containerId: s.containerId,
      ifname: s.ifname,
      network: s.network.namespace ? `${s.network.namespace}/${s.network.name}` : s.network.name,
      ips: s.ips ?? [],
    };
  });
  const nodes = [...new Set(attachments.map((a) => a.node))].map((name) => ({
    name,
    stateDir: '',
  }));
  return {
    networks,
    attachments,
    store: kubernetesStoreWith(client, { namespace }),
    nodes,
    pods: new Map(attachments.map((a) => [a.pod, { containerId: a.containerId, node: a.node }])),
  };
}
