// Kernel tier: what goes wrong. Rollback of a half-done ADD, DEL after the netns is gone,
// CHECK catching a deleted address, and bad input of every kind: each gets the right CNI
// code and leaves no link, address, rule, host parent or allocation behind.
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFileStore } from '../../src/store/file.js';
import { callCni } from '../../src/lab/cni.js';
import { delNetns, nsjson, sh } from '../../src/lab/sh.js';
import { TARTAN, TARTAN_SHIM, makeFixture, podLinks, type Fixture } from './fixture.js';

let f: Fixture;
let pod: string;

const nets = [
  {
    name: 'good',
    spec: {
      type: 'macvlan',
      device: 'eth1',
      ipv4: {
        cidr: '10.81.0.0/24',
        pools: [{ start: '10.81.0.10', end: '10.81.0.20' }],
        excludes: ['10.81.0.15/32'],
      },
    },
  },
  {
    name: 'vx',
    spec: {
      type: 'macvlan',
      device: 'eth2',
      vxlan: { vni: 8181, remotes: ['192.168.81.9'] },
      ipv4: { cidr: '10.82.0.0/24' },
      routingTable: 182,
    },
  },
  // A valid network the kernel refuses on this node: a passthru macvlan wants its parent to
  // itself, and eth1 already has the first interface's macvlan. The ADD fails in the kernel
  // after the first two interfaces, the VXLAN parent and this one's address exist.
  {
    name: 'broken',
    spec: { type: 'macvlan', device: 'eth1', mode: 'passthru', ipv4: { cidr: '10.83.0.0/24' } },
  },
  // A default route of its own (its gateway), and a network that routes 0.0.0.0/0 itself.
  {
    name: 'dflt',
    spec: { type: 'macvlan', device: 'eth1', ipv4: { cidr: '10.89.0.0/24', gateway: '10.89.0.1' } },
  },
  {
    name: 'rtx',
    spec: {
      type: 'macvlan',
      device: 'eth1',
      ipv4: { cidr: '10.90.0.0/24', routes: [{ dst: '0.0.0.0/0', gw: '10.90.0.1' }] },
    },
  },
  // MTUs the kernel would refuse with a bare EINVAL: above the parent's (1500), and above what
  // a VXLAN device over eth2 (1500) can carry (1450).
  {
    name: 'bigmtu',
    spec: { type: 'macvlan', device: 'eth1', mtu: 9000, ipv4: { cidr: '10.87.0.0/24' } },
  },
  {
    name: 'vxmtu',
    spec: {
      type: 'macvlan',
      device: 'eth2',
      mtu: 1480,
      vxlan: { vni: 8182, remotes: ['192.168.81.9'] },
      ipv4: { cidr: '10.88.0.0/24' },
    },
  },
  { name: 'tiny', spec: { type: 'macvlan', device: 'eth1', ipv4: { cidr: '10.84.0.0/30' } } },
  { name: 'br', spec: { type: 'bridge', ipv4: { cidr: '10.85.0.0/24' } } },
  { name: 'brx', spec: { type: 'bridge', bridge: 'tt-brx', ipv4: { cidr: '10.86.0.0/24' } } },
];

/** Everything that could leak: pod links, node links, rules in the pod, allocations in the store. */
async function leftovers(): Promise<{
  podLinks: string[];
  nodeLinks: string[];
  rules: number;
  allocs: string[];
}> {
  const node = f.node('n1');
  const nodeLinks = (await nsjson<Array<{ ifname: string }>>(node, 'link', 'show')).map(
    (l) => l.ifname,
  );
  const rules = (await nsjson<Array<{ table: string }>>(pod, 'rule', 'show')).filter(
    (r) => !['local', 'main', 'default'].includes(r.table),
  ).length;
  const store = await createFileStore(join(f.dir, 'ipam.db'));
  const entries = await store.list<Record<string, unknown>>('');
  await store.close();
  const allocs = entries
    .filter(
      (e) =>
        JSON.stringify(e.value).includes('"handle"') || JSON.stringify(e.value).includes('cid-'),
    )
    .flatMap((e) => {
      const v = e.value as { allocs?: Record<string, unknown> };
      return v.allocs ? Object.keys(v.allocs).map((k) => `${e.key}:${k}`) : [];
    });
  return {
    podLinks: (await podLinks(pod)).map((l) => l.ifname).filter((n) => n !== 'lo'),
    nodeLinks: nodeLinks.filter((n) => !['lo', 'eth1', 'eth2'].includes(n)),
    rules,
    allocs,
  };
}

