// Kernel tier: host-device, delegation to the reference plugins (conf and conflist, with
// prevResult chaining and DEL in reverse), every CNI spec version, STATUS, GC, VERSION.
import { spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callCni } from '../../src/lab/cni.js';
import { nsjson, ping, sh } from '../../src/lab/sh.js';
import { makeFixture, podAddrs, podLinks, TARTAN, type Fixture } from './fixture.js';

let f: Fixture;
let a: string;
let b: string;

beforeAll(async () => {
  f = await makeFixture('be', [
    {
      name: 'n1',
      nics: [
        { name: 'eth1', segment: 's1' },
        { name: 'eth3', segment: 's3' },
        { name: 'eth4', segment: 's3' },
      ],
    },
  ]);
  f.writeNetworks(nets);
  a = await f.pod('a');
  b = await f.pod('b');
});

const nets = [
  { name: 'mgmt', spec: { type: 'macvlan', device: 'eth1', ipv4: { cidr: '10.91.0.0/24' } } },
  {
    name: 'nic',
    spec: {
      type: 'host-device',
      device: 'eth3',
      ipv4: { cidr: '10.93.0.0/24', pools: [{ start: '10.93.0.5', end: '10.93.0.9' }] },
    },
  },
  {
    name: 'cluster',
    spec: {
      type: 'delegate',
      delegate: {
        cniVersion: '1.0.0',
        name: 'tt-ref',
        plugins: [
          {
            type: 'bridge',
            bridge: 'tt-refbr0',
            ipam: {
              type: 'host-local',
              ranges: [[{ subnet: '10.92.0.0/24' }]],
              dataDir: '/tmp/tartan-hl-be',
            },
          },
          { type: 'tuning', sysctl: { 'net.ipv4.conf.eth0.arp_notify': '1' } },
        ],
      },
    },
  },
  {
    name: 'static',
    spec: {
      type: 'delegate',
      delegate: {
        cniVersion: '1.0.0',
        name: 'tt-st',
        type: 'macvlan',
        master: 'eth1',
        ipam: { type: 'static', addresses: [{ address: '10.94.0.7/24' }] },
      },
    },
  },
];

afterAll(async () => {
  await f?.destroy();
  await sh('rm', ['-rf', '/tmp/tartan-hl-be']);
});

describe('host-device', () => {
  it('moves a host NIC into the pod with an address and returns it on DEL', async () => {
    const conf = f.conf('n1', {
      interfaces: [{ network: 'nic', ifname: 'fast0', ip: '10.93.0.5' }],
    });
    const r = await f.cni('ADD', 'n1', a, { conf });
    expect(r.code, r.stdout).toBe(0);
    const node = f.node('n1');
    expect(
      (await nsjson<Array<{ ifname: string }>>(node, 'link', 'show')).map((l) => l.ifname),
    ).not.toContain('eth3');
    expect(await podAddrs(a, 'fast0')).toEqual(['10.93.0.5/24']);
    // eth4 shares the segment: give it an address in the node and ping the pod's NIC.
    await sh('ip', ['-n', node, 'addr', 'add', '10.93.0.100/24', 'dev', 'eth4']);
    expect(await ping(node, '10.93.0.5')).toBe(true);
    expect((await f.cni('CHECK', 'n1', a, { conf: { ...conf, prevResult: r.out } })).code).toBe(0);
    expect((await f.cni('DEL', 'n1', a, { conf })).code).toBe(0);
    expect(
      (await nsjson<Array<{ ifname: string }>>(node, 'link', 'show')).map((l) => l.ifname),
    ).toContain('eth3');
    expect((await podLinks(a)).map((l) => l.ifname)).toEqual(['lo']);
    await sh('ip', ['-n', node, 'addr', 'flush', 'dev', 'eth4']);
  });
});

