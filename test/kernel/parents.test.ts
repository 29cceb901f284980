// Kernel tier: host parents shared by networks. A bridge's lower link (a VXLAN device) is in
// the bridge however it came to be: made with the bridge, re-made under a bridge that
// stayed, or made under an operator's bridge that the network names. Two networks that
// would share a VXLAN device with different settings are refused, not merged.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nsjson, sh } from '../../src/lab/sh.js';
import { makeFixture, type Fixture } from './fixture.js';

let f: Fixture;
let node = '';

const masterOf = async (link: string) =>
  (await nsjson<{ master?: string }[]>(node, 'link', 'show', 'dev', link))[0]?.master;

beforeAll(async () => {
  f = await makeFixture('pa', [
    {
      name: 'n1',
      nics: [
        { name: 'eth2', segment: 'under', address: '192.168.74.1/24' },
        { name: 'eth3', segment: 'uplink' },
      ],
    },
  ]);
  node = f.node('n1');
  f.writeNetworks([
    {
      name: 'l2',
      spec: {
        type: 'bridge',
        device: 'eth2',
        vxlan: { vni: 7474, port: 4789, remotes: ['192.168.74.2'] },
        ipv4: { cidr: '10.74.0.0/24' },
      },
    },
    {
      name: 'mvx',
      spec: {
        type: 'macvlan',
        device: 'eth2',
        vxlan: { vni: 7477, port: 4789, remotes: ['192.168.74.2'] },
        ipv4: { cidr: '10.77.0.0/24' },
      },
    },
    {
      // The VNI of mvx, but another UDP port: never the same device.
      name: 'mvxport',
      spec: {
        type: 'macvlan',
        device: 'eth2',
        vxlan: { vni: 7477, port: 8472, remotes: ['192.168.74.2'] },
        ipv4: { cidr: '10.76.0.0/24' },
      },
    },
    {
      // The VXLAN device of l2, as the port of another bridge.
      name: 'l2other',
      spec: {
        type: 'bridge',
        device: 'eth2',
        vxlan: { vni: 7474, port: 4789, remotes: ['192.168.74.2'] },
        ipv4: { cidr: '10.78.0.0/24' },
      },
    },
    {
      // A bridge with a host NIC as its uplink.
      name: 'nicbr',
      spec: { type: 'bridge', device: 'eth3', ipv4: { cidr: '10.79.0.0/24' } },
    },
    {
      name: 'opl2',
      spec: {
        type: 'bridge',
        bridge: 'op-br',
        device: 'eth2',
        vxlan: { vni: 7475, port: 4789, remotes: ['192.168.74.2'] },
        ipv4: { cidr: '10.75.0.0/24' },
      },
    },
  ]);
});

afterAll(async () => {
  await f?.destroy();
});

