// Kernel tier: the netlink driver against the iproute2 driver, under both runtimes that run
// it (test/kernel/netlink-harness.ts): Bun with bun:ffi (the CNI executable) and Node with
// koffi (the node agent). The same ops go through both drivers, into twin namespaces, and
// what the kernel then shows (ip -j -d, bridge -j, /proc/sys) must match; real pings prove
// the links carry traffic. The harness runs inside this file's own "host" netns, so "host"
// ops never touch the real host, and it reports its fd count around every call (no leaks).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as esbuild from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addNetns, delNetns, inNs, nsjson, nsip, ping, sh } from '../../src/lab/sh.js';
import type { Op, Target } from '../../src/kernel/types.js';
import type { Action, Driver, Result, Step } from './netlink-harness.js';

const ROOT = join(import.meta.dirname, '../..');
const BUN = join(ROOT, 'node_modules/.bin/bun');
const HARNESS = join(import.meta.dirname, 'netlink-harness.ts');
// Node runs the harness bundled (dependencies stay imports, found in node_modules).
const NODE_HARNESS = join(ROOT, 'node_modules/.cache/tartan-test/netlink-harness.mjs');
const RUNTIMES = ['bun', 'node'] as const;
let runtime: (typeof RUNTIMES)[number] = 'bun';
const P = `tt-nl-${process.pid % 10000}`;
// a, b: pods built by the netlink driver; c, d: their twins built by iproute2.
const NS = ['host', 'peer-a', 'peer-c', 'a', 'b', 'c', 'd', 'h2', 'bench'] as const;
const ns = (n: (typeof NS)[number]) => `${P}-${n}`;
const pod = (n: (typeof NS)[number]): Target => ({ ns: `/run/netns/${ns(n)}` });
const HOST: Target = {};
const MAC = '02:54:00:00:00:11';

async function harness(actions: Action[]): Promise<Result[]> {
  const [bin, script] = runtime === 'bun' ? [BUN, HARNESS] : [process.execPath, NODE_HARNESS];
  const out = await sh('ip', ['netns', 'exec', ns('host'), bin, script, JSON.stringify(actions)]);
  const results = JSON.parse(out) as Result[];
  // Every fd the netlink driver opens is closed by the time its call returns. (Bun closes a
  // child's stdio sockets a little after the child is reaped, so iproute2 calls can show
  // an fd for a moment: only fds that appeared count, and only for netlink calls.)
  for (const [i, r] of results.entries())
    if (actions[i]!.driver === 'netlink') {
      expect(r.newFds, JSON.stringify(r)).toBeUndefined();
      expect(r.fds[1], JSON.stringify(r)).toBeLessThanOrEqual(r.fds[0]);
    }
  return results;
}
async function run(driver: Driver, steps: Step[], bestEffort = false): Promise<Result> {
  return (await harness([{ do: 'run', driver, steps, bestEffort }]))[0]!;
}
async function ok(driver: Driver, steps: Step[]): Promise<void> {
  const r = await run(driver, steps);
  expect(r.message ?? '', `${driver} run`).toBe('');
}

type Json = Record<string, unknown>;
/** `ip -j -d link show dev x` without what differs between twins by construction. */
async function link(n: (typeof NS)[number], dev: string): Promise<Json> {
  const [l] = await nsjson<Json[]>(ns(n), '-d', 'link', 'show', 'dev', dev);
  const { ifindex: _i, link_index: _li, link_netnsid: _ln, link: _l, ifname: _n, ...rest } = l!;
  return rest;
}
const addrs = (n: (typeof NS)[number], dev: string) =>
  nsjson<Json[]>(ns(n), 'addr', 'show', 'dev', dev).then((a) => a[0]?.['addr_info']);
const routes = async (n: (typeof NS)[number]) => [
  ...(await nsjson<Json[]>(ns(n), '-4', '-d', 'route', 'show', 'table', 'all')),
  ...(await nsjson<Json[]>(ns(n), '-6', '-d', 'route', 'show', 'table', 'all')),
];
const rules = async (n: (typeof NS)[number]) => [
  ...(await nsjson<Json[]>(ns(n), '-4', 'rule', 'show')),
  ...(await nsjson<Json[]>(ns(n), '-6', 'rule', 'show')),
];
const sysctl = async (n: (typeof NS)[number], key: string) =>
  (await inNs(ns(n), 'cat', `/proc/sys/${key}`)).trim();

