// IPAM benchmark (numbers, not verdicts): allocations per second and latency for 1, 10 and
// 50 simulated nodes (one async worker per node, each with its own Ipam instance as each
// node's agent would have), on the file store and on a real etcd, for the sharded IPAM and
// for the single-object baseline (below). Afterwards the raw store is read back and every
// returned address is checked: held by exactly its handle, never twice.
// Run: node_modules/.bin/bun bench/ipam.ts   (or the bundled dist/bench-ipam.js under Node)
// Env: IPAM_BENCH_ALLOCS (default 2000 per configuration), IPAM_BENCH_REPEAT (default 3).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TartanError } from '../src/cni/errors.js';
import { auditIpam, createIpam } from '../src/ipam/index.js';
import { nextIn } from '../src/ipam/intervals.js';
import { formatIp } from '../src/ipam/ip.js';
import { parseRange } from '../src/ipam/range.js';
import { CONFLICT, retrying, type RetryPolicy } from '../src/ipam/retry.js';
import type { NetworkSpec, Range } from '../src/network/schema.js';
import { createEtcdStore } from '../src/store/etcd.js';
import { createFileStore } from '../src/store/file.js';
import type { Store } from '../src/store/types.js';
import { startEtcd } from '../test/harness/etcd.js';
import { startKube } from '../test/harness/kube.js';
import { ensureNamespace, installCrds } from '../src/k8s/apply.js';
import { createKubernetesStore } from '../src/store/kubernetes.js';
import { plotResult } from './plot.js';
import { printTable, quantile, round } from './stats.js';

let TOTAL = Number(process.env.IPAM_BENCH_ALLOCS ?? 2000);
const NODE_COUNTS = [1, 10, 50];
const MAX_RETRIES = 20;
let REPEAT = Number(process.env.IPAM_BENCH_REPEAT ?? 3);
// The Kubernetes store is ~10x slower per write (an API server round trip per CAS): its
// column runs fewer allocations, once, to keep the benchmark's run time reasonable.
const K8S_TOTAL = Number(process.env.IPAM_BENCH_K8S_ALLOCS ?? 300);
const runtime = process.versions.bun ? `bun ${process.versions.bun}` : `node ${process.version}`;
const spec: NetworkSpec = {
  type: 'bridge',
  ipv4: { cidr: '10.128.0.0/16', gateway: '10.128.0.1' },
};

// The single-object baseline: the whole pool is ONE record holding every allocation, written
// with compare-and-swap, as DANM (the DanmNet's allocation bitmap) and Whereabouts (one
// IPPool object with an `allocations` map) store it. Same range parsing, same lowest-free
// choice, same bounded jittered retry policy as the sharded IPAM, so the difference measured
// is the data layout alone.
interface Pool {
  /** offset from the network address -> handle, like Whereabouts' allocations map. */
  allocs: Record<string, string>;
}

export function createBaselineIpam(store: Store, policy: RetryPolicy) {
  return {
    async allocate(network: string, range: Range, handle: string): Promise<string> {
      const r = parseRange(range, 4, `network ${network}`);
      const key = `baseline/${network}/pool`;
      return retrying(policy, `baseline ${network}`, async () => {
        const e = await store.get<Pool>(key);
        const pool = e?.value ?? { allocs: {} };
        // Whereabouts also scans for the pod's existing allocation first (idempotence).
        for (const [off, h] of Object.entries(pool.allocs))
          if (h === handle) return formatIp(r.base + BigInt(off), 4);
        let cursor = r.base;
        for (;;) {
          const a = nextIn(r.usable, cursor);
          if (a === undefined)
            throw new TartanError('ERR_IPAM_EXHAUSTED', `baseline ${network}: full`);
          const off = String(a - r.base);
          if (pool.allocs[off] === undefined) {
            const next: Pool = { allocs: { ...pool.allocs, [off]: handle } };
            const rev = e ? await store.update(key, next, e.rev) : await store.create(key, next);
            return rev === undefined ? CONFLICT : formatIp(a, 4);
          }
          cursor = a + 1n;
        }
      });
    },
  };
}

interface Counted extends Store {
  reads: number;
  writes: number;
}

/** Counts store round trips, so the table shows what one allocation costs. */
function counted(s: Store): Counted {
  const c = { reads: 0, writes: 0 } as Counted;
  return Object.assign(c, {
    kind: s.kind,
    get: (k: string) => (c.reads++, s.get(k)),
    list: (p: string) => (c.reads++, s.list(p)),
    create: (k: string, v: unknown) => (c.writes++, s.create(k, v)),
    update: (k: string, v: unknown, r: string) => (c.writes++, s.update(k, v, r)),
    delete: (k: string, r: string) => (c.writes++, s.delete(k, r)),
    close: () => s.close(),
  }) as Counted;
}

