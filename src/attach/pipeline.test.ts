// The meta-plugin's logic against the fake kernel and the memory store: ordering, names,
// rollback of every kind of object, ref-counted parents, idempotent DEL, GC.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse6 } from '../cni/addr.js';
import { TartanError } from '../cni/errors.js';
import type { CniResult } from '../cni/spec.js';
import { auditIpam } from '../ipam/audit.js';
import { createIpam } from '../ipam/index.js';
import { createFakeKernel, type FakeKernel } from '../kernel/fake.js';
import { parseNetwork } from '../network/parse.js';
import type { Network } from '../network/schema.js';
import { createMemoryStore } from '../store/memory.js';
import { planAddressing } from './addressing.js';
import { openHostState, type HostState } from './host-state.js';
import { bridgeName } from './parents.js';
import { add, check, del, gc, type AttachRequest, type Deps } from './pipeline.js';

const net = (name: string, spec: Record<string, unknown>): Network =>
  parseNetwork(
    { apiVersion: 'tartan.io/v1alpha1', kind: 'ClusterNetwork', metadata: { name }, spec },
    'test',
  );

const networks = new Map(
  [
    net('oam', {
      type: 'macvlan',
      device: 'eth1',
      ipv4: { cidr: '10.1.0.0/24', gateway: '10.1.0.1' },
    }),
    net('vl', {
      type: 'ipvlan',
      device: 'eth1',
      vlan: 100,
      mode: 'l3',
      ipv4: { cidr: '10.2.0.0/24' },
      routingTable: 102,
    }),
    net('vx', {
      type: 'macvlan',
      device: 'eth1',
      vxlan: { vni: 9, remotes: ['192.0.2.2'] },
      ipv6: { cidr: 'fd00:9::/64' },
    }),
    net('vl2', {
      type: 'macvlan',
      device: 'eth1',
      vlan: 103,
      ipv4: { cidr: '10.3.0.0/24' },
      routingTable: 102,
    }),
    net('br', { type: 'bridge', ipv4: { cidr: '10.4.0.0/24' } }),
    net('hd', { type: 'host-device', device: 'eth2', ipv4: { cidr: '10.5.0.0/24' } }),
  ].map((n) => [n.metadata.name, n]),
);

let dir: string;
let k: FakeKernel;
let state: HostState;
let deps: Deps;
const store = createMemoryStore();

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tartan-unit-'));
  k = createFakeKernel(['lo', 'eth1']);
  await k.apply({}, [{ op: 'addr-add', dev: 'eth1', cidr: '192.0.2.1/24' }]);
  state = await openHostState(dir);
  store.dump().clear();
  deps = { kernel: k, ipam: createIpam(store), state, node: 'n1', network: (n) => networks.get(n) };
});

