// Kernel tier: the MTU of a bridge network's pods. Over a VXLAN uplink (50 bytes less than
// the NIC) a pod left at 1500 sends frames the bridge drops without a word: a path MTU black
// hole that pings of the default size never show. Pods get the uplink's MTU; a network MTU
// the uplink cannot carry is refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nsjson, run, sh } from '../../src/lab/sh.js';
import { makeFixture, podAddrs, podLinks, type Fixture } from './fixture.js';

let f: Fixture;

const nets = [
  {
    name: 'vxbr',
    spec: {
      type: 'bridge',
      device: 'eth2',
      vxlan: { vni: 7373, port: 4789, remotes: ['192.168.73.1', '192.168.73.2'] },
      ipv4: { cidr: '10.74.0.0/24' },
    },
  },
  {
    name: 'jumbo',
    spec: { type: 'bridge', device: 'eth1', mtu: 9000, ipv4: { cidr: '10.75.0.0/24' } },
  },
];

beforeAll(async () => {
  f = await makeFixture('bm', [
    {
      name: 'n1',
      nics: [
        { name: 'eth1', segment: 'lan' },
        { name: 'eth2', segment: 'under', address: '192.168.73.1/24' },
      ],
    },
    { name: 'n2', nics: [{ name: 'eth2', segment: 'under', address: '192.168.73.2/24' }] },
  ]);
  f.writeNetworks(nets);
});

afterAll(async () => {
  await f?.destroy();
});

const conf = (node: string, network: string) => f.conf(node, { interfaces: [{ network }] });
const mtuOf = async (ns: string, dev: string) =>
  (await nsjson<Array<{ mtu: number }>>(ns, 'link', 'show', 'dev', dev))[0]!.mtu;
/** A ping of 1500-byte packets, which the sender fragments to its own link's MTU only. */
const bigPing = async (ns: string, dst: string) =>
  (
    await run(
      'ip',
      ['netns', 'exec', ns, 'ping', '-c', '2', '-i', '0.2', '-W', '2', '-s', '1472', dst],
      undefined,
      process.env,
    )
  ).code === 0;

describe('bridge network MTU', () => {
  it('over VXLAN, pods get the uplink MTU and 1500-byte packets cross between nodes', async () => {
    const a = await f.pod('a');
    const b = await f.pod('b');
    const ra = await f.cni('ADD', 'n1', a, { conf: conf('n1', 'vxbr') });
    expect(ra.code, ra.stdout).toBe(0);
    expect((await f.cni('ADD', 'n2', b, { conf: conf('n2', 'vxbr') })).code).toBe(0);
    const n1 = f.node('n1');
    expect(await mtuOf(n1, 'tvx7373')).toBe(1450);
    expect(await mtuOf(a, 'eth0')).toBe(1450);
    expect(await mtuOf(b, 'eth0')).toBe(1450);
    const hostVeth = (
      ra.out as { interfaces: Array<{ name: string; sandbox?: string; mtu?: number }> }
    ).interfaces;
    expect(hostVeth.find((i) => i.name === 'eth0')).toMatchObject({
      sandbox: `/run/netns/${a}`,
      mtu: 1450,
    });
    expect(await mtuOf(n1, hostVeth.find((i) => !i.sandbox)!.name)).toBe(1450);

    const ipB = (await podAddrs(b, 'eth0'))[0]!.split('/')[0]!;
    expect(await bigPing(a, ipB)).toBe(true);

    // CHECK holds the pod to the MTU it was given.
    const checked = { ...conf('n1', 'vxbr'), prevResult: ra.out };
    expect((await f.cni('CHECK', 'n1', a, { conf: checked })).code).toBe(0);
    await sh('ip', ['-n', a, 'link', 'set', 'dev', 'eth0', 'mtu', '1500']);
    const c = await f.cni('CHECK', 'n1', a, { conf: checked });
    expect((c.out as { code: number; msg: string }).code).toBe(108);
    expect((c.out as { msg: string }).msg).toMatch(/MTU is 1500, expected 1450/);
    // The black hole this closes: at 1500 the same packets vanish at the bridge.
    expect(await bigPing(a, ipB)).toBe(false);

    expect((await f.cni('DEL', 'n1', a, { conf: conf('n1', 'vxbr') })).code).toBe(0);
    expect((await f.cni('DEL', 'n2', b, { conf: conf('n2', 'vxbr') })).code).toBe(0);
  });

  it('refuses a network MTU above its uplink’s with code 7, and undoes the bridge', async () => {
    const p = await f.pod('j');
    const r = await f.cni('ADD', 'n1', p, { conf: conf('n1', 'jumbo') });
    expect(r.code).toBe(1);
    const e = r.out as { code: number; msg: string };
    expect(e.code).toBe(7);
    expect(e.msg).toMatch(
      /interface eth0 \(network jumbo\): the network's MTU 9000 is above the MTU 1500 of its bridge's uplink eth1/,
    );
    expect((await podLinks(p)).map((l) => l.ifname)).toEqual(['lo']);
    const hostLinks = (await nsjson<Array<{ ifname: string }>>(f.node('n1'), 'link', 'show')).map(
      (l) => l.ifname,
    );
    expect(hostLinks.sort()).toEqual(['eth1', 'eth2', 'lo']);
  });
});
