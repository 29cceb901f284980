// Every example of docs/guide.md, exercised: the network files load and validate, and the
// example conflist, with the runtime-specific paths swapped for temporary ones, gives two
// pods on two nodes eth0 from the delegated default network plus OAM (fixed IP) and
// signalling (VXLAN, dual stack, policy routing) interfaces that really carry traffic.
import { cpSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNetworks } from '../../src/network/load.js';
import { nsjson, ping, sh } from '../../src/lab/sh.js';
import { makeFixture, podAddrs, podLinks, type Fixture } from './fixture.js';

const examples = join(import.meta.dirname, '../../docs/examples');
let f: Fixture;
const pods: Record<string, string> = {};

beforeAll(async () => {
  f = await makeFixture('gd', [
    {
      name: 'n1',
      nics: [
        { name: 'eth1', segment: 'oam' },
        { name: 'eth2', segment: 'und', address: '192.168.60.1/24' },
      ],
    },
    {
      name: 'n2',
      nics: [
        { name: 'eth1', segment: 'oam' },
        { name: 'eth2', segment: 'und', address: '192.168.60.2/24' },
      ],
    },
  ]);
  cpSync(join(examples, 'networks'), f.netsDir, { recursive: true });
  pods.a = await f.pod('a');
  pods.b = await f.pod('b');
});

afterAll(async () => {
  await f?.destroy();
  rmSync('/tmp/tartan-guide-host-local', { recursive: true, force: true });
});

function exampleConf(node: string): Record<string, unknown> {
  const list = JSON.parse(readFileSync(join(examples, 'conflist.json'), 'utf8')) as {
    cniVersion: string;
    name: string;
    plugins: Record<string, unknown>[];
  };
  const local = f.conf(node);
  return {
    ...list.plugins[0],
    cniVersion: list.cniVersion,
    name: list.name,
    networksDir: local.networksDir,
    store: local.store,
    stateDir: local.stateDir,
    nodeName: node,
  };
}

const b64 = (x: unknown) => Buffer.from(JSON.stringify(x)).toString('base64url');

describe('user guide examples', () => {
  it('every example network validates', async () => {
    const nets = await loadNetworks(join(examples, 'networks'));
    expect([...nets.keys()].sort()).toEqual(['cluster', 'oam', 'radio', 'signalling']);
    expect(nets.get('radio')?.spec).toMatchObject({ type: 'ipvlan', vlan: 310, device: 'eth3' });
  });

  it('the example conflist attaches eth0 (delegate), oam with a fixed IP and signalling with PBR', async () => {
    const want = [
      { network: 'oam', ip: '10.60.0.10' },
      { network: 'signalling', ifname: 'sig0', ip6: 'dynamic' },
    ];
    const ra = await f.cni('ADD', 'n1', pods.a, {
      conf: exampleConf('n1'),
      args: `IgnoreUnknown=1;TARTAN_INTERFACES=${b64(want)}`,
    });
    expect(ra.code, ra.stdout).toBe(0);
    const rb = await f.cni('ADD', 'n2', pods.b, {
      conf: exampleConf('n2'),
      args: 'IgnoreUnknown=1;K8S_POD_NAME=b;TARTAN_NETWORKS=oam,signalling',
    });
    expect(rb.code, rb.stdout).toBe(0);

    expect((await podLinks(pods.a!)).map((l) => l.ifname).sort()).toEqual([
      'eth0',
      'lo',
      'net1',
      'sig0',
    ]);
    expect((await podAddrs(pods.a!, 'eth0'))[0]).toMatch(/^10\.63\.0\.\d+\/24$/);
    expect(await podAddrs(pods.a!, 'net1')).toEqual(['10.60.0.10/24']);
    // Excludes are honoured: pod b's dynamic OAM address is neither .50 nor .51.
    const bOam = (await podAddrs(pods.b!, 'net1'))[0]!.split('/')[0]!;
    expect(['10.60.0.10', '10.60.0.50', '10.60.0.51']).not.toContain(bOam);
    expect((await sh('ip', ['-n', pods.a!, 'route', 'show'])).toString()).toMatch(
      /172\.16\.60\.0\/24 via 10\.60\.0\.1 dev net1/,
    );
    const rules = await nsjson<Array<{ table: string; src?: string }>>(pods.a, 'rule', 'show');
    expect(rules.some((r) => r.table === '161')).toBe(true);

    const bSig = await podAddrs(pods.b!, 'net2');
    expect(await ping(pods.a!, bOam)).toBe(true);
    expect(await ping(pods.a!, bSig.find((x) => !x.includes(':'))!.split('/')[0]!)).toBe(true);
    expect(await ping(pods.a!, bSig.find((x) => x.includes(':'))!.split('/')[0]!)).toBe(true);

    expect((await f.cni('DEL', 'n1', pods.a, { conf: exampleConf('n1') })).code).toBe(0);
    expect((await f.cni('DEL', 'n2', pods.b, { conf: exampleConf('n2') })).code).toBe(0);
    expect((await podLinks(pods.a!)).map((l) => l.ifname)).toEqual(['lo']);
  });

  it("the ips capability gives the first interface the runtime's address", async () => {
    const conf = {
      ...exampleConf('n1'),
      defaultNetwork: undefined,
      interfaces: [{ network: 'oam' }],
      runtimeConfig: { ips: ['10.60.0.42/24'] },
    };
    const r = await f.cni('ADD', 'n1', pods.a, { conf });
    expect(r.code, r.stdout).toBe(0);
    expect(await podAddrs(pods.a!, 'eth0')).toEqual(['10.60.0.42/24']);
    expect((await f.cni('DEL', 'n1', pods.a, { conf })).code).toBe(0);
  });
});