const clean = { podLinks: [], nodeLinks: [], rules: 0, allocs: [] };

beforeAll(async () => {
  f = await makeFixture('fl', [
    {
      name: 'n1',
      nics: [
        { name: 'eth1', segment: 's1' },
        { name: 'eth2', segment: 's2', address: '192.168.81.1/24' },
      ],
    },
  ]);
  f.writeNetworks(nets);
  pod = await f.pod('p');
});

afterAll(async () => {
  await f?.destroy();
});

const err = (o: unknown) => o as { code: number; msg: string; details?: string };

describe('rollback', () => {
  it('undoes every interface, host parent, rule and allocation when the third interface fails', async () => {
    const conf = f.conf('n1', {
      interfaces: [{ network: 'good', ip: '10.81.0.11' }, { network: 'vx' }, { network: 'broken' }],
    });
    const r = await f.cni('ADD', 'n1', pod, { conf });
    expect(r.code).toBe(1);
    expect(err(r.out).code).toBe(101);
    expect(err(r.out).msg).toMatch(/interface net2 \(network broken\)/);
    expect(err(r.out).msg).toMatch(/Invalid argument/);
    expect(await leftovers()).toEqual(clean);
    // The fixed address is free again.
    const ok = await f.cni('ADD', 'n1', pod, {
      conf: f.conf('n1', { interfaces: [{ network: 'good', ip: '10.81.0.11' }] }),
    });
    expect(ok.code, ok.stdout).toBe(0);
    expect((await f.cni('DEL', 'n1', pod, { conf })).code).toBe(0);
    expect(await leftovers()).toEqual(clean);
  });
});

describe('an interface name the pod holds already', () => {
  // Another plugin's interface (here a veth pair inside the pod) under the name Tartan is
  // asked to create: the ADD fails on it and its undo must leave it as it was.
  const foreign = async () =>
    (await nsjson<Array<{ ifname: string; addr_info: Array<{ local: string }> }>>(pod, 'addr'))
      .filter((l) => l.ifname === 'net9' || l.ifname === 'tt-peer9')
      .map((l) => `${l.ifname} ${l.addr_info.map((a) => a.local).join(',')}`)
      .sort();
  const mine = ['net9 192.0.2.9', 'tt-peer9 '];

  for (const [what, interfaces] of [
    ['macvlan', [{ network: 'good', ifname: 'net9' }]],
    [
      'bridge, after a macvlan that it made',
      [
        { network: 'good', ifname: 'net8' },
        { network: 'br', ifname: 'net9' },
      ],
    ],
  ] as const)
    it(`${what}: fails naming it, leaves it alone, undoes the rest`, async () => {
      await sh('ip', [
        '-n',
        pod,
        'link',
        'add',
        'net9',
        'type',
        'veth',
        'peer',
        'name',
        'tt-peer9',
      ]);
      await sh('ip', ['-n', pod, 'addr', 'add', '192.0.2.9/24', 'dev', 'net9']);
      try {
        const r = await f.cni('ADD', 'n1', pod, { conf: f.conf('n1', { interfaces }) });
        expect(r.code).toBe(1);
        expect(err(r.out).code).toBe(101);
        expect(err(r.out).msg).toMatch(/interface net9 .*File exists/);
        expect(await foreign()).toEqual(mine);
        const left = await leftovers();
        expect({
          ...left,
          podLinks: left.podLinks.filter((n) => !/^(net9|tt-peer9)$/.test(n)),
        }).toEqual(clean);
      } finally {
        await sh('ip', ['-n', pod, 'link', 'del', 'net9']);
      }
      expect(await leftovers()).toEqual(clean);
    });
});

