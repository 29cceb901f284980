// Multi-process IPAM stress: several processes act as nodes (Bun children running
// fixtures/ipam-node.ts) and allocate and release concurrently against a real etcd and
// against one SQLite file. One of them is killed with SIGKILL in the middle of its work. GC
// then runs twice, a grace period apart, with the handles the survivors report as live; the
// raw store must then hold exactly the survivors' addresses: no duplicates, no leaks.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { auditIpam, createIpam } from '../../src/ipam/index.js';
import type { NetworkSpec } from '../../src/network/schema.js';
import { createEtcdStore } from '../../src/store/etcd.js';
import { createFileStore } from '../../src/store/file.js';
import type { Store } from '../../src/store/types.js';
import { startEtcd } from '../harness/etcd.js';
import type { NodeConfig } from './fixtures/ipam-node.js';

const ROOT = resolve(import.meta.dirname, '../..');
const BUN = join(ROOT, 'node_modules/.bin/bun');
const CHILD = join(ROOT, 'test/services/fixtures/ipam-node.ts');
const NODES = 4;
const GRACE_MS = 60_000;

// /25 in /29 blocks: 16 blocks for 4 nodes with up to 4 x 7 live pods each, so blocks run
// out and nodes borrow; IPv6 in /125 blocks alongside.
const spec: NetworkSpec = {
  type: 'bridge',
  ipv4: { cidr: '10.77.0.0/25', gateway: '10.77.0.1', blockPrefix: 29 },
  ipv6: { cidr: 'fd00:77::/64', blockPrefix: 125 },
};
const fixed = ['10.77.0.100', '10.77.0.101', '10.77.0.102', '10.77.0.103'];

interface Child {
  proc: ChildProcess;
  lines: Array<{
    t: string;
    h?: string;
    live?: Record<string, string[]>;
    error?: string;
    borrowed?: boolean;
  }>;
  exited: Promise<number | string | null>;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function startNode(cfg: NodeConfig): Child {
  const proc = spawn(BUN, [CHILD, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const child: Child = {
    proc,
    lines: [],
    exited: new Promise((r) => proc.once('exit', (code, sig) => r(code ?? sig))),
  };
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: proc.stdout! }).on('line', (l) => child.lines.push(JSON.parse(l)));
  cleanups.push(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await child.exited;
    if (stderr.trim()) console.error(`${cfg.node} stderr:\n${stderr}`);
  });
  return child;
}

async function stress(
  kind: 'etcd' | 'file',
  open: () => Promise<Store>,
  storeCfg: NodeConfig['store'],
) {
  const network = `stress-${kind}`;
  const children = Array.from({ length: NODES }, (_, i) =>
    startNode({
      store: storeCfg,
      network,
      spec,
      node: `node-${i}`,
      workers: 4,
      opsPerWorker: 150,
      fixed,
      maxLive: 6,
    }),
  );
  // Kill node-0 once it is well into its work and holds addresses (it is then always inside
  // some operation): they are what GC must reclaim.
  const victim = children[0]!;
  const count = (t: string) => victim.lines.filter((l) => l.t === t).length;
  const deadline = Date.now() + 60_000;
  while (
    (count('alloc') + count('release') < 60 || count('alloc') - count('release') < 6) &&
    Date.now() < deadline
  )
    await new Promise((r) => setTimeout(r, 1));
  victim.proc.kill('SIGKILL');
  expect(await victim.exited).toBe('SIGKILL');
  const codes = await Promise.all(children.slice(1).map((c) => c.exited));
  expect(codes).toEqual(children.slice(1).map(() => 0));
  for (const c of children) expect(c.lines.filter((l) => l.t === 'error')).toEqual([]);

  const survivors = new Map<string, string[]>();
  for (const c of children.slice(1)) {
    const done = c.lines.find((l) => l.t === 'done');
    for (const [h, a] of Object.entries(done!.live!)) survivors.set(h, a);
  }
  const valid = [...survivors.keys()].map((h) => ({
    containerId: h.split('/')[0]!,
    ifname: 'eth0',
  }));
  const victimHeld =
    victim.lines.filter((l) => l.t === 'alloc').length -
    victim.lines.filter((l) => l.t === 'release').length;

  const store = await open();
  cleanups.push(() => store.close());
  const ipam = createIpam(store);
  const all = async () => auditIpam(await store.list(''));
  const before = await all();
  // The killed node left addresses behind.
  expect(before.held.length).toBeGreaterThan(survivors.size * 2);

  const t0 = Date.now();
  const first = await ipam.gc({ network, spec, valid, graceMs: GRACE_MS, now: t0 });
  const early = await ipam.gc({ network, spec, valid, graceMs: GRACE_MS, now: t0 + GRACE_MS - 1 });
  const second = await ipam.gc({ network, spec, valid, graceMs: GRACE_MS, now: t0 + GRACE_MS });
  expect(first.released).toBe(0);
  expect(early).toEqual({ marked: 0, released: 0 });
  expect(second.released).toBe(first.marked);
  expect(first.marked).toBe(before.held.length - survivors.size * 2);

  const after = await all();
  expect(after.duplicates).toEqual([]);
  expect(after.overlaps).toEqual([]);
  expect(after.misplaced).toEqual([]);
  expect(after.corrupt).toEqual([]);
  // Exactly the survivors' addresses, each under its own handle: nothing leaked, nothing lost.
  const held = after.held.map((h) => `${h.handle} ${h.address}`).sort();
  const want = [...survivors].flatMap(([h, a]) => a.map((x) => `${h} ${x}`)).sort();
  expect(held).toEqual(want);
  expect(after.held.every((h) => h.gcMark === undefined)).toBe(true);
  // Nodes ran out of blocks and borrowed from one another's (fixed addresses aside).
  expect(children.some((c) => c.lines.some((l) => l.borrowed))).toBe(true);

  for (const h of survivors.keys())
    await ipam.release({ network, spec, containerId: h.split('/')[0]!, ifname: 'eth0' });
  expect((await all()).held).toEqual([]);
  const ops = children.map((c) => c.lines.length);
  if (process.env.IPAM_STRESS_VERBOSE)
    console.log(kind, {
      ops,
      first,
      second,
      survivors: survivors.size,
      victimHeld,
      errors: children.slice(1).map((c) => c.lines.at(-1)),
    });
  return { gc: { first, second }, survivors: survivors.size, victimHeld };
}

describe('IPAM stress: processes as nodes, one killed mid-operation', () => {
  it('etcd: no duplicates, and no leaks after two GC observations', async () => {
    const etcd = await startEtcd();
    cleanups.push(() => etcd.stop());
    const r = await stress('etcd', () => createEtcdStore({ endpoints: [etcd.endpoint] }), {
      type: 'etcd',
      endpoint: etcd.endpoint,
    });
    expect(r.gc.second.released).toBeGreaterThan(0);
  });

  it('file store (SQLite): no duplicates, and no leaks after two GC observations', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tartan-ipam-stress-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'ipam.db');
    const r = await stress('file', () => createFileStore(path), { type: 'file', path });
    expect(r.gc.second.released).toBeGreaterThan(0);
  });
});
