// `npm run bench:agent`: the node agent's memory under pod churn. A "node" netns with a NIC,
// the agent running in it, and 110 pods (the kubelet's default max-pods) created and deleted
// through the real `tartan` shim for a while; the agent's RSS (VmRSS from /proc) is sampled
// throughout. Also: the shim's start-up beside the reference Go plugin, same client.
import { plotResult } from './plot.js';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENT_NODE_ENV, AGENT_NODE_FLAGS } from '../src/agent/launch.js';
import { writeNetworks } from '../src/lab/networks.js';
import { callCni, type CniCall } from '../src/lab/cni.js';
import { addNetns, delNetns, listNetns } from '../src/lab/sh.js';
import { buildTopology } from '../src/lab/topology.js';
import { printTable, quantile, round } from './stats.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// The shim the DaemonSet installs (scripts/build.mjs): every call here goes to the agent.
const TARTAN = join(root, 'dist', 'tartan-shim');
const AGENT = join(root, 'dist', 'tartan-agent.js');
const REF = '/usr/lib/cni/bridge';
const PODS = Number(process.env.BENCH_PODS ?? 110);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const PARALLEL = Number(process.env.BENCH_PARALLEL ?? 8);
const P = 'tt-ba';
// How the DaemonSet starts the agent (docs/adr/0006-agent-and-shim.md, memory).
const NODE_FLAGS = (process.env.BENCH_AGENT_NODE_FLAGS ?? AGENT_NODE_FLAGS.join(' '))
  .split(' ')
  .filter(Boolean);
// Another runtime for the same agent, e.g. BENCH_AGENT_CMD="node_modules/.bin/bun src/bin/tartan-agent.ts".
const AGENT_CMD = process.env.BENCH_AGENT_CMD?.split(' ').filter(Boolean);

// VmRSS counts the pages of the node binary it has touched (file-backed, shared with every
// Node process on the host, ~35-45 MiB); RssAnon is what the agent alone costs.
const status = (pid: number, field: 'VmRSS' | 'RssAnon'): number => {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
};
const rssMiB = (pid: number) => status(pid, 'VmRSS');

function fetchUnix(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.end();
  });
}
const get = async (socketPath: string, path: string) => (await fetchUnix(socketPath, path)).status;

/** The agent's own view of its memory (tartan_agent_memory_bytes), in MiB. */
async function memory(socketPath: string): Promise<Record<string, number>> {
  const { body } = await fetchUnix(socketPath, '/metrics');
  const out: Record<string, number> = {};
  for (const m of body.matchAll(/^tartan_agent_memory_bytes\{kind="(\w+)"\} (\d+)/gm))
    out[m[1]!] = round(Number(m[2]) / 1048576, 1);
  return out;
}

