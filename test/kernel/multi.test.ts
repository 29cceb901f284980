// Kernel tier: a pod with several interfaces across two nodes (macvlan, VXLAN, bridge),
// policy routing per attachment, ref-counted host parents, traffic on every network.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nsjson, ping, sh } from '../../src/lab/sh.js';
import { makeFixture, podAddrs, podLinks, type Fixture } from './fixture.js';

let f: Fixture;
const pods: Record<string, string> = {};

const nets = [
  {
    name: 'oam',
    spec: {
      type: 'macvlan',
      device: 'eth1',
      ipv4: { cidr: '10.71.0.0/24', gateway: '10.71.0.1', routes: [{ dst: '172.16.71.0/24' }] },
    },
  },
  {
    name: 'internal',
    spec: {
      type: 'macvlan',
      device: 'eth2',
      vxlan: { vni: 7171, port: 4789, remotes: ['192.168.71.1', '192.168.71.2'] },
      ipv4: { cidr: '10.72.0.0/24', blockPrefix: 28 },
      ipv6: { cidr: 'fd00:72::/64' },
      routingTable: 172,
    },
  },
  {
    name: 'local',
    spec: { type: 'bridge', bridge: 'tt-br-local', ipv4: { cidr: '10.73.0.0/24' }, mtu: 1400 },
  },
];

const confFor = (node: string, fixed: string) =>
  f.conf(node, {
    interfaces: [
      { network: 'oam', ip: fixed },
      {
        network: 'internal',
        ifname: 'int0',
        ip6: 'dynamic',
        policyRoutes: [{ dst: '198.51.100.0/24' }],
      },
      { network: 'local' },
    ],
  });

beforeAll(async () => {
  f = await makeFixture('mi', [
    {
      name: 'n1',
      nics: [
        { name: 'eth1', segment: 'oam' },
        { name: 'eth2', segment: 'under', address: '192.168.71.1/24' },
      ],
    },
    {
      name: 'n2',
      nics: [
        { name: 'eth1', segment: 'oam' },
        { name: 'eth2', segment: 'under', address: '192.168.71.2/24' },
      ],
    },
  ]);
  f.writeNetworks(nets);
  for (const p of ['a', 'b', 'c']) pods[p] = await f.pod(p);
});

afterAll(async () => {
  await f?.destroy();
});