describe('host parents shared by networks', () => {
  it('puts a re-made VXLAN device back in the bridge that stayed', async () => {
    const a = await f.pod('a');
    const b = await f.pod('b');
    const conf = f.conf('n1', { interfaces: [{ network: 'l2' }] });
    expect((await f.cni('ADD', 'n1', a, { conf })).code).toBe(0);
    expect(await masterOf('tvx7474')).toBe('tbr-l2');
    // Someone deletes the VXLAN device; the bridge and pod a stay.
    await sh('ip', ['-n', node, 'link', 'del', 'tvx7474']);
    const r = await f.cni('ADD', 'n1', b, { conf });
    expect(r.code, JSON.stringify(r.out)).toBe(0);
    expect(await masterOf('tvx7474')).toBe('tbr-l2');
    for (const p of [a, b]) expect((await f.cni('DEL', 'n1', p, { conf })).code).toBe(0);
  });

  it("refuses a second bridge for a VXLAN device that is another bridge's port", async () => {
    const [a, e] = [await f.pod('a3'), await f.pod('e')];
    const l2 = f.conf('n1', { interfaces: [{ network: 'l2' }] });
    const other = f.conf('n1', { interfaces: [{ network: 'l2other' }] });
    expect((await f.cni('ADD', 'n1', a, { conf: l2 })).code).toBe(0);
    const r = await f.cni('ADD', 'n1', e, { conf: other });
    expect(r.out).toMatchObject({
      code: 7,
      msg: expect.stringMatching(
        /tvx7474 is in use as .*a port of bridge tbr-l2 \(by .*\); this network needs .*tbr-l2other$/,
      ),
    });
    expect(await masterOf('tvx7474')).toBe('tbr-l2');
    const links = (await nsjson<{ ifname: string }[]>(node, 'link', 'show')).map((l) => l.ifname);
    expect(links).not.toContain('tbr-l2other');
    expect((await f.cni('DEL', 'n1', a, { conf: l2 })).code).toBe(0);
  });

  it('puts a host NIC in its bridge when the bridge is made, and leaves it be after', async () => {
    const [g, h] = [await f.pod('g'), await f.pod('h')];
    const conf = f.conf('n1', { interfaces: [{ network: 'nicbr' }] });
    expect((await f.cni('ADD', 'n1', g, { conf })).code).toBe(0);
    expect(await masterOf('eth3')).toBe('tbr-nicbr');
    // The operator takes the NIC out; the next pod's ADD does not put it back.
    await sh('ip', ['-n', node, 'link', 'set', 'eth3', 'nomaster']);
    expect((await f.cni('ADD', 'n1', h, { conf })).code).toBe(0);
    expect(await masterOf('eth3')).toBeUndefined();
    for (const p of [g, h]) expect((await f.cni('DEL', 'n1', p, { conf })).code).toBe(0);
  });

  it("refuses a bridge whose NIC is another bridge's port, and leaves the NIC there", async () => {
    const p = await f.pod('k');
    await sh('ip', ['-n', node, 'link', 'add', 'op-nic', 'type', 'bridge']);
    try {
      await sh('ip', ['-n', node, 'link', 'set', 'eth3', 'master', 'op-nic']);
      const r = await f.cni('ADD', 'n1', p, {
        conf: f.conf('n1', { interfaces: [{ network: 'nicbr' }] }),
      });
      expect(r.out).toMatchObject({
        code: 7,
        msg: expect.stringMatching(
          /interface eth0 \(network nicbr\): host device eth3 is a port of op-nic; bridge tbr-nicbr needs it to itself/,
        ),
      });
      expect(await masterOf('eth3')).toBe('op-nic');
      const links = (await nsjson<{ ifname: string }[]>(node, 'link', 'show')).map((l) => l.ifname);
      expect(links).not.toContain('tbr-nicbr');
    } finally {
      await sh('ip', ['-n', node, 'link', 'del', 'op-nic']);
    }
  });

  it('refuses a network that wants the VXLAN device of another with other settings', async () => {
    const [a, d] = [await f.pod('a2'), await f.pod('d')];
    const l2 = f.conf('n1', { interfaces: [{ network: 'mvx' }] });
    const l2port = f.conf('n1', { interfaces: [{ network: 'mvxport' }] });
    expect((await f.cni('ADD', 'n1', a, { conf: l2 })).code).toBe(0);
    const r = await f.cni('ADD', 'n1', d, { conf: l2port });
    expect(r.code).toBe(1);
    expect(r.out).toMatchObject({
      code: 7,
      msg: expect.stringMatching(
        /host link tvx7477 is in use as VXLAN 7477 over eth2, UDP port 4789 .*needs VXLAN 7477 over eth2, UDP port 8472/,
      ),
    });
    const inPod = await nsjson<{ ifname: string }[]>(d, 'link', 'show');
    expect(inPod.map((l) => l.ifname)).toEqual(['lo']);
    // Once the first network's pod is gone, the device is made for the other one.
    expect((await f.cni('DEL', 'n1', a, { conf: l2 })).code).toBe(0);
    expect((await f.cni('ADD', 'n1', d, { conf: l2port })).code).toBe(0);
    const vx = await nsjson<{ linkinfo?: { info_data?: { port?: number } } }[]>(
      node,
      '-d',
      'link',
      'show',
      'dev',
      'tvx7477',
    );
    expect(vx[0]?.linkinfo?.info_data?.port).toBe(8472);
    expect((await f.cni('DEL', 'n1', d, { conf: l2port })).code).toBe(0);
  });

  it("makes the VXLAN device a port of the operator's bridge the network names", async () => {
    await sh('ip', ['-n', node, 'link', 'add', 'op-br', 'type', 'bridge']);
    const c = await f.pod('c');
    const conf = f.conf('n1', { interfaces: [{ network: 'opl2' }] });
    expect((await f.cni('ADD', 'n1', c, { conf })).code).toBe(0);
    expect(await masterOf('tvx7475')).toBe('op-br');
    expect((await f.cni('DEL', 'n1', c, { conf })).code).toBe(0);
    // The operator's bridge stays; the VXLAN device Tartan made goes with its last user.
    const links = (await nsjson<{ ifname: string }[]>(node, 'link', 'show')).map((l) => l.ifname);
    expect(links).toContain('op-br');
    expect(links).not.toContain('tvx7475');
  });
});