const POD_SYSCTLS: Op[] = [
  { op: 'sysctl', key: 'net/ipv4/conf/default/arp_notify', value: '1' },
  { op: 'sysctl', key: 'net/ipv6/conf/default/accept_dad', value: '0' },
  { op: 'sysctl', key: 'net/ipv6/conf/default/ndisc_notify', value: '1' },
];

/** A macvlan attachment as the pipeline plans one: pod defaults first (links made later
 * inherit them, so no DAD on the link-local address), the host link into the pod, the pod side. */
function macvlanAttach(parent: string, p: Target, name: string, ip4: string, ip6: string): Step[] {
  return [
    { t: p, ops: POD_SYSCTLS },
    {
      t: HOST,
      ops: [
        { op: 'macvlan-add', name, parent, mode: 'bridge', intoNs: p.ns!, mac: MAC, mtu: 1400 },
      ],
    },
    {
      t: p,
      label: `interface ${name} (network oam)`,
      ops: [
        { op: 'addr-add', dev: name, cidr: `${ip4}/24`, nodad: true },
        { op: 'addr-add', dev: name, cidr: `${ip6}/64`, nodad: true },
        { op: 'link-set', name, up: true },
        { op: 'route-add', dst: '0.0.0.0/0', gw: '10.10.0.1', dev: name },
        { op: 'route-add', dst: '::/0', gw: 'fd10::1', dev: name },
        { op: 'route-add', dst: '10.10.0.0/24', dev: name, table: 1000 },
        { op: 'route-add', dst: '0.0.0.0/0', gw: '10.10.0.1', dev: name, table: 1000 },
        { op: 'route-add', dst: 'fd10::/64', dev: name, table: 1000 },
        {
          op: 'route-add',
          dst: '172.16.0.0/16',
          gw: '10.10.0.1',
          dev: name,
          src: ip4,
          metric: 50,
          onlink: true,
          table: 100,
        },
        { op: 'rule-add', from: `${ip4}/32`, table: 1000, priority: 1000 },
        { op: 'rule-add', from: `${ip6}/128`, table: 1000, priority: 1000 },
        { op: 'rule-add', from: `${ip4}/32`, table: 100, priority: 1001 },
      ],
    },
  ];
}

async function cleanup(): Promise<void> {
  for (const n of NS) await delNetns(ns(n));
}

beforeAll(async () => {
  mkdirSync(join(NODE_HARNESS, '..'), { recursive: true });
  await esbuild.build({
    entryPoints: [HARNESS],
    outfile: NODE_HARNESS,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'warning',
  });
});

/** Fresh namespaces for each runtime's round of tests. */
async function setup(): Promise<void> {
  await cleanup();
  for (const n of NS) await addNetns(ns(n));
  // Host eth0 <-> peer-a, host eth1 <-> peer-c: twin segments with the same addresses, so the
  // netlink pod (on eth0) and the iproute2 pod (on eth1) can be configured identically.
  for (const [dev, peer] of [
    ['eth0', 'peer-a'],
    ['eth1', 'peer-c'],
  ] as const) {
    await nsip(ns('host'), 'link', 'add', dev, 'type', 'veth', 'peer', 'eth0', 'netns', ns(peer));
    await nsip(ns('host'), 'link', 'set', dev, 'up');
    await nsip(ns(peer), 'addr', 'add', '10.10.0.1/24', 'dev', 'eth0');
    await nsip(ns(peer), 'addr', 'add', 'fd10::1/64', 'dev', 'eth0', 'nodad');
    await nsip(ns(peer), 'link', 'set', 'eth0', 'up');
  }
  // An underlay to a second node for VXLAN.
  await nsip(ns('host'), 'link', 'add', 'ul0', 'type', 'veth', 'peer', 'ul0', 'netns', ns('h2'));
  await nsip(ns('host'), 'addr', 'add', '192.168.77.1/24', 'dev', 'ul0');
  await nsip(ns('h2'), 'addr', 'add', '192.168.77.2/24', 'dev', 'ul0');
  await nsip(ns('host'), 'link', 'set', 'ul0', 'up');
  await nsip(ns('h2'), 'link', 'set', 'ul0', 'up');
}

