// tartanctl against a running lab: the views read the real store and node state, `check`
// compares them with the kernel and reports drift, `topology` draws the picture.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { createIpam } from '../../src/ipam/index.js';
import { listNetns, run, sh } from '../../src/lab/sh.js';
import type { NetworkSpec } from '../../src/network/schema.js';
import { createFileStore } from '../../src/store/file.js';

const root = join(import.meta.dirname, '../..');
const lab = (...a: string[]) =>
  run('node', [join(root, 'dist/lab.js'), ...a], undefined, process.env);
const ctl = (...a: string[]) =>
  run('node', [join(root, 'dist/tartanctl.js'), ...a, '--lab', 'site'], undefined, process.env);
/** tartanctl on a host without a cluster: a networks directory and a file store. */
const hostCtl = (nets: string, path: string, ...a: string[]) =>
  run(
    'node',
    [join(root, 'dist/tartanctl.js'), ...a, '--networks-dir', nets, '--store-path', path],
    undefined,
    process.env,
  );

beforeAll(async () => {
  const up = await lab('up');
  expect(up.code, up.stdout + up.stderr).toBe(0);
});

afterAll(async () => {
  await lab('down');
  expect(await listNetns('tt-lab-')).toEqual([]);
});

describe('tartanctl', () => {
  it('networks: type, segment, capacity and usage', async () => {
    const r = await ctl('networks');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /internal\s+macvlan\s+eth2\s+vxlan 1000\s+10\.20\.0\.0\/24 fd00:20::\/64\s+v4: 254 v6: 2\^63\s+v4: 3 v6: 3/,
    );
    expect(r.stdout).toMatch(
      /oam\s+macvlan\/bridge\s+eth1\s+-\s+10\.10\.0\.0\/24\s+v4: 190\s+v4: 2/,
    );
  });

  it('pools: node-affine blocks', async () => {
    const r = await ctl('pools', 'internal');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/v4\s+10\.20\.0\.\d+\/28\s+node1\s+2/);
    expect(r.stdout).toMatch(/v4\s+10\.20\.0\.\d+\/28\s+node2\s+1/);
  });

  it('pod: interfaces, parents and policy rules as recorded', async () => {
    const r = await ctl('pod', 'amf');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/node1\s+eth0\s+oam\s+macvlan\s+10\.10\.0\.10\/24/);
    expect(r.stdout).toMatch(
      /int0\s+internal\s+macvlan\s+10\.20\.0\.\d+\/24 fd00:20::\S+\s+tvx1000\s+from 10\.20\.0\.\d+\/32 lookup 120/,
    );
  });

  it('check: clean, then reports a deleted address as drift', async () => {
    const ok = await ctl('check');
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout.match(/^ok /gm)).toHaveLength(7);
    await sh('ip', ['-n', 'tt-lab-site-smf', 'addr', 'del', '10.10.0.20/24', 'dev', 'eth0']);
    const drift = await ctl('check');
    expect(drift.code).toBe(1);
    expect(drift.stdout).toMatch(
      /DRIFT node2 lab-smf eth0 \(oam\): .*address 10\.10\.0\.20\/24 is missing/,
    );
  });

  it('check runs on a node with no networks directory (a cluster node)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tt-ctl-'));
    try {
      const args = ['check', '--state-dir', dir, '--store-path', join(dir, 'ipam.db')];
      const r = await run('node', [join(root, 'dist/tartanctl.js'), ...args], undefined, {
        ...process.env,
      });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      // A directory that is named must be there.
      const named = await run(
        'node',
        [join(root, 'dist/tartanctl.js'), ...args, '--networks-dir', join(dir, 'nope')],
        undefined,
        process.env,
      );
      expect(named.code).toBe(1);
      expect(named.stderr).toMatch(/cannot read networks directory/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('topology: DOT and SVG of nodes, pods and networks', async () => {
    const dot = '/tmp/tartan-topology-test.dot';
    const svg = '/tmp/tartan-topology-test.svg';
    try {
      expect((await ctl('topology', '--out', dot)).code).toBe(0);
      const text = readFileSync(dot, 'utf8');
      expect(text).toMatch(/subgraph "cluster_node1"/);
      expect(text).toMatch(/"pod:lab-amf" -- "net:oam" \[label="eth0 10\.10\.0\.10"\]/);
      expect((await ctl('topology', '--out', svg)).code).toBe(0);
      expect(existsSync(svg) && readFileSync(svg, 'utf8')).toMatch(/<svg/);
    } finally {
      rmSync(dot, { force: true });
      rmSync(svg, { force: true });
    }
  });

  it('refuses an unknown command or a missing argument before opening anything', async () => {
    // No lab and a networks directory that does not exist: the command line is the error.
    const bare = (...a: string[]) =>
      run(
        'node',
        [join(root, 'dist/tartanctl.js'), ...a, '--networks-dir', '/nonexistent/tt-ctl'],
        undefined,
        process.env,
      );
    const bogus = await bare('netwroks');
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toMatch(/unknown command "netwroks"/);
    const pools = await bare('pools');
    expect(pools.code).toBe(1);
    expect(pools.stderr).toMatch(/pools needs a network name/);
    const pod = await bare('pod');
    expect(pod.stderr).toMatch(/pod needs a pod name or container id/);
  });
});