describe('delegation', () => {
  it('runs a reference conflist as eth0 and Tartan interfaces beside it; DEL undoes both', async () => {
    const conf = f.conf('n1', {
      defaultNetwork: 'cluster',
      interfaces: [{ network: 'mgmt' }, { network: 'static' }],
    });
    const r = await f.cni('ADD', 'n1', a, { conf });
    expect(r.code, r.stdout).toBe(0);
    const res = r.out as {
      interfaces: Array<{ name: string; sandbox?: string }>;
      ips: Array<{ address: string; interface: number }>;
    };
    expect(res.interfaces.filter((i) => i.sandbox).map((i) => i.name)).toEqual([
      'eth0',
      'net1',
      'net2',
    ]);
    expect(res.ips.map((i) => i.address)).toContain('10.94.0.7/24');
    const eth0 = await podAddrs(a, 'eth0');
    expect(eth0[0]).toMatch(/^10\.92\.0\.\d+\/24$/);
    // tuning ran with the bridge plugin's prevResult: its sysctl is set on eth0.
    expect(
      (
        await sh('ip', ['netns', 'exec', a, 'cat', '/proc/sys/net/ipv4/conf/eth0/arp_notify'])
      ).trim(),
    ).toBe('1');
    expect(await podAddrs(a, 'net2')).toEqual(['10.94.0.7/24']);
    const chk = await f.cni('CHECK', 'n1', a, { conf: { ...conf, prevResult: r.out } });
    expect(chk.code, chk.stdout).toBe(0);

    const rb = await f.cni('ADD', 'n1', b, { conf: f.conf('n1', { defaultNetwork: 'cluster' }) });
    expect(rb.code, rb.stdout).toBe(0);
    const b0 = (await podAddrs(b, 'eth0'))[0]!.split('/')[0]!;
    expect(await ping(a, b0)).toBe(true);

    expect((await f.cni('DEL', 'n1', a, { conf })).code).toBe(0);
    expect(
      (await f.cni('DEL', 'n1', b, { conf: f.conf('n1', { defaultNetwork: 'cluster' }) })).code,
    ).toBe(0);
    expect((await podLinks(a)).map((l) => l.ifname)).toEqual(['lo']);
    // host-local released its leases (DEL reached the delegate).
    const leases = await sh('sh', [
      '-c',
      'ls /tmp/tartan-hl-be/tt-ref 2>/dev/null | grep -c "^10\\." || true',
    ]);
    expect(leases.trim()).toBe('0');
  });

  it('DEL reaches a delegate whose ADD never answered (tartan killed while it ran)', async () => {
    // A conflist whose second plugin hangs on ADD: by the time it runs, bridge + host-local
    // have made eth0 and leased an address. Tartan is killed there, as a node agent can be.
    const bin = join(f.dir, 'hang-bin');
    mkdirSync(bin);
    const pidFile = join(f.dir, 'hang.pid');
    writeFileSync(
      join(bin, 'tt-hang'),
      `#!/bin/sh\nif [ "$CNI_COMMAND" = ADD ]; then echo $$ > ${pidFile}; exec sleep 60; fi\n` +
        `[ "$CNI_COMMAND" = VERSION ] && echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}'\nexit 0\n`,
      { mode: 0o755 },
    );
    const path = `${bin}:/usr/lib/cni`;
    const hung = {
      cniVersion: '1.0.0',
      name: 'tt-hung',
      plugins: [
        {
          type: 'bridge',
          bridge: 'tt-refbr1',
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: '10.95.0.0/24' }]],
            dataDir: '/tmp/tartan-hl-be',
          },
        },
        { type: 'tt-hang' },
      ],
    };
    f.writeNetworks([...nets, { name: 'hung', spec: { type: 'delegate', delegate: hung } }]);
    const conf = f.conf('n1', { defaultNetwork: 'hung' });
    const child = spawn('ip', ['netns', 'exec', f.node('n1'), TARTAN], {
      env: {
        PATH: process.env.PATH,
        CNI_COMMAND: 'ADD',
        CNI_CONTAINERID: 'cid-hung',
        CNI_NETNS: `/run/netns/${a}`,
        CNI_IFNAME: 'eth0',
        CNI_PATH: path,
      },
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    child.stdin.end(JSON.stringify(conf));
    const exited = new Promise((r) => child.once('exit', r));
    try {
      for (let i = 0; i < 200 && !existsSync(pidFile); i++) await sleep(50);
      expect(existsSync(pidFile)).toBe(true);
      const leases = () =>
        readdirSync('/tmp/tartan-hl-be/tt-hung').filter((n) => n.startsWith('10.'));
      expect(leases()).toHaveLength(1);
      process.kill(child.pid!, 'SIGKILL');
      await exited;
      process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');

      const d = await f.cni('DEL', 'n1', a, { conf, containerId: 'cid-hung', path });
      expect(d.code, d.stdout).toBe(0);
      expect(leases()).toEqual([]);
      expect((await podLinks(a)).map((l) => l.ifname)).toEqual(['lo']);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      f.writeNetworks(nets);
      await sh('ip', ['-n', f.node('n1'), 'link', 'del', 'tt-refbr1']).catch(() => undefined);
    }
  });

  it('chains after a previous plugin: prevResult keeps eth0 and Tartan adds net1', async () => {
    const prev = {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'eth0', sandbox: `/run/netns/${a}` }],
      ips: [{ address: '10.250.0.2/24', interface: 0 }],
    };
    const conf = { ...f.conf('n1', { interfaces: [{ network: 'mgmt' }] }), prevResult: prev };
    const r = await f.cni('ADD', 'n1', a, { conf });
    expect(r.code, r.stdout).toBe(0);
    const res = r.out as {
      interfaces: Array<{ name: string }>;
      ips: Array<{ address: string; interface: number }>;
    };
    expect(res.interfaces.map((i) => i.name)).toEqual(['eth0', 'net1']);
    expect(res.ips[0]).toEqual({ address: '10.250.0.2/24', interface: 0 });
    expect(res.ips[1]?.interface).toBe(1);
    expect((await f.cni('DEL', 'n1', a, { conf })).code).toBe(0);
  });

  it('chained with nothing more to attach, passes the previous result through', async () => {
    const prev = {
      cniVersion: '1.1.0',
      interfaces: [{ name: 'eth0', sandbox: `/run/netns/${a}` }],
      ips: [{ address: '10.250.0.2/24', interface: 0 }],
    };
    // A pod that asks for no secondary interface, with and without a defaultNetwork that
    // the previous plugin's eth0 already stands for.
    for (const extra of [{ defaultNetwork: 'mgmt' }, {}]) {
      const conf = { ...f.conf('n1', extra), prevResult: prev };
      const r = await f.cni('ADD', 'n1', a, { conf });
      expect(r.code, r.stdout).toBe(0);
      expect(r.out).toMatchObject({
        cniVersion: '1.1.0',
        interfaces: prev.interfaces,
        ips: prev.ips,
      });
      expect((r.out as { interfaces: unknown[] }).interfaces).toHaveLength(1);
      expect((await podLinks(a)).map((l) => l.ifname)).toEqual(['lo']);
      // The runtime's prevResult on CHECK is the ADD's result: here, prev passed through.
      const c = await f.cni('CHECK', 'n1', a, { conf: { ...conf, prevResult: r.out } });
      expect(c.code, c.stdout).toBe(0);
      expect((await f.cni('DEL', 'n1', a, { conf })).code).toBe(0);
    }
  });
});