describe('multi-interface pods on two nodes', () => {
  it('attaches every interface in order with its addresses, routes and policy rules', async () => {
    const r = await f.cni('ADD', 'n1', pods.a, { conf: confFor('n1', '10.71.0.21') });
    expect(r.code, r.stdout).toBe(0);
    const res = r.out as {
      interfaces: Array<{ name: string; sandbox?: string }>;
      ips: Array<{ address: string; interface: number }>;
    };
    // eth0 (oam), int0 (internal), net1 (local: host veth + pod end)
    expect(res.interfaces.filter((i) => i.sandbox).map((i) => i.name)).toEqual([
      'eth0',
      'int0',
      'net1',
    ]);
    for (const ip of res.ips) expect(res.interfaces[ip.interface]?.sandbox).toBeDefined();

    const links = await podLinks(pods.a!);
    expect(links.map((l) => l.ifname).sort()).toEqual(['eth0', 'int0', 'lo', 'net1']);
    expect(links.find((l) => l.ifname === 'net1')?.mtu).toBe(1400);
    expect(links.find((l) => l.ifname === 'net1')?.linkinfo?.info_kind).toBe('veth');
    expect(await podAddrs(pods.a!, 'eth0')).toEqual(['10.71.0.21/24']);

    // Default route only via the first interface; network routes on their interface.
    const main = await sh('ip', ['-n', pods.a!, 'route', 'show']);
    expect(main).toMatch(/default via 10\.71\.0\.1 dev eth0/);
    expect(main).toMatch(/172\.16\.71\.0\/24 via 10\.71\.0\.1 dev eth0/);
    expect(main).not.toMatch(/default.*int0/);

    // Policy routing for int0: from <ip> lookup 172, and table 172 knows only int0.
    const intAddr = (await podAddrs(pods.a!, 'int0'))
      .find((x) => x.startsWith('10.72.'))!
      .split('/')[0]!;
    const rules = await nsjson<Array<{ priority: number; src?: string; table: string }>>(
      pods.a,
      'rule',
      'show',
    );
    expect(rules).toContainEqual(expect.objectContaining({ src: intAddr, table: '172' }));
    const t172 = await sh('ip', ['-n', pods.a!, 'route', 'show', 'table', '172']);
    expect(t172).toMatch(/10\.72\.0\.0\/24 dev int0/);
    expect(t172).toMatch(/198\.51\.100\.0\/24 dev int0/);
    const rules6 = await nsjson<Array<{ src?: string; table: string }>>(
      pods.a,
      '-6',
      'rule',
      'show',
    );
    expect(rules6.some((x) => x.table === '172' && x.src?.startsWith('fd00:72::'))).toBe(true);

    // Host parents on the node: the VXLAN device over eth2 and the bridge.
    const node = f.node('n1');
    const vx = (
      await nsjson<
        Array<{
          ifname: string;
          linkinfo?: { info_kind: string; info_data?: { id?: number; port?: number } };
        }>
      >(node, '-d', 'link', 'show', 'tvx7171')
    )[0];
    expect(vx?.linkinfo?.info_kind).toBe('vxlan');
    expect(vx?.linkinfo?.info_data?.id).toBe(7171);
    const fdb = await sh('ip', ['netns', 'exec', node, 'bridge', 'fdb', 'show', 'dev', 'tvx7171']);
    expect(fdb).toContain('dst 192.168.71.2');
    const host = await sh('ip', ['-n', node, '-br', 'link']);
    expect(host).toMatch(/tt-br-local/);
    expect(host).toMatch(/^tt[0-9a-f]{10}@/m);
  });

  it('carries traffic between pods on different nodes over macvlan and VXLAN (v4 and v6)', async () => {
    const r = await f.cni('ADD', 'n2', pods.b, { conf: confFor('n2', '10.71.0.22') });
    expect(r.code, r.stdout).toBe(0);
    const bInt = await podAddrs(pods.b!, 'int0');
    const b4 = bInt.find((x) => x.startsWith('10.72.'))!.split('/')[0]!;
    const b6 = bInt.find((x) => x.startsWith('fd00:72'))!.split('/')[0]!;
    expect(await ping(pods.a!, '10.71.0.22')).toBe(true);
    expect(await ping(pods.a!, b4)).toBe(true);
    expect(await ping(pods.a!, b6)).toBe(true);
    // Different nodes took addresses from different node-affine blocks (/28).
    const aInt = (await podAddrs(pods.a!, 'int0'))
      .find((x) => x.startsWith('10.72.'))!
      .split('/')[0]!;
    const block = (ip: string) => Number(ip.split('.')[3]) >> 4;
    expect(block(aInt)).not.toBe(block(b4));
  });

  it('keeps a shared host parent while in use, removes it after the last user, repairs it if deleted', async () => {
    const node = f.node('n1');
    const links = async () =>
      (await sh('ip', ['-n', node, '-br', 'link'])).split('\n').map((l) => l.split(/[\s@]/)[0]);
    const r = await f.cni('ADD', 'n1', pods.c, { conf: confFor('n1', '10.71.0.23') });
    expect(r.code, r.stdout).toBe(0);
    expect(await ping(pods.c!, '10.71.0.21')).toBe(true);
    // Someone deletes the VXLAN device: CHECK notices, a new ADD re-creates it.
    await sh('ip', ['-n', node, 'link', 'del', 'tvx7171']);
    const chk = await f.cni('CHECK', 'n1', pods.c, {
      conf: { ...confFor('n1', '10.71.0.23'), prevResult: r.out },
    });
    expect(chk.code).toBe(1);
    expect((chk.out as { code: number; msg: string }).msg).toMatch(/tvx7171|int0/);
    expect((await f.cni('DEL', 'n1', pods.c, { conf: confFor('n1', '10.71.0.23') })).code).toBe(0);
    expect(await links()).toContain('tt-br-local'); // pod a still uses it
    const again = await f.cni('ADD', 'n1', pods.c, { conf: confFor('n1', '10.71.0.23') });
    expect(again.code, again.stdout).toBe(0);
    expect(await links()).toContain('tvx7171');
    const c4 = (await podAddrs(pods.c!, 'int0'))
      .find((x) => x.startsWith('10.72.'))!
      .split('/')[0]!;
    const b4 = (await podAddrs(pods.b!, 'int0'))
      .find((x) => x.startsWith('10.72.'))!
      .split('/')[0]!;
    expect(await ping(pods.c!, b4)).toBe(true);
    expect(c4).toBeTruthy();

    for (const p of ['a', 'c'])
      expect(
        (
          await f.cni('DEL', 'n1', pods[p], {
            conf: confFor('n1', '10.71.0.2' + (p === 'a' ? '1' : '3')),
          })
        ).code,
      ).toBe(0);
    const after = await links();
    expect(after).not.toContain('tvx7171');
    expect(after).not.toContain('tt-br-local');
    expect(after.filter((l) => l?.startsWith('tt'))).toEqual([]);
    expect((await f.cni('DEL', 'n2', pods.b, { conf: confFor('n2', '10.71.0.22') })).code).toBe(0);
    expect((await sh('ip', ['-n', f.node('n2'), '-br', 'link'])).includes('tvx7171')).toBe(false);
    for (const p of Object.values(pods))
      expect((await podLinks(p)).map((l) => l.ifname)).toEqual(['lo']);
  });
});