describe('tartanctl claims and release-claim (a host without a cluster)', () => {
  it('lists a claim with its holder, refuses an unknown one, releases it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tt-ctl-claims-'));
    try {
      const spec: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.77.0.0/24' } };
      const nets = join(dir, 'networks');
      await sh('mkdir', [nets]);
      writeFileSync(
        join(nets, 'db.json'),
        JSON.stringify({
          apiVersion: 'tartan.io/v1alpha1',
          kind: 'ClusterNetwork',
          metadata: { name: 'db' },
          spec,
        }),
      );
      const path = join(dir, 'ipam.db');
      const store = await createFileStore(path);
      const ipam = createIpam(store);
      const alloc = (containerId: string, claim: string) =>
        ipam.allocate({ network: 'db', spec, node: 'h1', containerId, ifname: 'net1', claim });
      const [held] = await alloc('c-live', 'db-0');
      const [kept] = await alloc('c-gone', 'db-1');
      await ipam.release({ network: 'db', spec, containerId: 'c-gone', ifname: 'net1' });
      await store.close();
      const local = (...a: string[]) => hostCtl(nets, path, ...a);

      const list = await local('claims', 'db');
      expect(list.code, list.stderr).toBe(0);
      expect(list.stdout).toMatch(new RegExp(`db-0\\s+${held!.address}/24\\s+c-live/net1`));
      expect(list.stdout).toMatch(new RegExp(`db-1\\s+${kept!.address}/24\\s+-`));

      const unknown = await local('release-claim', 'db', 'db-9');
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toMatch(/network db has no claim "db-9"/);

      const released = await local('release-claim', 'db', 'db-1');
      expect(released.code, released.stderr).toBe(0);
      const after = await local('claims', 'db');
      expect(after.stdout).not.toMatch(/db-1/);
      // The address is free again: a fixed request for it succeeds.
      const again = await createFileStore(path);
      try {
        const [got] = await createIpam(again).allocate({
          network: 'db',
          spec,
          node: 'h1',
          containerId: 'c-new',
          ifname: 'net1',
          ip: kept!.address,
        });
        expect(got!.address).toBe(kept!.address);
      } finally {
        await again.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('tartanctl forget-ipam (a host without a cluster)', () => {
  it("lets a network's cidr change once it holds no address, and not before", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tt-ctl-forget-'));
    try {
      const before: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.78.0.0/24' } };
      const after: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.79.0.0/16' } };
      const nets = join(dir, 'networks');
      await sh('mkdir', [nets]);
      const path = join(dir, 'ipam.db');
      const local = (...a: string[]) => hostCtl(nets, path, ...a);
      const allocate = async (spec: NetworkSpec, containerId: string) => {
        const store = await createFileStore(path);
        try {
          return await createIpam(store).allocate({
            network: 'ran',
            spec,
            node: 'h1',
            containerId,
            ifname: 'net1',
          });
        } finally {
          await store.close();
        }
      };
      await allocate(before, 'c1');
      // The operator edits the cidr: refused while c1 holds its address, and the error says how.
      const refused = await allocate(after, 'c2').catch((e: Error) => e);
      expect((refused as Error).message).toMatch(/tartanctl forget-ipam ran/);
      const busy = await local('forget-ipam', 'ran');
      expect(busy.code).toBe(1);
      expect(busy.stderr).toMatch(/network ran still holds 1 address: delete its pods/);
      const store = await createFileStore(path);
      try {
        await createIpam(store).release({
          network: 'ran',
          spec: before,
          containerId: 'c1',
          ifname: 'net1',
        });
      } finally {
        await store.close();
      }
      const done = await local('forget-ipam', 'ran');
      expect(done.code, done.stderr).toBe(0);
      expect(done.stdout).toMatch(/removed \d+ IPAM records of network ran/);
      const [got] = await allocate(after, 'c2');
      expect(got!.address).toMatch(/^10\.79\./);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