describe('a host link under a parent name', () => {
  it('that is not a bridge: ADD refused with code 7, the link left alone', async () => {
    const node = f.node('n1');
    await sh('ip', [
      '-n',
      node,
      'link',
      'add',
      'tt-brx',
      'type',
      'veth',
      'peer',
      'name',
      'tt-brxp',
    ]);
    try {
      const r = await f.cni('ADD', 'n1', pod, {
        conf: f.conf('n1', { interfaces: [{ network: 'brx' }] }),
      });
      expect(r.code).toBe(1);
      expect(err(r.out).code).toBe(7);
      expect(err(r.out).msg).toMatch(
        /host link tt-brx exists and is a plain device, not the bridge this network needs/,
      );
      const left = await leftovers();
      expect({ ...left, nodeLinks: left.nodeLinks.filter((n) => !n.startsWith('tt-brx')) }).toEqual(
        clean,
      );
      expect(left.nodeLinks.sort()).toEqual(['tt-brx', 'tt-brxp']);
    } finally {
      await sh('ip', ['-n', node, 'link', 'del', 'tt-brx']);
    }
  });
});

describe('DEL and CHECK', () => {
  it('DEL succeeds after the netns is gone and releases parents and addresses', async () => {
    const gone = await f.pod('gone');
    const conf = f.conf('n1', { interfaces: [{ network: 'vx' }, { network: 'good' }] });
    const r = await f.cni('ADD', 'n1', gone, { conf });
    expect(r.code, r.stdout).toBe(0);
    await delNetns(gone);
    const d = await f.cni('DEL', 'n1', gone, { conf });
    expect(d.code, d.stdout).toBe(0);
    expect(await leftovers()).toEqual(clean);
    // A DEL without CNI_NETNS at all is fine too.
    const d2 = await callCni({
      plugin: TARTAN,
      command: 'DEL',
      conf,
      node: f.node('n1'),
      containerId: `cid-${gone}`,
      ifname: 'eth0',
    });
    expect(d2.code, d2.stdout).toBe(0);
  });

  it('CHECK catches an address deleted behind Tartan’s back', async () => {
    const conf = f.conf('n1', { interfaces: [{ network: 'good', ip: '10.81.0.12' }] });
    const a = await f.cni('ADD', 'n1', pod, { conf });
    expect(a.code).toBe(0);
    // CHECK as the runtime sends it: the ADD's result as prevResult.
    const checked = { ...conf, prevResult: a.out };
    expect((await f.cni('CHECK', 'n1', pod, { conf: checked })).code).toBe(0);
    await sh('ip', ['-n', pod, 'addr', 'del', '10.81.0.12/24', 'dev', 'eth0']);
    const c = await f.cni('CHECK', 'n1', pod, { conf: checked });
    expect(c.code).toBe(1);
    expect(err(c.out).code).toBe(108);
    expect(err(c.out).msg).toMatch(/address 10\.81\.0\.12\/24 is missing/);
    // DEL and ADD build it again (a second ADD alone is refused: its eth0 is there).
    expect((await f.cni('DEL', 'n1', pod, { conf })).code).toBe(0);
    const again = await f.cni('ADD', 'n1', pod, { conf });
    expect(again.code).toBe(0);
    expect(
      (await f.cni('CHECK', 'n1', pod, { conf: { ...conf, prevResult: again.out } })).code,
    ).toBe(0);
    expect((await f.cni('DEL', 'n1', pod, { conf })).code).toBe(0);
    expect(await leftovers()).toEqual(clean);
  });

  it('CHECK catches a link whose MAC is not the one ADD gave it', async () => {
    const conf = f.conf('n1', { interfaces: [{ network: 'good' }] });
    const a = await f.cni('ADD', 'n1', pod, { conf });
    expect(a.code).toBe(0);
    const checked = { ...conf, prevResult: a.out };
    expect((await f.cni('CHECK', 'n1', pod, { conf: checked })).code).toBe(0);
    await sh('ip', ['-n', pod, 'link', 'set', 'dev', 'eth0', 'address', '02:00:00:00:0e:01']);
    const c = await f.cni('CHECK', 'n1', pod, { conf: checked });
    expect(c.code).toBe(1);
    expect(err(c.out).code).toBe(108);
    expect(err(c.out).msg).toMatch(/MAC is 02:00:00:00:0e:01, expected [0-9a-f:]{17}/);
    expect((await f.cni('DEL', 'n1', pod, { conf })).code).toBe(0);
    expect(await leftovers()).toEqual(clean);
  });

  it('a second ADD for the same container and interface is refused while its links are there', async () => {
    // The SPEC: "If an interface of the requested name already exists in the container, the
    // CNI plugin MUST return with an error."
    const conf = f.conf('n1', { interfaces: [{ network: 'good' }, { network: 'tiny' }] });
    const a = await f.cni('ADD', 'n1', pod, { conf });
    expect(a.code, a.stdout).toBe(0);
    const b = await f.cni('ADD', 'n1', pod, { conf });
    expect(b.code).toBe(1);
    expect(err(b.out).code).toBe(109);
    expect(err(b.out).msg).toMatch(
      new RegExp(
        `container cid-${pod} already has eth0, net1 in /run/netns/${pod} .*needs a DEL first`,
      ),
    );
    // The first attachment is as it was.
    expect((await f.cni('CHECK', 'n1', pod, { conf: { ...conf, prevResult: a.out } })).code).toBe(
      0,
    );
    // A record whose links are all gone (deleted behind Tartan's back, or an ADD killed
    // before its kernel work) is undone and built again.
    for (const dev of ['eth0', 'net1']) await sh('ip', ['-n', pod, 'link', 'del', dev]);
    const c = await f.cni('ADD', 'n1', pod, { conf });
    expect(c.code, c.stdout).toBe(0);
    expect((await f.cni('CHECK', 'n1', pod, { conf: { ...conf, prevResult: c.out } })).code).toBe(
      0,
    );
    expect((await f.cni('DEL', 'n1', pod, { conf })).code).toBe(0);
    expect(await leftovers()).toEqual(clean);
  });

  it("DEL naming another pod's netns undoes the attachment where ADD made it", async () => {
    const other = await f.pod('third');
    const conf = f.conf('n1', { interfaces: [{ network: 'good' }] });
    const a = await f.cni('ADD', 'n1', pod, { conf });
    expect(a.code).toBe(0);
    const b = await f.cni('ADD', 'n1', other, { conf });
    expect(b.code).toBe(0);
    // CHECK compares the namespace too.
    const c = await f.cni('CHECK', 'n1', pod, {
      conf: { ...conf, prevResult: a.out },
      netns: `/run/netns/${other}`,
    });
    expect(err(c.out).code).toBe(108);
    expect(err(c.out).msg).toMatch(
      new RegExp(`attached in /run/netns/${pod}, not /run/netns/${other}`),
    );
    const d = await f.cni('DEL', 'n1', pod, { conf, netns: `/run/netns/${other}` });
    expect(d.code, d.stdout).toBe(0);
    expect((await podLinks(pod)).map((l) => l.ifname)).toEqual(['lo']);
    expect((await podLinks(other)).map((l) => l.ifname)).toContain('eth0');
    expect((await f.cni('CHECK', 'n1', other, { conf: { ...conf, prevResult: b.out } })).code).toBe(
      0,
    );
    expect((await f.cni('DEL', 'n1', other, { conf })).code).toBe(0);
    expect(await leftovers()).toEqual(clean);
  });
});

