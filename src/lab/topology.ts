// A "fabric" netns with one bridge per physical segment stands for the switches; each
// "node" netns gets NICs (veth pairs into the fabric) with underlay addresses.
import { addNetns, delNetns, sh } from './sh.js';

export interface NicSpec {
  name: string; // inside the node, e.g. eth1
  segment: string; // fabric bridge it plugs into
  address?: string; // underlay CIDR on the node side
  vlanAware?: boolean;
}

export interface NodeSpec {
  name: string;
  nics: NicSpec[];
}

export interface Topology {
  prefix: string;
  fabric: string;
  nodes: Map<string, string>; // node name -> netns name
  destroy(): Promise<void>;
}

export async function buildTopology(prefix: string, nodes: NodeSpec[]): Promise<Topology> {
  const fabric = `${prefix}-fabric`;
  const created: string[] = [];
  const topo: Topology = {
    prefix,
    fabric,
    nodes: new Map(),
    async destroy() {
      for (const ns of created.reverse()) await delNetns(ns);
    },
  };
  try {
    await addNetns(fabric);
    created.push(fabric);
    const segments = new Set<string>();
    for (const [ni, node] of nodes.entries()) {
      const ns = `${prefix}-${node.name}`;
      await addNetns(ns);
      created.push(ns);
      topo.nodes.set(node.name, ns);
      for (const [i, nic] of node.nics.entries()) {
        if (!segments.has(nic.segment)) {
          await sh('ip', [
            '-n',
            fabric,
            'link',
            'add',
            nic.segment,
            'type',
            'bridge',
            ...(nic.vlanAware ? ['vlan_filtering', '0'] : []),
          ]);
          await sh('ip', ['-n', fabric, 'link', 'set', nic.segment, 'up']);
          segments.add(nic.segment);
        }
        const peer = `n${ni}p${i}`;
        await sh('ip', [
          '-n',
          fabric,
          'link',
          'add',
          peer,
          'type',
          'veth',
          'peer',
          'name',
          nic.name,
          'netns',
          `/run/netns/${ns}`,
        ]);
        await sh('ip', ['-n', fabric, 'link', 'set', peer, 'master', nic.segment, 'up']);
        if (nic.address) await sh('ip', ['-n', ns, 'addr', 'add', nic.address, 'dev', nic.name]);
        await sh('ip', ['-n', ns, 'link', 'set', nic.name, 'up']);
      }
    }
    return topo;
  } catch (e) {
    await topo.destroy();
    throw e;
  }
}