describe('pod annotations from the runtime (io.kubernetes.cri.pod-annotations)', () => {
  it("attaches what the pod's annotation asks for, with the cluster's tenancy rules", async () => {
    f.writeNetworks([
      ...nets,
      {
        name: 'team',
        kind: 'TenantNetwork',
        namespace: 'tenant-a',
        spec: { type: 'macvlan', device: 'eth1', ipv4: { cidr: '10.96.0.0/24' } },
      },
    ]);
    const conf = f.conf('n1', {
      capabilities: { 'io.kubernetes.cri.pod-annotations': true },
      runtimeConfig: {
        'io.kubernetes.cri.pod-annotations': {
          'tartan.io/interfaces': JSON.stringify([
            { network: 'mgmt', kind: 'ClusterNetwork', ifname: 'm0', ip: '10.91.0.33' },
            { network: 'team', ifname: 't0' },
          ]),
        },
      },
    });
    try {
      const r = await f.cni('ADD', 'n1', a, {
        conf,
        args: 'K8S_POD_NAMESPACE=tenant-a;K8S_POD_NAME=p1',
      });
      expect(r.code, r.stdout).toBe(0);
      expect(await podAddrs(a, 'm0')).toEqual(['10.91.0.33/24']);
      expect((await podAddrs(a, 't0'))[0]).toMatch(/^10\.96\.0\.\d+\/24$/);
      expect((await f.cni('DEL', 'n1', a, { conf })).code).toBe(0);
      expect((await podLinks(a)).map((l) => l.ifname)).toEqual(['lo']);
      // The same annotation from a pod of another namespace: tenant-a's network is not its.
      const r2 = await f.cni('ADD', 'n1', b, {
        conf,
        args: 'K8S_POD_NAMESPACE=tenant-b;K8S_POD_NAME=p2',
      });
      expect(r2.code).not.toBe(0);
      expect((r2.out as { msg: string }).msg).toContain(
        'no TenantNetwork "team" in namespace tenant-b',
      );
      expect((await podLinks(b)).map((l) => l.ifname)).toEqual(['lo']);
    } finally {
      f.writeNetworks(nets);
    }
  });
});