describe('logFile', () => {
  it('gets a line per call: failures at error, successes when logLevel allows', async () => {
    const logFile = join(f.dir, 'tt-cni.log');
    rmSync(logFile, { force: true });
    const lines = () =>
      readFileSync(logFile, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const conf = (extra: Record<string, unknown>) =>
      f.conf('n1', { logFile, interfaces: [{ network: 'good' }], ...extra });
    const bad = f.conf('n1', { logFile, interfaces: [{ network: 'nope' }] });
    expect((await f.cni('ADD', 'n1', pod, { conf: bad })).code).toBe(1);
    expect((await f.cni('ADD', 'n1', pod, { conf: conf({}) })).code).toBe(0);
    expect((await f.cni('DEL', 'n1', pod, { conf: conf({ logLevel: 'error' }) })).code).toBe(0);
    expect(lines()).toEqual([
      expect.objectContaining({
        level: 'error',
        msg: 'ADD failed',
        code: 7,
        error: 'unknown network nope',
        ifname: 'eth0',
      }),
      expect.objectContaining({ level: 'info', msg: 'ADD done', ms: expect.any(Number) }),
    ]);
    expect(statSync(logFile).mode & 0o777).toBe(0o600);
  });
});

describe('bad input', () => {
  const add = (opts: Parameters<Fixture['cni']>[3], pod2 = pod) => f.cni('ADD', 'n1', pod2, opts);
  const cases: Array<[string, () => Promise<{ code: number; out: unknown }>, number, RegExp]> = [
    ['malformed stdin', () => add({ conf: '{"cniVersion": "1.1.0", ' }), 6, /not valid JSON/],
    [
      'oversized stdin',
      () => add({ conf: JSON.stringify({ ...f.conf('n1'), pad: 'x'.repeat(1.5 * 1024 * 1024) }) }),
      6,
      /larger than/,
    ],
    [
      'unsupported version',
      () => add({ conf: { ...f.conf('n1'), cniVersion: '9.9.9' } }),
      1,
      /version/,
    ],
    [
      'unknown network',
      () => add({ conf: f.conf('n1', { interfaces: [{ network: 'nope' }] }) }),
      7,
      /unknown network nope/,
    ],
    [
      'fixed IP outside the range',
      () => add({ conf: f.conf('n1', { interfaces: [{ network: 'good', ip: '10.81.0.50' }] }) }),
      104,
      /10\.81\.0\.50/,
    ],
    [
      'fixed IP in an excluded range',
      () => add({ conf: f.conf('n1', { interfaces: [{ network: 'good', ip: '10.81.0.15' }] }) }),
      104,
      /10\.81\.0\.15/,
    ],
    [
      'interface name too long',
      () =>
        add({
          conf: f.conf('n1', { interfaces: [{ network: 'good', ifname: 'averyverylongname0' }] }),
        }),
      107,
      /ifname/,
    ],
    [
      'interface name with shell metacharacters',
      () => add({ conf: f.conf('n1', { interfaces: [{ network: 'good', ifname: 'a;rm -rf' }] }) }),
      107,
      /ifname/,
    ],
    [
      'CNI_IFNAME with shell metacharacters',
      () => add({ ifname: 'e$(x)', conf: f.conf('n1', { interfaces: [{ network: 'good' }] }) }),
      4,
      /CNI_IFNAME/,
    ],
    [
      'missing netns',
      () =>
        add({
          netns: '/run/netns/tt-does-not-exist',
          conf: f.conf('n1', { interfaces: [{ network: 'good' }] }),
        }),
      4,
      /does not exist/,
    ],
    [
      'netns that is a regular file',
      () =>
        add({
          netns: join(f.dir, 'not-a-netns'),
          conf: f.conf('n1', { interfaces: [{ network: 'good' }] }),
        }),
      4,
      /not a network namespace/,
    ],
    [
      'netns of another kind',
      () =>
        add({ netns: '/proc/1/ns/mnt', conf: f.conf('n1', { interfaces: [{ network: 'good' }] }) }),
      4,
      /not a network namespace/,
    ],
    [
      'malformed prevResult',
      () =>
        add({
          conf: {
            ...f.conf('n1', { interfaces: [{ network: 'good' }] }),
            prevResult: { cniVersion: '1.1.0', ips: [{ address: 'bogus' }] },
          },
        }),
      6,
      /prevResult: ips\[0\]\.address "bogus"/,
    ],
    [
      'relative path in the configuration',
      () => add({ conf: { ...f.conf('n1'), stateDir: 'tt-state' } }),
      7,
      /stateDir: must be an absolute path/,
    ],
    [
      'relative agentSocket (shim build)',
      () => add({ plugin: TARTAN_SHIM, conf: { ...f.conf('n1'), agentSocket: 'tt-agent.sock' } }),
      7,
      /agentSocket: must be an absolute path/,
    ],
    [
      'two interfaces routing one destination',
      () => add({ conf: f.conf('n1', { interfaces: [{ network: 'dflt' }, { network: 'rtx' }] }) }),
      107,
      /eth0 \(network dflt\) and net1 \(network rtx\) both route 0\.0\.0\.0\/0: the kernel keeps one/,
    ],
    [
      'one claim on two interfaces',
      () =>
        add({
          conf: f.conf('n1', {
            interfaces: [
              { network: 'good', claim: 'k1' },
              { network: 'good', claim: 'k1' },
            ],
          }),
        }),
      107,
      /interfaces eth0 and net1 ask for the same claim k1/,
    ],
    [
      'one MAC on two interfaces',
      () =>
        add({
          conf: f.conf('n1', {
            interfaces: [
              { network: 'good', mac: '02:00:00:00:aa:01' },
              { network: 'tiny', mac: '02:00:00:00:AA:01' },
            ],
          }),
        }),
      107,
      /interfaces eth0 and net1 ask for the same MAC 02:00:00:00:aa:01/,
    ],
    [
      'runtimeConfig.ips that is not a list',
      () =>
        add({
          conf: {
            ...f.conf('n1', { interfaces: [{ network: 'good' }] }),
            runtimeConfig: { ips: '10.81.0.12' },
          },
        }),
      107,
      /runtimeConfig\.ips "10\.81\.0\.12" is not a list of addresses/,
    ],
    [
      'runtimeConfig.ips with two IPv4 addresses',
      () =>
        add({
          conf: {
            ...f.conf('n1', { interfaces: [{ network: 'good' }] }),
            runtimeConfig: { ips: ['10.81.0.12/24', '10.81.0.13/24'] },
          },
        }),
      107,
      /asks for 2 IPv4 addresses \(10\.81\.0\.12\/24, 10\.81\.0\.13\/24\); an interface has one/,
    ],
    [
      'a MAC for a passthru macvlan',
      () =>
        add({
          conf: f.conf('n1', { interfaces: [{ network: 'broken', mac: '02:00:00:00:bb:01' }] }),
        }),
      107,
      /interface eth0 \(network broken\): mac: a passthru macvlan has its parent’s MAC/,
    ],
    [
      'a claim for an interface without an address',
      () =>
        add({ conf: f.conf('n1', { interfaces: [{ network: 'good', ip: 'none', claim: 'k2' }] }) }),
      107,
      /claim: the interface gets no address to keep/,
    ],
    [
      'policy routes of a family the interface has no address of',
      () =>
        add({
          conf: f.conf('n1', {
            interfaces: [{ network: 'good', ip: 'none', policyRoutes: [{ dst: '192.0.2.0/24' }] }],
          }),
        }),
      107,
      /policyRoutes 192\.0\.2\.0\/24: the interface gets no IPv4 address to route from/,
    ],
    [
      'an MTU above the parent link’s',
      () =>
        add({ conf: f.conf('n1', { interfaces: [{ network: 'good' }, { network: 'bigmtu' }] }) }),
      7,
      /interface net1 \(network bigmtu\): the network's MTU 9000 is above the MTU 1500 of its parent eth1/,
    ],
    [
      'an MTU above what the VXLAN device can carry',
      () =>
        add({ conf: f.conf('n1', { interfaces: [{ network: 'good' }, { network: 'vxmtu' }] }) }),
      7,
      /MTU 1480 is above the 1450 that VXLAN device tvx8182 can carry over eth2 \(MTU 1500, less 50 bytes/,
    ],
    [
      'invalid configuration field',
      () => add({ conf: { ...f.conf('n1'), store: { type: 'floppy' } } }),
      7,
      /store/,
    ],
  ];
  for (const [name, call, code, msg] of cases) {
    it(`${name}: code ${code}, nothing left behind`, async () => {
      writeFileSync(join(f.dir, 'not-a-netns'), 'x');
      const r = await call();
      expect(r.code).toBe(1);
      expect(err(r.out).code).toBe(code);
      expect(err(r.out).msg).toMatch(msg);
      expect(await leftovers()).toEqual(clean);
    });
  }

  it('unknown CNI_COMMAND: code 4', async () => {
    const r = await callCni({
      plugin: TARTAN,
      command: 'BOGUS' as 'ADD',
      conf: f.conf('n1'),
      node: f.node('n1'),
    });
    expect(err(r.out).code).toBe(4);
    expect(err(r.out).msg).toMatch(/unknown CNI_COMMAND/);
  });

  it('a fixed IP already taken names its holder; an exhausted pool says so', async () => {
    const other = await f.pod('other');
    const conf = f.conf('n1', { interfaces: [{ network: 'tiny', ip: '10.84.0.1' }] });
    expect((await f.cni('ADD', 'n1', other, { conf })).code).toBe(0);
    const r = await f.cni('ADD', 'n1', pod, { conf });
    expect(err(r.out).code).toBe(103);
    expect(err(r.out).msg).toMatch(new RegExp(`cid-${other}`));
    const full = await f.cni('ADD', 'n1', pod, {
      conf: f.conf('n1', {
        interfaces: [{ network: 'tiny', ip: '10.84.0.2' }, { network: 'tiny' }],
      }),
    });
    expect(err(full.out).code).toBe(102);
    expect((await podLinks(pod)).filter((l) => l.ifname !== 'lo')).toEqual([]);
    expect((await f.cni('DEL', 'n1', other, { conf })).code).toBe(0);
    expect(await leftovers()).toEqual(clean);
    expect(existsSync(join(f.dir, 'ipam.db'))).toBe(true);
  });
});

describe('stdin as runtimes hand it over', () => {
  /**
   * Runs the binary with a non-blocking FIFO as stdin (the file description is shared, so
   * the flag is the binary's too) and writes the chunks with pauses between them.
   */
  async function chunked(chunks: string[]): Promise<{ code: number; stdout: string }> {
    const fifo = join(f.dir, `tt-stdin-${process.pid}`);
    await sh('mkfifo', [fifo]);
    try {
      const rd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
      const child = spawn(TARTAN, [], {
        env: { CNI_COMMAND: 'VERSION' },
        stdio: [rd, 'pipe', 'inherit'],
      });
      closeSync(rd);
      const wr = openSync(fifo, constants.O_WRONLY);
      let stdout = '';
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      const done = new Promise<number>((res) => child.on('close', (c) => res(c ?? -1)));
      for (const c of chunks) {
        await new Promise((r) => setTimeout(r, 30));
        try {
          writeSync(wr, c);
        } catch {
          break; // the binary stopped reading (oversized input): what is asserted below
        }
      }
      closeSync(wr);
      return { code: await done, stdout };
    } finally {
      rmSync(fifo, { force: true });
    }
  }

  it('reads a configuration that arrives in pieces on a non-blocking stdin', async () => {
    const r = await chunked(['{"cniVersion":', ' "0.4.0"', '}']);
    expect(r.code, r.stdout).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ cniVersion: '0.4.0' });
  });

  it('an unreadable stdin is an I/O failure (code 5), except for VERSION', () => {
    // A directory as stdin: read() fails with EISDIR.
    for (const bin of [TARTAN, TARTAN_SHIM])
      for (const [command, code] of [
        ['ADD', 5],
        ['VERSION', undefined],
      ] as const) {
        const fd = openSync(f.dir, constants.O_RDONLY);
        try {
          const r = spawnSync(bin, [], {
            stdio: [fd, 'pipe', 'inherit'],
            env: {
              CNI_COMMAND: command,
              CNI_CONTAINERID: 'tt-io',
              CNI_NETNS: `/run/netns/${pod}`,
              CNI_IFNAME: 'eth0',
              CNI_PATH: '/usr/lib/cni',
            },
            encoding: 'utf8',
          });
          expect(r.status, `${bin} ${command}: ${r.stdout}`).toBe(code === undefined ? 0 : 1);
          if (code !== undefined)
            expect(JSON.parse(r.stdout)).toMatchObject({
              code,
              msg: expect.stringMatching(/stdin/),
            });
        } finally {
          closeSync(fd);
        }
      }
  });

  it('refuses an oversized configuration that arrives slowly', async () => {
    const piece = 'x'.repeat(64 * 1024);
    const r = await chunked(['{"cniVersion": "1.1.0", "pad": "', ...Array(24).fill(piece), '"}']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({
      code: 6,
      msg: expect.stringMatching(/larger than/),
    });
  });
});

describe("the runtime's working directory", () => {
  // Runtimes start plugins in their own working directory (podman: the user's). A Bun
  // binary would read bunfig.toml (which can preload a script) and .env from there.
  it('a bunfig.toml or .env there changes nothing, in either build', () => {
    const cwd = join(f.dir, 'tt-cwd');
    rmSync(cwd, { recursive: true, force: true });
    mkdirSync(cwd);
    const marker = join(cwd, 'preloaded');
    writeFileSync(
      join(cwd, 'preload.js'),
      `require('fs').writeFileSync(${JSON.stringify(marker)}, 'x');`,
    );
    writeFileSync(join(cwd, 'bunfig.toml'), 'preload = ["./preload.js"]\n');
    writeFileSync(join(cwd, '.env'), 'TARTAN_TRACE=1\n');
    const conf = f.conf('n1', { interfaces: [{ network: 'nope' }] });
    const calls: Array<[string, string, Record<string, unknown>, number]> = [
      [TARTAN, 'VERSION', conf, 0],
      // Reaches the core (whose phases TARTAN_TRACE would print), then fails: unknown network.
      [TARTAN, 'ADD', conf, 1],
      [TARTAN_SHIM, 'VERSION', conf, 0],
      [TARTAN_SHIM, 'ADD', { ...conf, agentSocket: join(cwd, 'no-agent.sock') }, 1],
    ];
    for (const [bin, command, c, code] of calls) {
      const r = spawnSync(bin, [], {
        cwd,
        input: JSON.stringify(c),
        env: {
          PATH: process.env.PATH,
          CNI_COMMAND: command,
          CNI_CONTAINERID: 'tt-cwd',
          CNI_NETNS: pod,
          CNI_IFNAME: 'eth0',
          CNI_PATH: '/usr/lib/cni',
        },
        encoding: 'utf8',
      });
      expect(r.status, `${bin} ${command}: ${r.stdout} ${r.stderr}`).toBe(code);
      expect(r.stderr, `${bin} ${command}`).toBe('');
      expect(existsSync(marker), `${bin} ${command} ran the preload`).toBe(false);
    }
    rmSync(cwd, { recursive: true, force: true });
  });
});