// sharded: the IPAM as an agent runs it (node cache on); sharded-nocache: as a fresh CNI
// process runs it (every allocation lists the node's records first); baseline: one object.
type Design = 'sharded' | 'sharded-nocache' | 'baseline';
interface Result {
  store: string;
  design: Design;
  nodes: number;
  ok: number;
  total: number;
  errors: Record<string, number>;
  allocsPerS: number;
  p50: number;
  p99: number;
  /** p99 without each node's first allocation (which claims the node's first block). */
  p99Warm: number;
  readsPerAlloc: number;
  writesPerAlloc: number;
  /** handle -> address as returned to the caller, checked against the raw store later. */
  returned: Map<string, string>;
  network: string;
}

async function run(raw: Store, design: Design, nodes: number, network: string): Promise<Result> {
  const store = counted(raw);
  const lat: number[] = [];
  const warm: number[] = [];
  const errors: Record<string, number> = {};
  const returned = new Map<string, string>();
  const policy = {
    maxRetries: MAX_RETRIES,
    random: Math.random,
    sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
  };
  const start = performance.now();
  await Promise.all(
    Array.from({ length: nodes }, async (_, w) => {
      const node = `node-${w}`;
      const ipam = createIpam(store, { maxRetries: MAX_RETRIES, nodeCache: design === 'sharded' });
      const baseline = createBaselineIpam(store, policy);
      const count = Math.floor(TOTAL / nodes) + (w < TOTAL % nodes ? 1 : 0);
      for (let i = 0; i < count; i++) {
        const containerId = `${node}-c${i}`;
        const t0 = performance.now();
        try {
          const address =
            design !== 'baseline'
              ? (await ipam.allocate({ network, spec, node, containerId, ifname: 'eth0' }))[0]!
                  .address
              : await baseline.allocate(network, spec.ipv4!, `${containerId}/eth0`);
          lat.push(performance.now() - t0);
          if (i > 0) warm.push(lat.at(-1)!);
          returned.set(`${containerId}/eth0`, address);
        } catch (e) {
          const code = (e as { code?: string }).code ?? String(e);
          errors[code] = (errors[code] ?? 0) + 1;
        }
      }
    }),
  );
  const secs = (performance.now() - start) / 1000;
  const ok = lat.length;
  return {
    store: raw.kind,
    design,
    nodes,
    ok,
    total: TOTAL,
    errors,
    allocsPerS: round(ok / secs, 0),
    p50: round(quantile(lat, 0.5)),
    p99: round(quantile(lat, 0.99)),
    p99Warm: round(quantile(warm, 0.99)),
    readsPerAlloc: round(store.reads / Math.max(ok, 1)),
    writesPerAlloc: round(store.writes / Math.max(ok, 1)),
    returned,
    network,
  };
}

/** From the raw store: addresses held twice, and returned addresses the store does not hold. */
async function verify(
  store: Store,
  results: Result[],
): Promise<{ duplicates: number; lost: number }> {
  const all = await store.list('');
  const audit = auditIpam(all);
  let duplicates = audit.duplicates.length + audit.overlaps.length;
  let lost = 0;
  const held = new Map(audit.held.map((h) => [`${h.network} ${h.handle}`, h.address]));
  for (const r of results) {
    const seen = new Set<string>();
    for (const a of r.returned.values())
      if (seen.has(a)) duplicates++;
      else seen.add(a);
    if (r.design !== 'baseline') {
      for (const [h, a] of r.returned) if (held.get(`${r.network} ${h}`) !== a) lost++;
    } else {
      const pool = all.find((e) => e.key === `baseline/${r.network}/pool`)?.value as
        { allocs: Record<string, string> } | undefined;
      const byHandle = new Map(Object.values(pool?.allocs ?? {}).map((h) => [h, true]));
      for (const h of r.returned.keys()) if (!byHandle.has(h)) lost++;
      const handles = Object.values(pool?.allocs ?? {});
      duplicates += handles.length - new Set(handles).size;
    }
  }
  return { duplicates, lost };
}