afterEach(() => {
  try {
    state.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const req = (
  pod: string,
  requests: AttachRequest['requests'],
  extra: Partial<AttachRequest> = {},
): AttachRequest => {
  try {
    k.ns(pod);
  } catch {
    k.addNetns(pod);
  }
  return {
    containerId: `c-${pod.slice(1)}`,
    ifname: 'eth0',
    netns: pod,
    cniVersion: '1.1.0',
    cniArgs: undefined,
    cniPath: [],
    runtimeConfig: undefined,
    defaultNetwork: undefined,
    requests,
    prevResult: undefined,
    ...extra,
  };
};

const allocCount = () =>
  [...store.dump().values()].reduce(
    (n, e) => n + Object.keys((e.value as { allocs?: object }).allocs ?? {}).length,
    0,
  );

describe('attach pipeline', () => {
  it('names interfaces deterministically: first eth0, then net1.., explicit names kept', async () => {
    const r = await add(
      deps,
      req('/p1', [{ network: 'oam' }, { network: 'vl', ifname: 'radio' }, { network: 'br' }]),
    );
    expect(r.interfaces?.filter((i) => i.sandbox).map((i) => i.name)).toEqual([
      'eth0',
      'radio',
      'net1',
    ]);
    expect([...k.ns('/p1').links.keys()].sort()).toEqual(['eth0', 'net1', 'radio']);
    expect(k.ns('/p1').routes).toContainEqual(
      expect.objectContaining({ dst: 'default', gw: '10.1.0.1', dev: 'eth0' }),
    );
    expect(k.ns('/p1').rules).toHaveLength(1);
    expect(k.ns().links.get('eth1.100')?.kind).toBe('vlan');
  });

  it('rolls back links, parents, rules and allocations when a later step fails', async () => {
    k.failOn((op) => op.op === 'addr-add' && op.dev === 'net2');
    const r = req('/p2', [
      { network: 'oam' },
      { network: 'vl' },
      { network: 'vx' },
      { network: 'br' },
    ]);
    await expect(add(deps, r)).rejects.toThrow(/interface net2 \(network vx\).*injected failure/);
    expect([...k.ns('/p2').links.keys()]).toEqual([]);
    expect(k.ns('/p2').rules).toEqual([]);
    expect([...k.ns().links.keys()].sort()).toEqual(['eth1', 'lo']);
    expect(state.listParents()).toEqual([]);
    expect(state.listAttachments()).toEqual([]);
    expect(allocCount()).toBe(0);
  });

  it('a parent half-made when its creation fails (or the process dies) is ours, and goes', async () => {
    // The VXLAN link exists, then its FDB entry fails: as if the process died right after
    // creating the link. The record must already say the link is ours, or it would stay
    // forever, later taken for an operator's link.
    k.failOn((op) => op.op === 'fdb-append');
    await expect(add(deps, req('/h', [{ network: 'vx' }]))).rejects.toThrow(/injected failure/);
    expect([...k.ns().links.keys()].sort()).toEqual(['eth1', 'lo']);
    expect(state.listParents()).toEqual([]);
    // The same, with the rollback itself unable to run (a killed process): the record
    // names the link and its user, so that user's DEL removes it.
    k.failOn((op) => op.op === 'fdb-append');
    k.failOn((op) => op.op === 'link-del', true);
    await expect(add(deps, req('/h2', [{ network: 'vx' }]))).rejects.toThrow(/rollback incomplete/);
    expect(state.listParents()).toEqual([
      expect.objectContaining({ name: 'tvx9', external: false, users: ['c-h2/eth0'] }),
    ]);
  });

  it('keeps a parent while another pod uses it and re-creates it if deleted', async () => {
    await add(deps, req('/a', [{ network: 'vx' }]));
    const addB = await add(deps, req('/b', [{ network: 'vx' }]));
    expect(state.getParent('tvx9')?.users).toHaveLength(2);
    await del(deps, {
      containerId: 'c-a',
      ifname: 'eth0',
      netns: '/a',
      cniPath: [],
      cniArgs: undefined,
    });
    expect(k.ns().links.has('tvx9')).toBe(true);
    await k.apply({}, [{ op: 'link-del', name: 'tvx9' }]);
    await expect(
      check(deps, {
        containerId: 'c-b',
        ifname: 'eth0',
        netns: '/b',
        cniPath: [],
        cniArgs: undefined,
        prevResult: addB,
      }),
    ).rejects.toThrow(/host parent tvx9 is missing/);
    await add(deps, req('/c', [{ network: 'vx' }]));
    expect(k.ns().links.has('tvx9')).toBe(true);
    await del(deps, {
      containerId: 'c-b',
      ifname: 'eth0',
      netns: '/b',
      cniPath: [],
      cniArgs: undefined,
    });
    await del(deps, {
      containerId: 'c-c',
      ifname: 'eth0',
      netns: '/c',
      cniPath: [],
      cniArgs: undefined,
    });
    expect(k.ns().links.has('tvx9')).toBe(false);
    expect(allocCount()).toBe(0);
  });

  it('never removes a parent someone else created', async () => {
    await k.apply({}, [{ op: 'vlan-add', name: 'eth1.100', parent: 'eth1', id: 100 }]);
    await add(deps, req('/x', [{ network: 'vl' }]));
    await del(deps, {
      containerId: 'c-x',
      ifname: 'eth0',
      netns: '/x',
      cniPath: [],
      cniArgs: undefined,
    });
    expect(k.ns().links.has('eth1.100')).toBe(true);
  });

  it('refuses a host link of the parent name that is not what the network needs', async () => {
    // A veth under the bridge's name: a bridge network cannot put pods on it.
    await k.apply({}, [{ op: 'veth-add', name: 'tbr-br', peer: 'tt-peer' }]);
    await expect(add(deps, req('/y', [{ network: 'br' }]))).rejects.toMatchObject({
      cniCode: 7,
      message: expect.stringMatching(
        /host link tbr-br exists and is a plain device, not the bridge this network needs/,
      ),
    });
    expect(state.listParents()).toEqual([]);
    expect(k.ns().links.has('tbr-br')).toBe(true);
    expect(k.ops.filter((o) => o.t.ns === '/y')).toEqual([]);
  });

  it('does not remove a parent whose creation failed on its first op (not ours)', async () => {
    // Someone made the bridge between Tartan's look and its create: the create fails, and
    // the undo must not take that link away.
    k.failOn((op) => {
      if (op.op !== 'bridge-add') return false;
      k.ns().links.set('tbr-br', {
        ifindex: 99,
        ifname: 'tbr-br',
        flags: [],
        mtu: 1500,
        kind: 'bridge',
      });
      return true;
    });
    await expect(add(deps, req('/z', [{ network: 'br' }]))).rejects.toThrow(/injected failure/);
    expect(k.ops.filter((o) => o.op.op === 'link-del' && o.op.name === 'tbr-br')).toEqual([]);
    expect(k.ns().links.has('tbr-br')).toBe(true);
    expect(state.listParents()).toEqual([]);
  });

  it('DEL is idempotent and works after the netns is gone', async () => {
    await add(deps, req('/g', [{ network: 'oam' }, { network: 'br' }]));
    k.removeNetns('/g');
    const d = { containerId: 'c-g', ifname: 'eth0', netns: '/g', cniPath: [], cniArgs: undefined };
    await del(deps, d);
    await del(deps, d);
    expect(allocCount()).toBe(0);
    expect([...k.ns().links.keys()].sort()).toEqual(['eth1', 'lo']);
  });

  it('DEL after the netns is gone gives a host device its own name back', async () => {
    const mac = '02:00:00:00:aa:01';
    const nic = () => [...k.ns().links.values()].find((l) => l.address === mac);
    const d = { containerId: 'c-h', ifname: 'eth0', netns: '/h', cniPath: [], cniArgs: undefined };
    k.ns().links.set('eth2', { ifindex: 42, ifname: 'eth2', flags: ['UP'], mtu: 1500 });
    // Its pod name is free on the host: the kernel returns it as net1.
    await add(deps, req('/h', [{ network: 'oam' }, { network: 'hd', ifname: 'net1', mac }]));
    expect(k.ns().links.has('eth2')).toBe(false);
    k.removeNetns('/h');
    expect(nic()?.ifname).toBe('net1');
    await del(deps, d);
    expect(nic()?.ifname).toBe('eth2');
    expect(nic()?.flags).not.toContain('UP');
    expect(allocCount()).toBe(0);

    // Its pod name is taken on the host: the kernel returns it as dev<N>.
    await add(deps, req('/h', [{ network: 'hd', ifname: 'net1', mac }]));
    await k.apply({}, [{ op: 'veth-add', name: 'net1', peer: 'tt-peer' }]);
    k.removeNetns('/h');
    expect(nic()?.ifname).toMatch(/^dev\d+$/);
    await del(deps, d);
    expect(nic()?.ifname).toBe('eth2');
    expect(k.ns().links.get('net1')?.kind).toBe('veth'); // someone else's: left alone
  });

  it('GC removes attachments the runtime no longer lists', async () => {
    await add(deps, req('/k', [{ network: 'oam' }]));
    await add(deps, req('/l', [{ network: 'oam' }]));
    expect(await gc(deps, [{ containerId: 'c-k', ifname: 'eth0' }], [])).toEqual({
      removed: 1,
      errors: [],
    });
    expect(state.listAttachments().map((a) => a.containerId)).toEqual(['c-k']);
  });

  it('refuses duplicate interface names and unknown networks before touching anything', async () => {
    await expect(
      add(
        deps,
        req('/d', [
          { network: 'oam', ifname: 'x' },
          { network: 'br', ifname: 'x' },
        ]),
      ),
    ).rejects.toThrow(/requested twice/);
    await expect(add(deps, req('/d', [{ network: 'nope' }]))).rejects.toThrow(
      /unknown network nope/,
    );
    expect(k.ops.filter((o) => o.t.ns === '/d')).toEqual([]);
  });

  it('refuses policy routes that would go nowhere or are malformed, before touching anything', async () => {
    const cases: Array<[string, { dst: string; gw?: string }, RegExp]> = [
      ['oam', { dst: '10.9.0.0/16' }, /policyRoutes need a network with a routingTable/],
      ['vl', { dst: 'bogus' }, /policyRoutes\[0\]\.dst "bogus" is not a CIDR/],
      ['vl', { dst: '10.9.1.0/16' }, /host bits set/],
      ['vl', { dst: '10.9.0.0/16', gw: 'fd00::1' }, /gw "fd00::1" is not an IPv4 address/],
      ['vl', { dst: 'fd00:9::/64' }, /is IPv6, and the network has no IPv6 range/],
      [
        'vl',
        { dst: '10.9.0.0/16', gw: '172.16.0.1' },
        /gw 172\.16\.0\.1 is not inside 10\.2\.0\.0\/24, so it cannot be reached/,
      ],
      ['vl', { dst: '10.9.0.0/16', gw: '10.2.0.255' }, /is the network or broadcast address/],
    ];
    for (const [network, route, msg] of cases)
      await expect(
        add(deps, req('/pr', [{ network, policyRoutes: [route] }])),
        JSON.stringify(route),
      ).rejects.toMatchObject({ cniCode: 107, message: expect.stringMatching(msg) });
    expect(k.ops.filter((o) => o.t.ns === '/pr')).toEqual([]);
    expect(store.dump().size).toBe(0);
    // A good one goes into the network's table.
    await add(deps, req('/pr', [{ network: 'vl', policyRoutes: [{ dst: '10.9.0.0/16' }] }]));
    expect(k.ops).toContainEqual(
      expect.objectContaining({
        op: expect.objectContaining({ op: 'route-add', dst: '10.9.0.0/16', table: 102 }),
      }),
    );
  });

  it('refuses two interfaces in one routing table, before touching anything', async () => {
    const cases: Array<[AttachRequest['requests'], RegExp]> = [
      [
        [{ network: 'vl' }, { network: 'vl2' }],
        /interfaces eth0 \(network vl\) and net1 \(network vl2\) would share routing table 102/,
      ],
      [
        [
          { network: 'vl', ifname: 'a' },
          { network: 'vl', ifname: 'b' },
        ],
        /interfaces a \(network vl\) and b \(network vl\) would share routing table 102/,
      ],
    ];
    for (const [requests, msg] of cases)
      await expect(add(deps, req('/tb', requests))).rejects.toMatchObject({
        cniCode: 107,
        message: expect.stringMatching(msg),
      });
    expect(k.ops.filter((o) => o.t.ns === '/tb')).toEqual([]);
    expect(store.dump().size).toBe(0);
    // Without an address an interface has no rule and no routes in the table.
    await add(deps, req('/tb', [{ network: 'vl', ip: 'none' }, { network: 'vl2' }]));
    expect(k.ns('/tb').rules).toHaveLength(1);
  });

  it('reports the first failure when the node state cannot be written at all', async () => {
    const readOnly = () => {
      throw new TartanError('ERR_STORE', 'node state cannot be written');
    };
    const broken = { ...state, putAttachment: readOnly, deleteAttachment: readOnly };
    await expect(
      add({ ...deps, state: broken }, req('/ro', [{ network: 'oam' }])),
    ).rejects.toMatchObject({
      cniCode: 105,
      message: expect.stringMatching(
        /^interface eth0 \(network oam\): node state cannot be written \(its record could not be removed either/,
      ),
    });
  });

  it('refuses what a network would ignore or could not hold, before touching anything', async () => {
    for (const n of [
      net('dg', { type: 'delegate', delegate: { cniVersion: '1.0.0', type: 'bridge' } }),
      net('twice', {
        type: 'macvlan',
        device: 'eth1',
        ipv4: {
          cidr: '10.70.0.0/24',
          gateway: '10.70.0.1',
          routes: [{ dst: '0.0.0.0/0', gw: '10.70.0.2' }],
        },
      }),
    ])
      networks.set(n.metadata.name, n);
    const cases: Array<[AttachRequest['requests'], number, RegExp]> = [
      [
        [{ network: 'dg', defaultRoute: true, defaultGateways: ['10.0.0.1'] }],
        107,
        /default route gateways: the network delegates its routes to its own plugins/,
      ],
      [
        [{ network: 'oam', cniArgs: { a: 'b' } }],
        107,
        /cni-args: only a delegated network’s plugins take them/,
      ],
      [
        Array.from({ length: 65 }, (_, i) => ({ network: 'oam', ip: 'none', ifname: `x${i}` })),
        107,
        /65 interfaces requested; a pod has at most 64/,
      ],
      // The network's own default route beside its gateway's: the network's fault (7).
      [[{ network: 'twice' }], 7, /eth0 \(network twice\) routes 0\.0\.0\.0\/0 twice/],
    ];
    for (const [requests, code, msg] of cases)
      await expect(add(deps, req('/ig', requests))).rejects.toMatchObject({
        cniCode: code,
        message: expect.stringMatching(msg),
      });
    expect(k.ops.filter((o) => o.t.ns === '/ig')).toEqual([]);
    // The last case allocated before its routes were planned: its address went back.
    expect(auditIpam([...store.dump().values()]).held).toEqual([]);
  });

  it("refuses a routing table that another of the container's attachments holds", async () => {
    await add(deps, req('/t2', [{ network: 'vl' }]));
    const before = k.ops.length;
    await expect(
      add(deps, req('/t2', [{ network: 'vl2' }], { ifname: 'eth1' })),
    ).rejects.toMatchObject({
      cniCode: 107,
      message: expect.stringMatching(
        /eth1 \(network vl2\) would share routing table 102 with eth0 \(network vl\), attached to this container before/,
      ),
    });
    expect(k.ops.slice(before).filter((o) => o.t.ns === '/t2')).toEqual([]);
    // Another container is free to use the table in its own netns.
    await add(deps, req('/t3', [{ network: 'vl2' }]));
  });

  it("holds the default route per family, via the request's gateway if it names one", async () => {
    for (const n of [
      net('dual', {
        type: 'macvlan',
        device: 'eth1',
        ipv4: { cidr: '10.60.0.0/24', gateway: '10.60.0.1' },
        ipv6: { cidr: 'fd00:60::/64', gateway: 'fd00:60::1' },
      }),
      net('six', {
        type: 'macvlan',
        device: 'eth1',
        ipv6: { cidr: 'fd00:61::/64', gateway: 'fd00:61::1' },
      }),
      net('nogw', { type: 'macvlan', device: 'eth1', ipv4: { cidr: '10.62.0.0/24' } }),
    ])
      networks.set(n.metadata.name, n);
    const defaults = (pod: string) =>
      k
        .ns(pod)
        .routes.filter((r) => r.dst === 'default' && (r.table ?? 'main') === 'main')
        .map((r) => `${r.dev} ${r.gw}`)
        .sort();
    // net1 asks for the IPv6 default: eth0 keeps the IPv4 one.
    await add(deps, req('/dr', [{ network: 'dual' }, { network: 'six', defaultRoute: true }]));
    expect(defaults('/dr')).toEqual(['eth0 10.60.0.1', 'net1 fd00:61::1']);
    // NPWG default-route: the gateway the pod names, on a network that has none.
    await add(
      deps,
      req('/dg', [
        { network: 'dual' },
        { network: 'nogw', defaultRoute: true, defaultGateways: ['10.62.0.254'] },
      ]),
    );
    expect(defaults('/dg')).toEqual(['eth0 fd00:60::1', 'net1 10.62.0.254']);
    const refused: Array<[AttachRequest['requests'], RegExp]> = [
      [[{ network: 'nogw', defaultRoute: true }], /no gateway for it/],
      [
        [
          { network: 'dual', defaultRoute: true },
          { network: 'six', defaultRoute: true },
        ],
        /eth0 and net1 both ask for the IPv6 default route/,
      ],
      [
        [{ network: 'nogw', defaultRoute: true, defaultGateways: ['10.99.0.1'] }],
        /default route gateway 10\.99\.0\.1 is not inside 10\.62\.0\.0\/24/,
      ],
      [
        [{ network: 'nogw', defaultGateways: ['10.62.0.254'] }],
        /defaultGateways without defaultRoute would not be used/,
      ],
      [
        [{ network: 'nogw', defaultRoute: true, defaultGateways: ['10.62.0.254', '10.62.0.253'] }],
        /2 IPv4 default route gateways \(10\.62\.0\.254, 10\.62\.0\.253\); a default route has one/,
      ],
      [
        [
          {
            network: 'nogw',
            ip: '10.62.0.9/24',
            defaultRoute: true,
            defaultGateways: ['10.62.0.9'],
          },
        ],
        /default route gateway 10\.62\.0\.9 is the interface's own address/,
      ],
    ];
    for (const [requests, msg] of refused)
      await expect(add(deps, req('/dx', requests))).rejects.toMatchObject({
        cniCode: 107,
        message: expect.stringMatching(msg),
      });
    expect(k.ops.filter((o) => o.t.ns === '/dx')).toEqual([]);
  });

  it('names a bridge after its network, or after a hash where the name is no link name', () => {
    // In a cluster the agent names networks "<namespace>/<name>" (agent/cluster.ts).
    const br = (name: string) =>
      bridgeName({ ...net('x', { type: 'bridge' }), metadata: { name } });
    expect(br('media')).toBe('tbr-media');
    // Cut to 15 characters these would share a bridge; a cluster name holds a "/".
    const long = [
      br('signalling-a'),
      br('signalling-b'),
      br('tenant-a/media'),
      br('tenant-b/media'),
    ];
    expect(new Set(long).size).toBe(4);
    for (const n of long) expect(n).toMatch(/^tbr-[0-9a-f]{11}$/);
  });

  it('refuses a delegated network whose configuration names no usable plugin', () => {
    const bad = (delegate: Record<string, unknown>) => {
      try {
        net('d', { type: 'delegate', delegate });
      } catch (e) {
        return (e as Error).message;
      }
      return 'accepted';
    };
    expect(bad({ cniVersion: '1.0.0' })).toMatch(/delegate: type must name a plugin/);
    expect(bad({ type: '../bin/x' })).toMatch(/"\.\.\/bin\/x" is not a plugin file name/);
    expect(bad({ plugins: [] })).toMatch(/non-empty list/);
    expect(bad({ plugins: [{ type: 'bridge' }, {}] })).toMatch(/plugins\[1\]\.type/);
    expect(bad({ cniVersion: '1.0.0', plugins: [{ type: 'bridge' }, { type: 'tuning' }] })).toBe(
      'accepted',
    );
  });

  /** The error parseNetwork throws for a bridge network with these fields. */
  const refusal = (spec: Record<string, unknown>): unknown => {
    try {
      net('bad', { type: 'bridge', ...spec });
    } catch (e) {
      return e;
    }
    return undefined;
  };

  it('refuses networks whose route gateways or cidr the kernel could not use', () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [
        { ipv4: { cidr: '10.0.0.0/24', routes: [{ dst: '10.20.0.0/16', gw: '192.168.99.1' }] } },
        /routes\[0\]: gateway 192\.168\.99\.1 is not inside 10\.0\.0\.0\/24/,
      ],
      [
        { ipv4: { cidr: '10.0.0.0/24', routes: [{ dst: '10.20.0.0/16', gw: '10.0.0.0' }] } },
        /routes\[0\]: gateway 10\.0\.0\.0 is the network or broadcast address/,
      ],
      [
        { ipv4: { cidr: '224.0.0.0/4' } },
        /cidr 224\.0\.0\.0\/4 overlaps 224\.0\.0\.0\/4 \(multicast\)/,
      ],
      [{ ipv4: { cidr: '127.0.0.0/8' } }, /\(loopback\)/],
      [{ ipv6: { cidr: 'fe80::/64' } }, /\(link-local\)/],
    ];
    for (const [spec, msg] of cases)
      expect(refusal(spec), JSON.stringify(spec)).toMatchObject({
        code: 'ERR_CONFIG',
        message: expect.stringMatching(msg),
      });
    // IPv6 routers are normally link-local: a valid next hop, as the route names the device.
    const ll = net('ll', {
      type: 'bridge',
      ipv6: { cidr: 'fd00:7::/64', routes: [{ dst: 'fd00:70::/48', gw: 'fe80::1' }] },
    });
    const a = [
      {
        family: 6 as const,
        address: 'fd00:7::2',
        prefixLength: 64,
        seq: 1,
        block: 'fd00:7::/122',
        blockNode: 'n1',
      },
    ];
    expect(planAddressing('net1', ll, { network: 'll' }, a, 1, []).ops).toContainEqual({
      op: 'route-add',
      dst: 'fd00:70::/48',
      dev: 'net1',
      gw: 'fe80::1',
    });
  });

  it("refuses the kernel's own routing tables as a network's routingTable", () => {
    for (const t of [0, 253, 254, 255])
      expect(refusal({ ipv4: { cidr: '10.0.0.0/24' }, routingTable: t }), String(t)).toMatchObject({
        code: 'ERR_CONFIG',
        message: expect.stringMatching(
          /routingTable: must not be a reserved table: 0 \(unspec\), 253 \(default\), 254 \(main\) or 255 \(local\)/,
        ),
      });
    for (const t of [1, 252, 256])
      expect(
        refusal({ ipv4: { cidr: '10.0.0.0/24' }, routingTable: t }),
        String(t),
      ).toBeUndefined();
  });

  it('gives the kernel and the result IPv6 text as the kernel reads it back (RFC 5952)', () => {
    const n = net('up', {
      type: 'macvlan',
      device: 'eth1',
      ipv6: {
        cidr: '2001:DB8:0:1::/64',
        gateway: '2001:DB8:0:1::1',
        routes: [{ dst: '2001:DB8:FF::/48' }],
      },
      routingTable: 7,
    });
    const a = [
      {
        family: 6 as const,
        address: '2001:db8:0:1::5',
        prefixLength: 64,
        seq: 1,
        block: '2001:db8:0:1::/122',
        blockNode: 'n1',
        gateway: '2001:db8:0:1::1',
      },
    ];
    const policyRoutes = [{ dst: '2001:DB8:EE:0::/64', gw: '2001:DB8:0:1::00FE' }];
    const plan = planAddressing('net1', n, { network: 'up', policyRoutes }, a, 1, []);
    expect(plan.routes).toEqual([
      { dst: '2001:db8:ff::/48', gw: '2001:db8:0:1::1' },
      { dst: '2001:db8:0:1::/64', table: 7 },
      { dst: '::/0', gw: '2001:db8:0:1::1', table: 7 },
      { dst: '2001:db8:ff::/48', table: 7, gw: '2001:db8:0:1::1' },
      { dst: '2001:db8:ee::/64', table: 7, gw: '2001:db8:0:1::fe' },
    ]);
    for (const o of plan.ops)
      if (o.op === 'route-add') expect(JSON.stringify(o)).toBe(JSON.stringify(o).toLowerCase());
  });

  it("applies the runtime's ips and mac capabilities to the first interface", async () => {
    const r = await add(
      deps,
      req('/rc', [{ network: 'oam' }, { network: 'br' }], {
        runtimeConfig: { ips: ['10.1.0.77/24'], mac: '02:11:22:33:44:55' },
      }),
    );
    expect(r.ips?.[0]?.address).toBe('10.1.0.77/24');
    expect(k.ns('/rc').links.get('eth0')?.address).toBe('02:11:22:33:44:55');
    for (const mac of ['zz', '01:00:5e:00:00:01', '00:00:00:00:00:00'])
      await expect(
        add(deps, req('/rc2', [{ network: 'oam' }], { runtimeConfig: { mac } })),
        mac,
      ).rejects.toMatchObject({
        cniCode: 107,
        message: expect.stringMatching(/not a unicast MAC/),
      });
    expect(k.ops.filter((o) => o.t.ns === '/rc2')).toEqual([]);
  });

  it("CHECK fails when the IPAM no longer holds the pod's address", async () => {
    const added = await add(deps, req('/ck', [{ network: 'oam', ip: '10.1.0.66' }]));
    const d = {
      containerId: 'c-ck',
      ifname: 'eth0',
      netns: '/ck',
      cniPath: [],
      cniArgs: undefined,
      prevResult: added,
    };
    await check(deps, d);
    await deps.ipam.release({
      network: 'oam',
      spec: networks.get('oam')!.spec,
      containerId: 'c-ck',
      ifname: 'eth0',
    });
    await expect(check(deps, d)).rejects.toThrow(/10\.1\.0\.66 is no longer allocated/);
  });
});

describe("CHECK against the runtime's prevResult (the ADD's result)", () => {
  const chk = (pod: string, prevResult?: CniResult) =>
    check(deps, {
      containerId: `c-${pod.slice(1)}`,
      ifname: 'eth0',
      netns: pod,
      cniPath: [],
      cniArgs: undefined,
      prevResult,
    });

  it('is refused without one (code 7), as the reference plugins refuse it', async () => {
    const added = await add(deps, req('/cp', [{ network: 'oam' }]));
    await expect(chk('/cp')).rejects.toMatchObject({
      code: 'ERR_CONFIG',
      cniCode: 7,
      message: expect.stringMatching(/prevResult missing: CHECK needs the ADD's result/),
    });
    await chk('/cp', added);
  });

  it('fails (108) when its addresses for an interface are not the ones Tartan recorded', async () => {
    const added = await add(deps, req('/cq', [{ network: 'oam', ip: '10.1.0.66' }]));
    await chk('/cq', added);
    const moved = {
      ...added,
      ips: added.ips!.map((ip) => ({ ...ip, address: '10.1.0.67/24' })),
    };
    await expect(chk('/cq', moved)).rejects.toMatchObject({
      code: 'ERR_CHECK',
      cniCode: 108,
      message:
        "interface eth0 (network oam): the prevResult's addresses differ: it lacks 10.1.0.66/24, " +
        'which Tartan recorded; it has 10.1.0.67/24, which Tartan did not record',
    });
    // No address for it at all, or one more than Tartan gave it.
    await expect(chk('/cq', { ...added, ips: [] })).rejects.toMatchObject({
      cniCode: 108,
      message: expect.stringMatching(/eth0 .*it lacks 10\.1\.0\.66\/24, which Tartan recorded$/),
    });
    const more = { ...added, ips: [...added.ips!, { address: '10.1.0.99/24', interface: 0 }] };
    await expect(chk('/cq', more)).rejects.toMatchObject({
      cniCode: 108,
      message: expect.stringMatching(
        /eth0 .*it has 10\.1\.0\.99\/24, which Tartan did not record$/,
      ),
    });
  });

  it('fails (108) when it does not list the interface in the pod', async () => {
    const added = await add(deps, req('/cr', [{ network: 'oam' }, { network: 'br' }]));
    await chk('/cr', added);
    const renamed = {
      ...added,
      interfaces: added.interfaces!.map((i) => (i.name === 'net1' ? { ...i, name: 'net9' } : i)),
    };
    await expect(chk('/cr', renamed)).rejects.toMatchObject({
      code: 'ERR_CHECK',
      cniCode: 108,
      message: 'interface net1 (network br): the prevResult lists no interface net1 in sandbox /cr',
    });
    // Of that name, but not in this pod's sandbox.
    const elsewhere = {
      ...added,
      interfaces: added.interfaces!.map((i) =>
        i.name === 'eth0' ? { ...i, sandbox: '/elsewhere' } : i,
      ),
    };
    await expect(chk('/cr', elsewhere)).rejects.toMatchObject({
      cniCode: 108,
      message:
        'interface eth0 (network oam): the prevResult lists no interface eth0 in sandbox /cr',
    });
  });

  it('compares addresses as values: IPv6 text in another form is the same address', async () => {
    const added = await add(deps, req('/cv', [{ network: 'vx' }]));
    const [addr, len] = added.ips![0]!.address.split('/') as [string, string];
    const bytes = parse6(addr)!;
    const long = Array.from({ length: 8 }, (_, i) =>
      ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16).toUpperCase().padStart(4, '0'),
    ).join(':');
    expect(long).not.toBe(addr);
    await chk('/cv', { ...added, ips: [{ ...added.ips![0]!, address: `${long}/${len}` }] });
  });

  it('compares only the interfaces Tartan made, and a pass-through still needs one', async () => {
    // Chained after a plugin that made eth0: its addresses are not Tartan's to hold.
    const first: CniResult = {
      cniVersion: '1.1.0',
      interfaces: [{ name: 'eth0', sandbox: '/cc' }],
      ips: [{ address: '10.9.0.5/24', interface: 0 }],
    };
    const chained = await add(deps, req('/cc', [{ network: 'oam' }], { prevResult: first }));
    expect(state.getAttachment('c-cc', 'eth0')?.interfaces.map((i) => i.ifname)).toEqual(['net1']);
    await chk('/cc', chained);
    await chk('/cc', {
      ...chained,
      ips: chained.ips!.map((ip) => (ip.interface === 0 ? { ...ip, address: '10.9.0.6/24' } : ip)),
    });
    // A pod that asks for nothing: the result passes through, nothing of it is Tartan's.
    const through = await add(deps, req('/ct', [], { prevResult: { ...first } }));
    expect(state.getAttachment('c-ct', 'eth0')?.interfaces).toEqual([]);
    await expect(chk('/ct')).rejects.toMatchObject({ code: 'ERR_CONFIG', cniCode: 7 });
    await chk('/ct', through);
  });
});