describe.each(RUNTIMES)('under %s', (rt) => {
  beforeAll(async () => {
    runtime = rt;
    await setup();
  });

  afterAll(async () => {
    await cleanup();
    const left = await sh('ip', ['netns', 'list']);
    expect(left).not.toContain(P);
  });

  describe('netlink driver against iproute2', () => {
    it('builds the same macvlan attachment, which carries traffic', async () => {
      await ok('netlink', macvlanAttach('eth0', pod('a'), 'net1', '10.10.0.11', 'fd10::11'));
      await ok('iproute', macvlanAttach('eth1', pod('c'), 'net1', '10.10.0.11', 'fd10::11'));
      expect(await link('a', 'net1')).toEqual(await link('c', 'net1'));
      expect(await link('a', 'net1')).toMatchObject({
        mtu: 1400,
        address: MAC,
        linkinfo: { info_kind: 'macvlan', info_data: { mode: 'bridge' } },
      });
      expect(await addrs('a', 'net1')).toEqual(await addrs('c', 'net1'));
      expect(await routes('a')).toEqual(await routes('c'));
      expect(await rules('a')).toEqual(await rules('c'));
      expect(await rules('a')).toContainEqual({ priority: 1000, src: '10.10.0.11', table: '1000' });
      for (const s of POD_SYSCTLS) {
        if (s.op !== 'sysctl') continue;
        expect(await sysctl('a', s.key)).toBe(s.value);
        expect(await sysctl('c', s.key)).toBe(s.value);
      }
      // The pod's sysctls stayed in the pod.
      expect(await sysctl('host', 'net/ipv6/conf/default/accept_dad')).not.toBe('0');
      expect(await ping(ns('a'), '10.10.0.1')).toBe(true);
      expect(await ping(ns('a'), 'fd10::1')).toBe(true);
    });

    it('reads addresses back like the iproute2 driver', async () => {
      const r = await harness(
        (['a', 'c', 'host'] as const).flatMap((n): Action[] => {
          const t = n === 'host' ? HOST : pod(n);
          return [
            { do: 'addresses', driver: 'netlink', t },
            { do: 'addresses', driver: 'iproute', t },
          ];
        }),
      );
      expect(r.every((x) => x.ok)).toBe(true);
      expect(r[0]!.value).toEqual(r[1]!.value);
      expect(r[0]!.value).toEqual(r[2]!.value);
      expect(r[4]!.value).toEqual(r[5]!.value);
      expect(r[0]!.value).toContainEqual({
        dev: 'net1',
        family: 6,
        cidr: 'fd10::11/64',
        flags: ['nodad'],
      });
    });

    it('builds a bridge with veth pods that reach each other and the bridge', async () => {
      const bridge = (name: string, addr?: string): Step => ({
        t: HOST,
        ops: [
          { op: 'bridge-add', name, mtu: 1450 },
          ...(addr ? [{ op: 'addr-add' as const, dev: name, cidr: addr }] : []),
          { op: 'link-set', name, up: true },
        ],
      });
      // Both pods sit on br0, so they need MACs of their own.
      const veth = (host: string, p: Target, ip4: string, mac: string): Step[] => [
        {
          t: HOST,
          ops: [
            { op: 'veth-add', name: host, peer: 'eth1', peerNs: p.ns!, peerMac: mac, mtu: 1450 },
            { op: 'link-set', name: host, master: 'br0', up: true },
          ],
        },
        {
          t: p,
          ops: [
            { op: 'addr-add', dev: 'eth1', cidr: ip4 },
            { op: 'link-set', name: 'eth1', up: true },
          ],
        },
      ];
      await ok('netlink', [
        bridge('br0', '10.20.0.1/24'),
        ...veth('vh-b', pod('b'), '10.20.0.2/24', '02:54:00:00:00:0b'),
      ]);
      await ok('iproute', [
        bridge('br1'),
        ...veth('vh-d', pod('d'), '10.20.0.3/24', '02:54:00:00:00:0d'),
      ]);
      // Bridge ids, timers and the ports differ between the two bridges by construction.
      const br = async (dev: string) => {
        const l = await link('host', dev);
        const d = (l['linkinfo'] as { info_data: Json }).info_data;
        const keep = ['stp_state', 'forward_delay', 'vlan_filtering', 'ageing_time', 'priority'];
        return { mtu: l['mtu'], info: Object.fromEntries(keep.map((k) => [k, d[k]])) };
      };
      expect(await br('br0')).toEqual(await br('br1'));
      expect((await br('br0')).mtu).toBe(1450);
      const pick = (l: Json) => ({ mtu: l['mtu'], flags: l['flags'], master: l['master'] });
      expect(pick(await link('host', 'vh-b'))).toEqual(pick(await link('host', 'vh-d')));
      const { address: macB, ...b } = await link('b', 'eth1');
      const { address: macD, ...d } = await link('d', 'eth1');
      expect([b, macB, macD]).toEqual([d, '02:54:00:00:00:0b', '02:54:00:00:00:0d']);
      expect(await ping(ns('b'), '10.20.0.3')).toBe(true);
      expect(await ping(ns('b'), '10.20.0.1')).toBe(true);
    });

    it('builds VXLAN links and flood entries like iproute2, and carries traffic', async () => {
      const vx = (t: Target, name: string, vni: number, local: string, peer: string): Step => ({
        t,
        ops: [
          { op: 'vxlan-add', name, vni, port: 4789, local, dev: 'ul0', mtu: 1400 },
          { op: 'fdb-append', dev: name, dst: peer },
          { op: 'addr-add', dev: name, cidr: `10.30.${vni % 256}.${t.ns ? 2 : 1}/24` },
          { op: 'link-set', name, up: true },
        ],
      });
      await ok('netlink', [
        vx(HOST, 'vx-nl', 4201, '192.168.77.1', '192.168.77.2'),
        vx(pod('h2'), 'vx-nl', 4201, '192.168.77.2', '192.168.77.1'),
        {
          t: HOST,
          ops: [
            {
              op: 'vxlan-add',
              name: 'vg-nl',
              vni: 10,
              port: 4789,
              local: '192.168.77.1',
              dev: 'ul0',
              group: '239.1.1.1',
            },
          ],
        },
      ]);
      await ok('iproute', [
        vx(HOST, 'vx-ip', 4202, '192.168.77.1', '192.168.77.2'),
        {
          t: HOST,
          ops: [
            {
              op: 'vxlan-add',
              name: 'vg-ip',
              vni: 10,
              port: 4790,
              local: '192.168.77.1',
              dev: 'ul0',
              group: '239.1.1.1',
            },
          ],
        },
      ]);
      const data = async (dev: string) => {
        const l = await link('host', dev);
        const { id: _id, port: _port, ...d } = (l['linkinfo'] as { info_data: Json }).info_data;
        return { mtu: l['mtu'], flags: l['flags'], d };
      };
      expect(await data('vx-nl')).toEqual(await data('vx-ip'));
      expect(await data('vg-nl')).toEqual(await data('vg-ip'));
      expect((await link('host', 'vx-nl'))['linkinfo']).toMatchObject({
        info_data: { id: 4201, local: '192.168.77.1', port: 4789, learning: false, link: 'ul0' },
      });
      const fdb = async (dev: string) =>
        (JSON.parse(await inNs(ns('host'), 'bridge', '-j', 'fdb', 'show', 'dev', dev)) as Json[])
          .filter((e) => e['mac'] === '00:00:00:00:00:00')
          .map(({ ifname: _i, ...e }) => e);
      expect(await fdb('vx-nl')).toEqual(await fdb('vx-ip'));
      expect(await fdb('vx-nl')).toContainEqual(expect.objectContaining({ dst: '192.168.77.2' }));
      expect(await ping(ns('host'), '10.30.105.2')).toBe(true);
    });

    it('sets links like ip link set: rename, address, mtu, master, netns, up/down, delete', async () => {
      const set = (a: string, b: string, p: Target): Step[] => [
        {
          t: HOST,
          ops: [
            { op: 'veth-add', name: a, peer: `${a}p` },
            { op: 'link-set', name: a, up: true },
            { op: 'link-set', name: a, down: true, newName: b, mac: MAC, mtu: 1300, master: 'br0' },
            { op: 'link-set', name: `${a}p`, intoNs: p.ns!, up: true },
            { op: 'link-set', name: b, up: true },
          ],
        },
      ];
      await ok('netlink', set('s1', 's1r', pod('b')));
      await ok('iproute', set('s2', 's2r', pod('d')));
      // Port numbers and STP timers of the bridge port differ by construction.
      const view = async (dev: string) => {
        const { linkinfo, ...l } = await link('host', dev);
        return { ...l, slave: (linkinfo as Json)['info_slave_kind'] };
      };
      expect(await view('s1r')).toEqual(await view('s2r'));
      expect(await view('s1r')).toMatchObject({ mtu: 1300, address: MAC, master: 'br0' });
      expect(await link('b', 's1p')).toMatchObject({ flags: expect.arrayContaining(['UP']) });
      await ok('netlink', [{ t: HOST, ops: [{ op: 'link-del', name: 's1r' }] }]);
      await expect(nsip(ns('b'), 'link', 'show', 's1p')).rejects.toThrow(/does not exist/);
    });

    it('writes sysctls in the host (in place) and in a pod, also of links the step makes', async () => {
      const key = 'net/ipv4/conf/eth0/arp_ignore';
      await ok('netlink', [
        { t: HOST, ops: [{ op: 'sysctl', key, value: '1' }] },
        {
          t: pod('b'),
          ops: [
            { op: 'sysctl', key: 'net/ipv4/conf/default/arp_announce', value: '2' },
            { op: 'veth-add', name: 'sy0', peer: 'sy0p' },
            { op: 'sysctl', key: 'net/ipv4/conf/sy0/arp_ignore', value: '2' },
          ],
        },
      ]);
      expect(await sysctl('host', key)).toBe('1');
      expect(await sysctl('b', 'net/ipv4/conf/default/arp_announce')).toBe('2');
      expect(await sysctl('b', 'net/ipv4/conf/sy0/arp_ignore')).toBe('2');
      // Made after the default changed, sy0 inherited it.
      expect(await sysctl('b', 'net/ipv4/conf/sy0/arp_announce')).toBe('2');
      expect(await sysctl('host', 'net/ipv4/conf/default/arp_announce')).toBe('0');
    });

    it('takes down what it built like iproute2: rules, addresses, links', async () => {
      const down = (p: Target): Step[] => [
        {
          t: p,
          ops: [
            { op: 'rule-del', from: '10.10.0.11/32', table: 1000, priority: 1000 },
            { op: 'rule-del', from: 'fd10::11/128', table: 1000, priority: 1000 },
            { op: 'rule-del', from: '10.10.0.11/32', table: 100, priority: 1001 },
            { op: 'addr-del', dev: 'net1', cidr: 'fd10::11/64' },
            { op: 'addr-del', dev: 'net1', cidr: '10.10.0.11/24' },
          ],
        },
      ];
      await ok('netlink', down(pod('a')));
      await ok('iproute', down(pod('c')));
      expect(await rules('a')).toEqual(await rules('c'));
      expect((await rules('a')).map((r) => r['priority'])).toEqual([0, 32766, 32767, 0, 32766]);
      expect(await addrs('a', 'net1')).toEqual(await addrs('c', 'net1'));
      expect(await routes('a')).toEqual(await routes('c'));
      await ok('netlink', [{ t: pod('a'), ops: [{ op: 'link-del', name: 'net1' }] }]);
      await ok('iproute', [{ t: pod('c'), ops: [{ op: 'link-del', name: 'net1' }] }]);
      expect(await nsjson<Json[]>(ns('a'), 'link', 'show')).toHaveLength(1);
      expect(await nsjson<Json[]>(ns('c'), 'link', 'show')).toHaveLength(1);
    });
  });

  describe('netlink driver failures', () => {
    const label = 'interface net2 (network oam)';
    // The pod side of an attachment whose first address is taken already.
    const clash = (p: Target): Step[] => [
      { t: HOST, ops: [{ op: 'sysctl', key: 'net/ipv4/conf/default/arp_notify', value: '1' }] },
      {
        t: p,
        label,
        ops: [
          { op: 'addr-add', dev: 'eth1', cidr: '10.20.0.2/24' },
          { op: 'addr-add', dev: 'eth1', cidr: '10.20.0.99/24' },
        ],
      },
    ];
    const has99 = async (n: 'b' | 'd') =>
      JSON.stringify(await addrs(n, 'eth1')).includes('10.20.0.99');

    it('stops at the first failure and names label, op, namespace and reason', async () => {
      const want = (p: Target) =>
        new RegExp(
          `^interface net2 \\(network oam\\): ip addr add 10\\.20\\.0\\.2/24 dev eth1.* in netns ${p.ns} failed: .*File exists`,
        );
      const nl = await run('netlink', clash(pod('b')));
      expect(nl).toMatchObject({ ok: false, code: 'ERR_KERNEL' });
      expect(nl.message).toMatch(want(pod('b')));
      expect(nl.message).toMatch(/File exists \(EEXIST\)/);
      // The same steps through iproute2 fail the same way (its address sits on pod d's eth1).
      const ipr = await run('iproute', [
        clash(pod('d'))[0]!,
        { ...clash(pod('d'))[1]!, ops: [{ op: 'addr-add', dev: 'eth1', cidr: '10.20.0.3/24' }] },
      ]);
      expect(ipr).toMatchObject({ ok: false, code: 'ERR_KERNEL' });
      expect(ipr.message).toMatch(
        new RegExp(
          `^${label.replace(/[()]/g, '\\$&')}: .* in netns ${pod('d').ns} failed: .*(File exists|Address already assigned)`,
        ),
      );
      expect(await has99('b')).toBe(false);
    });

    it('says which op a failed run stopped at, as the iproute2 driver does', async () => {
      // Step 1 is empty and still counts; the failing op is the second of its step (an
      // address added twice), or the second sysctl of a group (a link that is not there).
      const addr = (p: Target, i: number): Step[] => [
        { t: p, ops: [{ op: 'link-set', name: 'eth1', up: true }] },
        { t: p, ops: [] },
        {
          t: p,
          ops: [
            { op: 'addr-add', dev: 'eth1', cidr: `10.20.7.${i}/24` },
            { op: 'addr-add', dev: 'eth1', cidr: `10.20.7.${i}/24` },
          ],
        },
      ];
      const sysctl = (p: Target): Step[] => [
        { t: HOST, ops: [{ op: 'link-set', name: 'lo', up: true }] },
        {
          t: p,
          ops: [
            { op: 'sysctl', key: 'net/ipv4/conf/eth1/arp_ignore', value: '0' },
            { op: 'sysctl', key: 'net/ipv4/conf/tt-none/arp_ignore', value: '0' },
            { op: 'link-set', name: 'eth1', up: true },
          ],
        },
      ];
      const cases: Array<[string, (p: Target, i: number) => Step[], { step: number; op: number }]> =
        [
          ['address', addr, { step: 2, op: 1 }],
          // One iproute2 batch alone: no script around it.
          ['single batch', (p, i) => addr(p, i).slice(2), { step: 0, op: 1 }],
          ['sysctl', sysctl, { step: 1, op: 1 }],
        ];
      for (const [n, [what, steps, at]] of cases.entries()) {
        const [nl, ipr] = await harness([
          { do: 'run', driver: 'netlink', steps: steps(pod('b'), 10 + n) },
          { do: 'run', driver: 'iproute', steps: steps(pod('d'), 20 + n) },
        ]);
        expect(nl, `${what} netlink`).toMatchObject({ ok: false, at });
        expect(ipr, `${what} iproute2`).toMatchObject({ ok: false, at });
      }
      for (const [driver, p, i] of [
        ['netlink', 'b', 10],
        ['iproute', 'd', 20],
      ] as const)
        await ok(driver, [
          {
            t: pod(p),
            // Secondary first: deleting the primary address takes its secondaries along.
            ops: [1, 0].map((n) => ({
              op: 'addr-del' as const,
              dev: 'eth1',
              cidr: `10.20.7.${i + n}/24`,
            })),
          },
        ]);
    });

    it('attempts every op with bestEffort and ignores failures', async () => {
      expect(await run('netlink', clash(pod('b')), true)).toMatchObject({ ok: true });
      expect(await has99('b')).toBe(true);
      await ok('netlink', [
        { t: pod('b'), ops: [{ op: 'addr-del', dev: 'eth1', cidr: '10.20.0.99/24' }] },
      ]);
      expect(await has99('b')).toBe(false);
    });

    it('names a netns path that cannot be opened or is no network namespace', async () => {
      const up: Op[] = [{ op: 'link-set', name: 'eth1', up: true }];
      const missing = `/run/netns/${P}-missing`;
      const r = await harness([
        { do: 'run', driver: 'netlink', steps: [{ t: { ns: missing }, ops: up, label: 'L' }] },
        { do: 'run', driver: 'netlink', steps: [{ t: { ns: '/etc/hostname' }, ops: up }] },
        { do: 'run', driver: 'netlink', steps: [{ t: { ns: '/proc/self/ns/uts' }, ops: up }] },
        {
          do: 'run',
          driver: 'netlink',
          steps: [{ t: { ns: missing }, ops: up }],
          bestEffort: true,
        },
        {
          do: 'run',
          driver: 'netlink',
          steps: [
            {
              t: HOST,
              ops: [
                { op: 'macvlan-add', name: 'm0', parent: 'eth0', mode: 'bridge', intoNs: missing },
              ],
            },
          ],
        },
      ]);
      expect(r.map((x) => x.code ?? 'ok')).toEqual([
        'ERR_KERNEL',
        'ERR_KERNEL',
        'ERR_KERNEL',
        'ok',
        'ERR_KERNEL',
      ]);
      expect(r[0]!.message).toBe(
        `L: ip link set dev eth1 up in netns ${missing} failed: cannot open netns ${missing}: No such file or directory (ENOENT)`,
      );
      expect(r[1]!.message).toMatch(
        /in netns \/etc\/hostname failed: netns \/etc\/hostname is not a network namespace/,
      );
      expect(r[2]!.message).toMatch(/netns \/proc\/self\/ns\/uts is not a network namespace/);
      expect(r[4]!.message).toMatch(new RegExp(`in host failed: cannot open netns ${missing}`));
    });

    it('reports missing devices, bad keys and the kernel extended ack', async () => {
      const r = await harness([
        {
          do: 'run',
          driver: 'netlink',
          steps: [{ t: HOST, ops: [{ op: 'link-del', name: 'nosuch' }] }],
        },
        {
          do: 'run',
          driver: 'netlink',
          steps: [
            { t: HOST, ops: [{ op: 'bridge-add', name: 'br9' }] },
            { t: HOST, ops: [{ op: 'sysctl', key: '../../etc/passwd', value: '1' }] },
          ],
        },
        {
          do: 'run',
          driver: 'netlink',
          steps: [
            {
              t: pod('b'),
              ops: [{ op: 'route-add', dst: '10.9.0.0/16', gw: '10.99.99.1', dev: 'eth1' }],
            },
          ],
        },
        {
          do: 'run',
          driver: 'netlink',
          steps: [
            {
              t: pod('b'),
              ops: [{ op: 'sysctl', key: 'net/ipv4/conf/nosuch/arp_notify', value: '1' }],
            },
          ],
        },
      ]);
      expect(r[0]!.message).toBe(
        'ip link del dev nosuch in host failed: Cannot find device "nosuch"',
      );
      // Refused before anything ran, as the iproute2 driver's script builder does.
      expect(r[1]!.message).toBe('bad sysctl key ../../etc/passwd');
      await expect(nsip(ns('host'), 'link', 'show', 'br9')).rejects.toThrow(/does not exist/);
      expect(r[2]!.message).toMatch(
        /via 10\.99\.99\.1 .* failed: Network is unreachable \(ENETUNREACH\): Nexthop has invalid gateway/,
      );
      expect(r[3]!.message).toMatch(
        /sysctl net\/ipv4\/conf\/nosuch\/arp_notify=1 in netns .* failed: .*No such file or directory/,
      );
    });
  });

  describe('netlink driver and the event loop', () => {
    // The agent (Node) serves other calls while the kernel deletes or moves a link (an RCU
    // grace period, 10-50 ms); the one-shot CNI executable (Bun) has nothing else to do.
    it(`${rt === 'node' ? 'leaves' : 'holds'} the event loop while a link is moved or deleted`, async () => {
      const r = await harness([
        {
          do: 'run',
          driver: 'netlink',
          steps: [{ t: HOST, ops: [{ op: 'veth-add', name: 'lv1', peer: 'lv1p' }] }],
        },
        {
          do: 'run',
          driver: 'netlink',
          ticks: true,
          steps: [{ t: HOST, ops: [{ op: 'link-set', name: 'lv1p', intoNs: pod('b').ns! }] }],
        },
        {
          do: 'run',
          driver: 'netlink',
          ticks: true,
          steps: [{ t: HOST, ops: [{ op: 'link-set', name: 'lv1', up: true }] }],
        },
        {
          do: 'run',
          driver: 'netlink',
          ticks: true,
          steps: [{ t: HOST, ops: [{ op: 'link-del', name: 'lv1' }] }],
        },
      ]);
      expect(r.map((x) => x.message ?? 'ok')).toEqual(['ok', 'ok', 'ok', 'ok']);
      const [, move, up, del] = r.map((x) => x.value as number);
      expect(move! > 0).toBe(rt === 'node');
      expect(del! > 0).toBe(rt === 'node');
      // A quick op stays on the JS thread under either runtime.
      expect(up).toBe(0);
      await expect(nsip(ns('host'), 'link', 'show', 'lv1')).rejects.toThrow(/does not exist/);
      await expect(nsip(ns('b'), 'link', 'show', 'lv1p')).rejects.toThrow(/does not exist/);
    });
  });

  describe('netlink driver, repeatedly', () => {
    // The figures are printed for a look; speed is measured by the benchmarks, not asserted.
    it('attaches and detaches a macvlan pod 20 times, as iproute2 does', async () => {
      const bench = pod('bench');
      const attach: Step[] = [
        {
          t: HOST,
          ops: [
            {
              op: 'macvlan-add',
              name: 'eth9',
              parent: 'eth0',
              mode: 'bridge',
              intoNs: bench.ns!,
              mac: '02:54:00:00:00:77',
            },
          ],
        },
        {
          t: bench,
          ops: [
            ...POD_SYSCTLS,
            { op: 'addr-add', dev: 'eth9', cidr: '10.10.0.77/24', nodad: true },
            { op: 'addr-add', dev: 'eth9', cidr: 'fd10::77/64', nodad: true },
            { op: 'link-set', name: 'eth9', up: true },
            { op: 'route-add', dst: '0.0.0.0/0', gw: '10.10.0.1', dev: 'eth9' },
            { op: 'route-add', dst: '10.10.0.0/24', dev: 'eth9', table: 1000 },
            { op: 'rule-add', from: '10.10.0.77/32', table: 1000, priority: 1000 },
          ],
        },
      ];
      const detach: Step[] = [
        {
          t: bench,
          ops: [
            { op: 'rule-del', from: '10.10.0.77/32', table: 1000, priority: 1000 },
            { op: 'link-del', name: 'eth9' },
          ],
        },
      ];
      const n = 20;
      const r = await harness([
        { do: 'bench', driver: 'netlink', n, attach, detach },
        { do: 'bench', driver: 'iproute', n, attach, detach },
      ]);
      const median = (x: Result) => {
        const t = [...(x.value as number[])].sort((p, q) => p - q);
        return (t[n / 2 - 1]! + t[n / 2]!) / 2;
      };
      expect(r.map((x) => x.message ?? 'ok')).toEqual(['ok', 'ok']);
      const [nl, ipr] = [median(r[0]!), median(r[1]!)];
      console.log(
        `macvlan attachment, median of ${n}: netlink (${runtime}) ${nl.toFixed(3)} ms, iproute2 ${ipr.toFixed(3)} ms`,
      );
      expect(await nsjson<Json[]>(ns('bench'), 'link', 'show')).toHaveLength(1); // lo only
    });
  });
});