async function timed(c: CniCall): Promise<number> {
  const t0 = process.hrtime.bigint();
  const r = await callCni(c);
  if (r.code !== 0) throw new Error(`${c.command} failed: ${r.stdout} ${r.stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Runs fns with at most n in flight. */
async function pool<T>(n: number, items: T[], fn: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}

async function main() {
  if (process.getuid?.() !== 0) throw new Error('bench:agent needs root (network namespaces)');
  for (const f of [TARTAN, AGENT])
    if (!existsSync(f) && !(f === AGENT && AGENT_CMD))
      throw new Error(`${f} is missing: run node scripts/build.mjs`);
  const dir = mkdtempSync(join(tmpdir(), 'tartan-bench-agent-'));
  const topo = await buildTopology(P, [{ name: 'n1', nics: [{ name: 'eth1', segment: 's1' }] }]);
  const node = topo.nodes.get('n1')!;
  let agentPid = 0;
  try {
    const nets = [
      { name: 'mv', spec: { type: 'macvlan', device: 'eth1', ipv4: { cidr: '10.210.0.0/16' } } },
      { name: 'br', spec: { type: 'bridge', bridge: `${P}-br`, ipv4: { cidr: '10.211.0.0/16' } } },
    ];
    writeNetworks(join(dir, 'nets'), nets);
    const sock = join(dir, 'run', 'agent.sock');
    const http = join(dir, 'http.sock');
    const conf = (network: string) => ({
      cniVersion: '1.1.0',
      name: 'tartan',
      type: 'tartan',
      agentSocket: sock,
      networksDir: join(dir, 'nets'),
      store: { type: 'file', path: join(dir, 'ipam.db') },
      stateDir: join(dir, 'state'),
      nodeName: 'n1',
      interfaces: [{ network }],
    });
    const agent = spawn(
      'ip',
      [
        'netns',
        'exec',
        node,
        'env',
        ...AGENT_NODE_ENV,
        ...(AGENT_CMD ?? [process.execPath, ...NODE_FLAGS, AGENT]),
        '--socket',
        sock,
        '--metrics',
        http,
        '--state-dir',
        join(dir, 'state'),
        '--networks-dir',
        join(dir, 'nets'),
        '--store-path',
        join(dir, 'ipam.db'),
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    agentPid = agent.pid!;
    for (let i = 0; (await get(http, '/readyz')) !== 200; i++) {
      if (i > 300) throw new Error('agent not ready after 30 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const samples: number[] = [];
    const anon: number[] = [];
    const sample = () => {
      samples.push(rssMiB(agentPid));
      anon.push(status(agentPid, 'RssAnon'));
    };
    const sampler = setInterval(sample, 200);
    const rssStart = rssMiB(agentPid);

    // Every fourth pod on the bridge network: those calls take the host parent path.
    const pods = Array.from({ length: PODS }, (_, i) => ({
      ns: `${P}-p${i}`,
      net: i % 4 === 3 ? 'br' : 'mv',
      gen: 0,
    }));
    for (const p of pods) await addNetns(p.ns);
    const call = (p: (typeof pods)[number], command: 'ADD' | 'DEL'): CniCall => ({
      plugin: TARTAN,
      command,
      conf: conf(p.net),
      node,
      netns: `/run/netns/${p.ns}`,
      containerId: `bench-${p.ns}-${p.gen}`,
      ifname: 'eth0',
    });
    const adds: number[] = [];
    const dels: number[] = [];
    let ops = 0;
    const t0 = Date.now();
    await pool(PARALLEL, pods, async (p) => void adds.push(await timed(call(p, 'ADD'))));
    ops += pods.length;
    const rssFull = rssMiB(agentPid);
    // Churn: delete and re-create pods, keeping the node at ~PODS pods.
    let cycles = 0;
    while (Date.now() - t0 < SECONDS * 1000) {
      const batch = pods.filter((_, i) => (i + cycles * PARALLEL) % pods.length < PARALLEL);
      await pool(PARALLEL, batch, async (p) => {
        dels.push(await timed(call(p, 'DEL')));
        p.gen++;
        adds.push(await timed(call(p, 'ADD')));
      });
      ops += batch.length * 2;
      cycles++;
    }
    const rssChurned = rssMiB(agentPid);
    const memChurned = await memory(http);
    await pool(PARALLEL, pods, async (p) => void dels.push(await timed(call(p, 'DEL'))));
    ops += pods.length;
    const elapsed = (Date.now() - t0) / 1000;
    clearInterval(sampler);
    sample();
    const rssEnd = rssMiB(agentPid);

    // Start-up: the shim's VERSION (no agent involved), its STATUS (one round trip to the
    // agent), and the reference Go plugin's VERSION, same client.
    const startup = async (
      plugin: string,
      command: 'VERSION' | 'STATUS',
      c: Record<string, unknown>,
    ) => {
      const xs: number[] = [];
      for (let i = 0; i < 40; i++) xs.push(await timed({ plugin, command, conf: c, node }));
      return quantile(xs.slice(5), 0.5);
    };
    const shimVersion = await startup(TARTAN, 'VERSION', {
      cniVersion: '1.1.0',
      agentSocket: sock,
    });
    const shimStatus = await startup(TARTAN, 'STATUS', conf('mv'));
    const refVersion = await startup(REF, 'VERSION', { cniVersion: '1.0.0' });

    const out = {
      pods: PODS,
      agent_command: (AGENT_CMD ?? ['node', ...NODE_FLAGS, 'dist/tartan-agent.js']).join(' '),
      seconds: round(elapsed, 1),
      parallel: PARALLEL,
      ops,
      ops_per_s: round(ops / elapsed, 1),
      samples: samples.length,
      rss_mib_start: round(rssStart, 1),
      rss_mib_full: round(rssFull, 1),
      rss_mib_churned: round(rssChurned, 1),
      rss_mib_end: round(rssEnd, 1),
      rss_mib_max: round(Math.max(...samples), 1),
      rss_anon_mib_start: round(anon[0] ?? NaN, 1),
      rss_anon_mib_max: round(Math.max(...anon), 1),
      rss_anon_mib_end: round(anon.at(-1) ?? NaN, 1),
      heap_mib_after_churn: memChurned,
      add_p50_ms: round(quantile(adds, 0.5)),
      add_p90_ms: round(quantile(adds, 0.9)),
      del_p50_ms: round(quantile(dels, 0.5)),
      shim_version_p50_ms: round(shimVersion),
      shim_status_roundtrip_p50_ms: round(shimStatus),
      ref_version_p50_ms: round(refVersion),
    };
    console.log(
      `\nagent under churn: ${PODS} pods, ${out.ops} CNI calls in ${out.seconds} s, ${PARALLEL} in parallel\n`,
    );
    printTable(
      ['MiB', 'start', `${PODS} pods`, 'after churn', 'end', 'max', 'samples'],
      [
        [
          'VmRSS',
          out.rss_mib_start,
          out.rss_mib_full,
          out.rss_mib_churned,
          out.rss_mib_end,
          out.rss_mib_max,
          out.samples,
        ],
        [
          'RssAnon',
          out.rss_anon_mib_start,
          '',
          '',
          out.rss_anon_mib_end,
          out.rss_anon_mib_max,
          anon.length,
        ],
      ],
    );
    console.log(`agent's own figures after churn (MiB): ${JSON.stringify(memChurned)}`);
    console.log(
      `\nthrough the shim: ADD p50 ${out.add_p50_ms} ms (p90 ${out.add_p90_ms}), DEL p50 ${out.del_p50_ms} ms, ${out.ops_per_s} calls/s` +
        `\nstart-up p50: shim VERSION ${out.shim_version_p50_ms} ms, shim STATUS round trip ${out.shim_status_roundtrip_p50_ms} ms, reference bridge VERSION ${out.ref_version_p50_ms} ms`,
    );
    mkdirSync(join(root, 'bench', 'results'), { recursive: true });
    writeFileSync(
      join(root, 'bench', 'results', 'agent.json'),
      JSON.stringify(out, null, 2) + '\n',
    );
    console.log(`\nwrote bench/results/agent.json: rss_mib_max=${out.rss_mib_max} (target < 60)`);
    console.log(`plot: ${plotResult(join(root, 'bench', 'results'), 'agent')}`);
  } finally {
    if (agentPid) {
      try {
        process.kill(agentPid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const ns of await listNetns(P)) await delNetns(ns);
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  console.error(e.stack ?? e.message);
  process.exit(1);
});
