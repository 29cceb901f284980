// Where tartanctl finds things: a running lab (--lab), or explicit paths on a node.
import { join } from 'node:path';
import { loadLabState } from '../lab/lab.js';
import { loadNetworks } from '../network/load.js';
import type { Network } from '../network/schema.js';
import { openStore } from '../store/index.js';
import type { Store, StoreConfig } from '../store/types.js';

export interface NodeRef {
  name: string;
  stateDir: string;
  /** netns the node lives in (lab), or undefined for this host. */
  netns?: string;
}

export interface Context {
  networks: Map<string, Network>;
  store: Store;
  nodes: NodeRef[];
  /** pod name -> containerId, where known (lab). */
  pods: Map<string, { containerId: string; node: string }>;
}

export interface ContextOpts {
  lab?: string;
  networksDir?: string;
  storePath?: string;
  etcd?: string;
  stateDir?: string;
  node?: string;
}

export async function openContext(o: ContextOpts): Promise<Context> {
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
  return {
    networks: await loadNetworks(o.networksDir ?? '/etc/tartan/networks'),
    store: await openStore(storeCfg),
    nodes: [{ name: o.node ?? 'local', stateDir: o.stateDir ?? '/var/lib/tartan' }],
    pods: new Map(),
  };
}
