// Kernel tier: the macvlan modes beside bridge (macvlan.test.ts), each read back from the
// kernel and proven by what traffic does on a real segment. A segment is a bridge in the
// fabric netns; its own address stands for a router beyond the node's NIC.
//   private:  pods reach the segment, never each other.
//   vepa:     pods reach each other only through the switch, so only once its port hairpins.
//   passthru: one pod holds the NIC, with the NIC's MAC; a second pod is refused and undone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { nsjson, ping, sh } from '../../src/lab/sh.js';
import { createFileStore } from '../../src/store/file.js';
import { makeFixture, podAddrs, podLinks, type Fixture } from './fixture.js';

let f: Fixture;
let fabric: string;

const nets = [
  { name: 'priv', nic: 'eth1', seg: 'sa', mode: 'private', cidr: '10.64.1.0/24' },
  { name: 'vepa', nic: 'eth2', seg: 'sb', mode: 'vepa', cidr: '10.64.2.0/24' },
  { name: 'pt', nic: 'eth3', seg: 'sc', mode: 'passthru', cidr: '10.64.3.0/24' },
];
/** The segment's own address: a router beyond the NIC. */
const router = (cidr: string) => cidr.replace(/0\/24$/, '254');

beforeAll(async () => {
  f = await makeFixture('mm', [
    { name: 'n1', nics: nets.map((n) => ({ name: n.nic, segment: n.seg })) },
  ]);
  fabric = f.topo.fabric;
  for (const n of nets)
    await sh('ip', ['-n', fabric, 'addr', 'add', `${router(n.cidr)}/24`, 'dev', n.seg]);
  f.writeNetworks(
    nets.map((n) => ({
      name: n.name,
      spec: {
        type: 'macvlan',
        device: n.nic,
        mode: n.mode,
        ipv4: {
          cidr: n.cidr,
          pools: [{ start: n.cidr.replace(/0\/24$/, '10'), end: n.cidr.replace(/0\/24$/, '99') }],
        },
      },
    })),
  );
});

afterAll(async () => {
  await f?.destroy();
});

const conf = (network: string) => f.conf('n1', { interfaces: [{ network }] });

async function attach(network: string, name: string): Promise<{ pod: string; ip: string }> {
  const pod = await f.pod(name);
  const r = await f.cni('ADD', 'n1', pod, { conf: conf(network) });
  expect(r.code, r.stdout).toBe(0);
  const ip = (await podAddrs(pod, 'eth0'))[0]!.split('/')[0]!;
  return { pod, ip };
}

async function detach(network: string, pod: string): Promise<void> {
  expect((await f.cni('DEL', 'n1', pod, { conf: conf(network) })).code).toBe(0);
  expect((await podLinks(pod)).map((l) => l.ifname)).toEqual(['lo']);
}

/** The addresses the IPAM store holds for anyone (block offsets), read back from the store. */
async function allocated(): Promise<string[]> {
  const store = await createFileStore(join(f.dir, 'ipam.db'));
  try {
    const entries = await store.list<{ allocs?: Record<string, unknown> }>('');
    return entries.flatMap((e) => Object.keys(e.value.allocs ?? {}));
  } finally {
    await store.close();
  }
}

/** The macvlan mode of a pod's eth0, as the kernel reports it. */
async function mode(pod: string): Promise<string | undefined> {
  const l = await nsjson<
    Array<{ linkinfo?: { info_kind?: string; info_data?: { mode?: string } } }>
  >(pod, '-d', 'link', 'show', 'dev', 'eth0');
  expect(l[0]?.linkinfo?.info_kind).toBe('macvlan');
  return l[0]?.linkinfo?.info_data?.mode;
}

describe('macvlan modes', () => {
  it('private: pods reach the segment but not each other', async () => {
    const a = await attach('priv', 'pa');
    const b = await attach('priv', 'pb');
    expect(await mode(a.pod)).toBe('private');
    expect(await mode(b.pod)).toBe('private');
    expect(await ping(a.pod, router(nets[0]!.cidr))).toBe(true);
    expect(await ping(b.pod, router(nets[0]!.cidr))).toBe(true);
    expect(await ping(a.pod, b.ip, 1)).toBe(false);
    await detach('priv', a.pod);
    await detach('priv', b.pod);
  });

  it('vepa: pods reach each other through the switch once its port hairpins', async () => {
    const a = await attach('vepa', 'va');
    const b = await attach('vepa', 'vb');
    expect(await mode(a.pod)).toBe('vepa');
    expect(await ping(a.pod, router(nets[1]!.cidr))).toBe(true);
    // A switch port sends nothing back where it came from: the frames for b leave the NIC
    // and never return.
    expect(await ping(a.pod, b.ip, 1)).toBe(false);
    // The node's NIC is the only port on the segment that lies on eth2's wire.
    const port = (await nsjson<Array<{ ifname: string; master?: string }>>(fabric, 'link', 'show'))
      .filter((l) => l.master === 'sb')
      .map((l) => l.ifname);
    expect(port).toHaveLength(1);
    await sh('ip', [
      '-n',
      fabric,
      'link',
      'set',
      'dev',
      port[0]!,
      'type',
      'bridge_slave',
      'hairpin',
      'on',
    ]);
    expect(await ping(a.pod, b.ip)).toBe(true);
    await detach('vepa', a.pod);
    await detach('vepa', b.pod);
  });

  it('passthru: one pod holds the NIC with its MAC; a second is refused and undone', async () => {
    const nicMac = (
      await nsjson<Array<{ address: string }>>(f.node('n1'), 'link', 'show', 'dev', 'eth3')
    )[0]!.address;
    const a = await attach('pt', 'ta');
    expect(await mode(a.pod)).toBe('passthru');
    const eth0 = (await podLinks(a.pod)).find((l) => l.ifname === 'eth0')!;
    expect(eth0.address).toBe(nicMac);
    expect(await ping(a.pod, router(nets[2]!.cidr))).toBe(true);

    const b = await f.pod('tb');
    const r = await f.cni('ADD', 'n1', b, { conf: conf('pt') });
    expect(r.code).toBe(1);
    const e = r.out as { code: number; msg: string };
    expect(e.code).toBe(101);
    expect(e.msg).toMatch(/interface eth0 \(network pt\)/);
    expect(e.msg).toMatch(/passthru macvlan needs eth3 to itself/);
    expect((await podLinks(b)).map((l) => l.ifname)).toEqual(['lo']);
    // The refused pod's address went back; the first pod kept its own and its link.
    expect(await allocated()).toHaveLength(1);
    expect(await ping(a.pod, router(nets[2]!.cidr))).toBe(true);
    await detach('pt', a.pod);
    const again = await f.cni('ADD', 'n1', b, { conf: conf('pt') });
    expect(again.code, again.stdout).toBe(0);
    expect(await mode(b)).toBe('passthru');
    await detach('pt', b);
  });
});