describe('protocol', () => {
  for (const v of ['0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
    it(`ADD/CHECK/DEL with cniVersion ${v} answers in that version's shape`, async () => {
      const conf = { ...f.conf('n1', { interfaces: [{ network: 'mgmt' }] }), cniVersion: v };
      const r = await f.cni('ADD', 'n1', a, { conf });
      expect(r.code, r.stdout).toBe(0);
      const out = r.out as { cniVersion: string; ips: Array<Record<string, unknown>> };
      expect(out.cniVersion).toBe(v);
      if (v.startsWith('0.')) expect(out.ips[0]?.version).toBe('4');
      else expect(out.ips[0]).not.toHaveProperty('version');
      // libcni passes the cached result in the configuration's version: this ADD's output.
      const chk = await f.cni('CHECK', 'n1', a, { conf: { ...conf, prevResult: r.out } });
      expect(chk.code).toBe(v === '0.3.1' ? 1 : 0);
      expect((await f.cni('DEL', 'n1', a, { conf })).code).toBe(0);
    });
  }

  it('VERSION lists the supported versions', async () => {
    const r = await f.cni('VERSION', 'n1', undefined, { conf: { cniVersion: '1.1.0' } });
    expect(r.out).toEqual({
      cniVersion: '1.1.0',
      supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
    });
  });

  it('STATUS succeeds with a reachable store and fails with code 50 otherwise', async () => {
    expect((await f.cni('STATUS', 'n1', undefined)).code).toBe(0);
    const bad = await f.cni('STATUS', 'n1', undefined, {
      conf: f.conf('n1', { store: { type: 'etcd', endpoints: ['http://127.0.0.1:1'] } }),
    });
    expect(bad.code).toBe(1);
    expect((bad.out as { code: number }).code).toBe(50);
    // Whatever keeps ADD from working is "not ready" (50), not that failure's own code: a
    // damaged datastore file, a networks directory that does not parse.
    const dir = mkdtempSync(join(tmpdir(), 'tartan-status-'));
    try {
      writeFileSync(join(dir, 'damaged.db'), 'not a database');
      mkdirSync(join(dir, 'nets'));
      writeFileSync(join(dir, 'nets', 'bad.yaml'), 'kind: ClusterNetwork\nmetadata: { name: x\n');
      for (const [what, extra, why] of [
        [
          'damaged store',
          { store: { type: 'file', path: join(dir, 'damaged.db') } },
          /not a database/,
        ],
        ['bad networks file', { networksDir: join(dir, 'nets') }, /cannot parse .*bad\.yaml/],
      ] as const) {
        const r = await f.cni('STATUS', 'n1', undefined, { conf: f.conf('n1', extra) });
        expect(r.code, what).toBe(1);
        expect(r.out, what).toMatchObject({ code: 50, msg: expect.stringMatching(why) });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an etcd store needs tartan-etcd.cjs beside the binary: without it, code 7 naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tartan-lonely-'));
    try {
      copyFileSync(TARTAN, join(dir, 'tartan'));
      chmodSync(join(dir, 'tartan'), 0o755);
      const conf = f.conf('n1', {
        store: { type: 'etcd', endpoints: ['http://127.0.0.1:1'] },
        interfaces: [{ network: 'mgmt' }],
      });
      const r = await callCni({
        plugin: join(dir, 'tartan'),
        command: 'ADD',
        conf,
        netns: `/run/netns/${a}`,
        containerId: 'cid-lonely',
        ifname: 'eth0',
      });
      expect(r.code).toBe(1);
      expect(r.out).toMatchObject({ code: 7, details: 'ERR_CONFIG' });
      expect((r.out as { msg: string }).msg).toContain(`${dir}/tartan-etcd.cjs`);
      expect((await podLinks(a)).map((l) => l.ifname)).toEqual(['lo']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('GC removes attachments missing from cni.dev/valid-attachments and keeps the valid ones', async () => {
    const conf = f.conf('n1', { interfaces: [{ network: 'mgmt' }] });
    expect((await f.cni('ADD', 'n1', a, { conf })).code).toBe(0);
    expect((await f.cni('ADD', 'n1', b, { conf })).code).toBe(0);
    const gc = await f.cni('GC', 'n1', undefined, {
      conf: { ...conf, 'cni.dev/valid-attachments': [{ containerID: `cid-${b}`, ifname: 'eth0' }] },
    });
    expect(gc.code, gc.stdout).toBe(0);
    expect((await podLinks(a)).map((l) => l.ifname)).toEqual(['lo']);
    expect((await podLinks(b)).map((l) => l.ifname)).toContain('eth0');
    expect((await f.cni('DEL', 'n1', b, { conf })).code).toBe(0);
  });
});