async function benchStore(
  store: Store,
): Promise<{ results: Result[]; duplicates: number; lost: number }> {
  await run(store, 'sharded', 10, 'warmup'); // JIT, connections, first blocks
  // The machine is shared and noisy: the sharded designs run REPEAT times, interleaved, and
  // the run with the median rate is reported (every run is checked against the store).
  const runs: Result[] = [];
  const results: Result[] = [];
  for (const nodes of NODE_COUNTS) {
    const reps: Record<string, Result[]> = { sharded: [], 'sharded-nocache': [] };
    for (let i = 0; i < REPEAT; i++)
      for (const design of ['sharded', 'sharded-nocache'] as const) {
        const r = await run(store, design, nodes, `bench-${design}-${nodes}-${i}`);
        reps[design]!.push(r);
        runs.push(r);
      }
    for (const list of Object.values(reps)) {
      const median = [...list].sort((a, b) => a.allocsPerS - b.allocsPerS)[list.length >> 1]!;
      results.push(median);
      console.error(
        `  ${store.kind} ${median.design} ${nodes} nodes: ${median.allocsPerS} allocs/s`,
      );
    }
  }
  for (const nodes of NODE_COUNTS) {
    const r = await run(store, 'baseline', nodes, `bench-baseline-${nodes}`);
    results.push(r);
    runs.push(r);
    console.error(`  ${store.kind} baseline ${nodes} nodes: ${r.allocsPerS} allocs/s`);
  }
  const order = (r: Result) =>
    ['sharded', 'sharded-nocache', 'baseline'].indexOf(r.design) * 1000 + r.nodes;
  results.sort((a, b) => order(a) - order(b));
  return { results, ...(await verify(store, runs)) };
}

const all: Result[] = [];
let duplicates = 0;
let lost = 0;
const dir = await mkdtemp(join(tmpdir(), 'tartan-bench-ipam-'));
try {
  const file = await createFileStore(join(dir, 'ipam.db'));
  const f = await benchStore(file);
  await file.close();
  all.push(...f.results);
  duplicates += f.duplicates;
  lost += f.lost;
} finally {
  await rm(dir, { recursive: true, force: true });
}
const etcd = await startEtcd();
try {
  const store = await createEtcdStore({ endpoints: [etcd.endpoint] });
  const e = await benchStore(store);
  await store.close();
  all.push(...e.results);
  duplicates += e.duplicates;
  lost += e.lost;
} finally {
  await etcd.stop();
}
const kube = await startKube();
try {
  const admin = kube.client();
  await installCrds(admin);
  await ensureNamespace(admin, 'tartan-system');
  const store = await createKubernetesStore({
    url: kube.url,
    ca: kube.ca,
    cert: kube.clientCert,
    key: kube.clientKey,
  });
  const [t, r] = [TOTAL, REPEAT];
  TOTAL = K8S_TOTAL;
  REPEAT = 1;
  try {
    const k = await benchStore(store);
    all.push(...k.results);
    duplicates += k.duplicates;
    lost += k.lost;
  } finally {
    [TOTAL, REPEAT] = [t, r];
    await store.close();
  }
} finally {
  await kube.stop();
}

console.log(
  `\nIPAM: ${TOTAL} allocations per configuration, ${runtime}, load average ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}`,
);
printTable(
  [
    'store',
    'design',
    'nodes',
    'allocs/s',
    'p50 ms',
    'p99 ms',
    'p99 warm',
    'reads/alloc',
    'writes/alloc',
    'failed',
  ],
  all.map((r) => [
    r.store,
    r.design,
    r.nodes,
    r.allocsPerS,
    r.p50,
    r.p99,
    r.p99Warm,
    r.readsPerAlloc,
    r.writesPerAlloc,
    Object.entries(r.errors)
      .map(([c, n]) => `${n} ${c}`)
      .join(', ') || '0',
  ]),
);
console.log(`duplicates: ${duplicates}, returned but not in the store: ${lost}`);

const json: Record<string, unknown> = {
  runtime,
  allocations_per_config: TOTAL,
  sharded_runs_per_config_median_reported: REPEAT,
  load_average: loadavg(),
  date: new Date().toISOString(),
  duplicates,
  lost,
};
for (const r of all) {
  const prefix = { sharded: '', 'sharded-nocache': 'nocache_', baseline: 'baseline_' }[r.design];
  const k = `${prefix}${r.store}_${r.nodes}_nodes`;
  json[`${k}_allocs_per_s`] = r.allocsPerS;
  json[`${k}_p50_ms`] = r.p50;
  json[`${k}_p99_ms`] = r.p99;
  json[`${k}_p99_warm_ms`] = r.p99Warm;
  json[`${k}_failed`] = r.total - r.ok;
  json[`${k}_allocations`] = r.total;
  json[`${k}_reads_per_alloc`] = r.readsPerAlloc;
  json[`${k}_writes_per_alloc`] = r.writesPerAlloc;
}
// The headline baseline figure is the etcd one, the store both designs are meant for.
json.baseline_50_nodes_allocs_per_s = json.baseline_etcd_50_nodes_allocs_per_s;
json.baseline_50_nodes_p99_ms = json.baseline_etcd_50_nodes_p99_ms;
// bench/ under Bun, dist/ when bundled: the repository root is one level up either way.
const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'bench', 'results');
await mkdir(out, { recursive: true });
await writeFile(join(out, 'ipam.json'), `${JSON.stringify(json, null, 2)}\n`);
console.log(`wrote ${join(out, 'ipam.json')}`);
console.log(`plot: ${plotResult(out, 'ipam')}`);
