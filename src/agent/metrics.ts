// Prometheus metrics of the agent. prom-client's index also loads its Pushgateway (https),
// cluster aggregation and Summary (tdigest) code, +9 MiB of RSS measured on Node 20 against
// +0.2 MiB for the four modules used here; the agent's memory target is 60 MiB, so they
// are loaded one by one (types still come from the package's declarations).
import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';

const require = createRequire(import.meta.url);
const Registry = require('prom-client/lib/registry') as typeof Prom.Registry;
const Counter = require('prom-client/lib/counter') as typeof Prom.Counter;
const Gauge = require('prom-client/lib/gauge') as typeof Prom.Gauge;
const Histogram = require('prom-client/lib/histogram') as typeof Prom.Histogram;

export interface PoolUsage {
  network: string;
  family: number;
  capacity: number;
  inUse: number;
}

export interface MetricsSources {
  gate: () => { running: number; queued: number };
  ready: () => boolean;
  pendingDels: () => number;
  pools: () => Promise<PoolUsage[]>;
}

export interface AgentMetrics {
  registry: Prom.Registry;
  observe(command: string, seconds: number, cniCode: number | undefined): void;
  parentRepair(action: 'created' | 'removed', n: number): void;
}

export function createMetrics(src: MetricsSources): AgentMetrics {
  const registry = new Registry();
  const duration = new Histogram({
    name: 'tartan_cni_request_duration_seconds',
    help: 'Time to serve a CNI call, queueing included, by command',
    labelNames: ['command'],
    // Kernel work makes an ADD 10-100 ms; the tail is datastore contention and delegates.
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const requests = new Counter({
    name: 'tartan_cni_requests_total',
    help: 'CNI calls served, by command and result',
    labelNames: ['command', 'result'],
    registers: [registry],
  });
  const errors = new Counter({
    name: 'tartan_cni_errors_total',
    help: 'CNI calls that failed, by command and CNI error code',
    labelNames: ['command', 'code'],
    registers: [registry],
  });
  const repairs = new Counter({
    name: 'tartan_host_parent_repairs_total',
    help: 'Host parent interfaces re-created (missing while in use) or removed (unused)',
    labelNames: ['action'],
    registers: [registry],
  });
  new Gauge({
    name: 'tartan_cni_requests_in_flight',
    help: 'CNI calls being served',
    registers: [registry],
    collect() {
      this.set(src.gate().running);
    },
  });
  new Gauge({
    name: 'tartan_cni_requests_queued',
    help: 'CNI calls waiting for a slot',
    registers: [registry],
    collect() {
      this.set(src.gate().queued);
    },
  });
  new Gauge({
    name: 'tartan_agent_ready',
    help: '1 when the agent accepts ADD',
    registers: [registry],
    collect() {
      this.set(src.ready() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'tartan_pending_dels',
    help: 'DELs queued on disk by the shim while the agent was down, not yet replayed',
    registers: [registry],
    collect() {
      this.set(src.pendingDels());
    },
  });
  new Gauge({
    name: 'tartan_agent_memory_bytes',
    help: 'Memory of the agent process: rss, heap_used, heap_total, external',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      const m = process.memoryUsage();
      this.set({ kind: 'rss' }, m.rss);
      this.set({ kind: 'heap_used' }, m.heapUsed);
      this.set({ kind: 'heap_total' }, m.heapTotal);
      this.set({ kind: 'external' }, m.external);
    },
  });
  // Both pool gauges come from one usage read per scrape (the registry collects metrics
  // concurrently, so the read is shared rather than ordered).
  let read: { at: number; p: Promise<PoolUsage[]> } | undefined;
  const pools = () => {
    if (!read || Date.now() - read.at > 1000) read = { at: Date.now(), p: src.pools() };
    return read.p;
  };
  for (const [name, help, pick] of [
    [
      'tartan_ipam_pool_capacity',
      'Addresses a network may hand out, by family',
      (u: PoolUsage) => u.capacity,
    ],
    [
      'tartan_ipam_pool_in_use',
      'Addresses allocated in a network, by family (cluster-wide)',
      (u: PoolUsage) => u.inUse,
    ],
  ] as const)
    new Gauge({
      name,
      help,
      labelNames: ['network', 'family'],
      registers: [registry],
      async collect() {
        const all = await pools();
        this.reset();
        for (const u of all) this.set({ network: u.network, family: String(u.family) }, pick(u));
      },
    });
  return {
    registry,
    observe(command, seconds, cniCode) {
      duration.observe({ command }, seconds);
      requests.inc({ command, result: cniCode === undefined ? 'ok' : 'error' });
      if (cniCode !== undefined) errors.inc({ command, code: String(cniCode) });
    },
    parentRepair(action, n) {
      if (n > 0) repairs.inc({ action }, n);
    },
  };
}
