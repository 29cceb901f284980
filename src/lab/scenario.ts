// A lab scenario: nodes with NICs on fabric segments, networks (the same schema as the
// network files), and pods with their interface requests. The embedded default is a
// small telco site; users describe their own in YAML.
import { readFileSync } from 'node:fs';
import * as v from 'valibot';
import { parse } from 'yaml';
import { InterfaceRequestSchema } from '../cni/config.js';
import { issuesText } from '../cni/validation.js';
import { parseNetwork } from '../network/parse.js';
import { API_VERSION, NetworkSpecSchema, type Network } from '../network/schema.js';

const shortName = (message?: string) => v.pipe(v.string(), v.regex(/^[a-z0-9]{1,8}$/, message));

export const ScenarioSchema = v.object({
  name: shortName('1-8 lowercase letters or digits (used in netns names)'),
  nodes: v.array(
    v.object({
      name: shortName(),
      nics: v.array(
        v.object({
          name: shortName(),
          segment: shortName(),
          address: v.optional(v.string()),
        }),
      ),
    }),
  ),
  networks: v.array(v.object({ name: v.string(), spec: NetworkSpecSchema })),
  pods: v.array(
    v.object({
      name: shortName(),
      node: v.string(),
      interfaces: v.array(InterfaceRequestSchema),
    }),
  ),
  /** Pairs that must NOT reach each other: [pod, address]. */
  isolation: v.optional(
    v.array(v.object({ from: v.string(), to: v.string(), why: v.optional(v.string()) })),
  ),
});
export type Scenario = v.InferOutput<typeof ScenarioSchema>;

export function parseScenario(
  raw: unknown,
  source: string,
): { scenario: Scenario; networks: Network[] } {
  const r = v.safeParse(ScenarioSchema, raw);
  if (!r.success) throw new Error(`invalid scenario ${source}: ${issuesText(r.issues)}`);
  const s = r.output;
  const networks = s.networks.map((n) =>
    parseNetwork(
      { apiVersion: API_VERSION, kind: 'ClusterNetwork', metadata: { name: n.name }, spec: n.spec },
      source,
    ),
  );
  const nodes = new Set(s.nodes.map((n) => n.name));
  for (const p of s.pods)
    if (!nodes.has(p.node))
      throw new Error(`invalid scenario ${source}: pod ${p.name} on unknown node ${p.node}`);
  return { scenario: s, networks };
}

export function loadScenario(file: string): { scenario: Scenario; networks: Network[] } {
  return parseScenario(parse(readFileSync(file, 'utf8')), file);
}

/** The README's lab: two nodes, a macvlan OAM network with well-known addresses, a VXLAN
 * network for internal traffic (dual stack, policy routing), a VLAN towards the radio side
 * (where the kernel has 8021q) and a node-local bridge. */
export const DEFAULT_SCENARIO = {
  name: 'site',
  nodes: [
    {
      name: 'node1',
      nics: [
        { name: 'eth1', segment: 'oam' },
        { name: 'eth2', segment: 'underlay', address: '192.168.100.1/24' },
        { name: 'eth3', segment: 'trunk' },
      ],
    },
    {
      name: 'node2',
      nics: [
        { name: 'eth1', segment: 'oam' },
        { name: 'eth2', segment: 'underlay', address: '192.168.100.2/24' },
        { name: 'eth3', segment: 'trunk' },
      ],
    },
  ],
  networks: [
    {
      name: 'oam',
      spec: {
        type: 'macvlan',
        device: 'eth1',
        mode: 'bridge',
        ipv4: {
          cidr: '10.10.0.0/24',
          pools: [{ start: '10.10.0.10', end: '10.10.0.199' }],
          gateway: '10.10.0.1',
        },
      },
    },
    {
      name: 'internal',
      spec: {
        type: 'macvlan',
        device: 'eth2',
        vxlan: { vni: 1000, port: 4789, remotes: ['192.168.100.1', '192.168.100.2'] },
        mtu: 1450,
        ipv4: { cidr: '10.20.0.0/24', blockPrefix: 28 },
        ipv6: { cidr: 'fd00:20::/64' },
        routingTable: 120,
      },
    },
    {
      name: 'radio',
      spec: { type: 'macvlan', device: 'eth3', vlan: 310, ipv4: { cidr: '10.40.0.0/24' } },
    },
    {
      name: 'local',
      spec: { type: 'bridge', bridge: 'tt-br-local', ipv4: { cidr: '10.30.0.0/24' } },
    },
  ],
  pods: [
    {
      name: 'amf',
      node: 'node1',
      interfaces: [
        { network: 'oam', ip: '10.10.0.10' },
        { network: 'internal', ifname: 'int0', ip6: 'dynamic' },
      ],
    },
    {
      name: 'smf',
      node: 'node2',
      interfaces: [
        { network: 'oam', ip: '10.10.0.20' },
        { network: 'internal', ifname: 'int0', ip6: 'dynamic' },
      ],
    },
    {
      name: 'upf',
      node: 'node1',
      interfaces: [
        { network: 'internal', ifname: 'int0' },
        { network: 'local', ifname: 'loc0' },
        { network: 'radio', ifname: 'ran0', ip: '10.40.0.10' },
      ],
    },
    { name: 'db', node: 'node1', interfaces: [{ network: 'local', ifname: 'loc0' }] },
    {
      name: 'du',
      node: 'node2',
      interfaces: [{ network: 'radio', ifname: 'ran0', ip: '10.40.0.20' }],
    },
  ],
  isolation: [{ from: 'upf', to: '10.10.0.10', why: 'upf has no OAM interface' }],
} satisfies v.InferInput<typeof ScenarioSchema>;
