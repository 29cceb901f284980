// `npm run bench:cni`: ADD and DEL latency of the real `tartan` executable for a one- and a
// four-interface pod, beside the reference bridge + host-local plugins, same client (this
// process spawning the executable with CNI_* env and stdin), same host, same run.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { AGENT_NODE_ENV, AGENT_NODE_FLAGS } from '../src/agent/launch.js';
import { writeNetworks } from '../src/lab/networks.js';
import { callCni } from '../src/lab/cni.js';
import { addNetns, delNetns, listNetns, run, sh } from '../src/lab/sh.js';
import { plotResult } from './plot.js';
import { printTable, quantile, round } from './stats.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const TARTAN = join(root, 'dist', 'tartan');
// What the DaemonSet installs as `tartan`: the shim alone (scripts/build.mjs).
const TARTAN_SHIM = join(root, 'dist', 'tartan-shim');
const REF = '/usr/lib/cni/bridge';
const BUN = join(root, 'node_modules', '.bin', 'bun');
const RUNS = Number(process.env.BENCH_RUNS ?? 40);
const WARMUP = 5;
const P = 'tt-bn';

interface Series {
  add: number[];
  del: number[];
}

async function timed(c: Parameters<typeof callCni>[0]): Promise<number> {
  const t0 = process.hrtime.bigint();
  const r = await callCni(c);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.code !== 0) throw new Error(`${c.plugin} ${c.command} failed: ${r.stdout} ${r.stderr}`);
  return ms;
}

interface Variant {
  name: string;
  plugin: string;
  conf: Record<string, unknown>;
}

/**
 * ADD and DEL of each variant in turn, one pod at a time, round after round: the
 * reference and Tartan alternate, so the machine's drift (its speed changes by ~20%
 * between runs here) hits both alike.
 */
async function interleaved<const V extends readonly Variant[]>(
  variants: V,
): Promise<{ [K in keyof V]: Series }> {
  const out = variants.map((): Series => ({ add: [], del: [] }));
  for (let i = 0; i < WARMUP + RUNS; i++) {
    for (const [k, v] of variants.entries()) {
      const ns = `${P}-${v.name}-${i}`;
      await addNetns(ns);
      const call = {
        plugin: v.plugin,
        conf: v.conf,
        netns: `/run/netns/${ns}`,
        containerId: `bench-${v.name}-${i}`,
        ifname: 'eth0',
      };
      const add = await timed({ ...call, command: 'ADD' });
      const del = await timed({ ...call, command: 'DEL' });
      await delNetns(ns);
      if (i >= WARMUP) {
        out[k]!.add.push(add);
        out[k]!.del.push(del);
      }
    }
  }
  return out as { [K in keyof V]: Series };
}

/** One more ADD with TARTAN_TRACE=1: where a one-interface ADD spends its time. */
async function traced(plugin: string, conf: Record<string, unknown>): Promise<string> {
  const ns = `${P}-traced`;
  await addNetns(ns);
  const call = {
    plugin,
    conf,
    netns: `/run/netns/${ns}`,
    containerId: 'bench-traced',
    ifname: 'eth0',
  };
  const r = await callCni({ ...call, command: 'ADD', env: { TARTAN_TRACE: '1' } });
  await callCni({ ...call, command: 'DEL' });
  await delNetns(ns);
  return r.stderr
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const t = JSON.parse(l) as { trace: string; ms: number };
      return `${t.trace} @${t.ms} ms`;
    })
    .join(', ');
}

/** The node agent as a process of its own (flags as in the DaemonSet), stopped by PID. */
async function startAgent(
  dir: string,
  conf: Record<string, unknown>,
): Promise<{ socket: string; stop(): Promise<void> }> {
  const socket = join(dir, 'agent.sock');
  const child = spawn(
    'env',
    [
      ...AGENT_NODE_ENV,
      process.execPath,
      ...AGENT_NODE_FLAGS,
      join(root, 'dist', 'tartan-agent.js'),
      '--socket',
      socket,
      '--metrics',
      join(dir, 'metrics.sock'),
      '--state-dir',
      String(conf.stateDir),
      '--networks-dir',
      String(conf.networksDir),
      '--store-path',
      String((conf.store as { path: string }).path),
    ],
    { stdio: 'ignore' },
  );
  const stop = async () => {
    if (child.exitCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await gone;
  };
  for (let i = 0; i < 200; i++) {
    const r = await callCni({
      plugin: TARTAN_SHIM,
      command: 'STATUS',
      conf: { ...conf, agentSocket: socket },
    });
    if (r.code === 0) return { socket, stop };
    await new Promise((res) => setTimeout(res, 50));
  }
  await stop();
  throw new Error('the node agent did not become ready');
}

/**
 * bench/floor-add.ts as a binary, built with the flags dist/tartan is (scripts/bun-compile.json):
 * the kernel steps of a one-interface ADD from a fresh Bun process, and nothing else.
 */
async function buildFloor(dir: string): Promise<string> {
  const out = join(dir, 'floor-add');
  const flags = JSON.parse(
    readFileSync(join(root, 'scripts', 'bun-compile.json'), 'utf8'),
  ) as string[];
  await sh(BUN, [
    ...flags,
    '--external',
    'koffi',
    join(root, 'bench', 'floor-add.ts'),
    '--outfile',
    out,
  ]);
  return out;
}

async function startup(plugin: string): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < 30; i++)
    xs.push(await timed({ plugin, command: 'VERSION', conf: { cniVersion: '1.0.0' } }));
  return quantile(xs.slice(5), 0.5);
}

async function main() {
  if (process.getuid?.() !== 0) throw new Error('bench:cni needs root (network namespaces)');
  const dir = mkdtempSync(join(tmpdir(), 'tartan-bench-cni-'));
  try {
    // Host side: a veth pair stands for the NIC (macvlan parent), with an underlay address for VXLAN.
    await sh('ip', ['link', 'add', `${P}-nic`, 'type', 'veth', 'peer', 'name', `${P}-sw`]);
    await sh('ip', ['addr', 'add', '192.168.240.1/24', 'dev', `${P}-nic`]);
    await sh('ip', ['link', 'set', `${P}-nic`, 'up']);
    await sh('ip', ['link', 'set', `${P}-sw`, 'up']);
    const nets = [
      {
        name: 'b1',
        spec: { type: 'macvlan', device: `${P}-nic`, ipv4: { cidr: '10.201.0.0/16' } },
      },
      {
        name: 'b2',
        spec: {
          type: 'macvlan',
          device: `${P}-nic`,
          vxlan: { vni: 2402, remotes: ['192.168.240.2'] },
          ipv4: { cidr: '10.202.0.0/16' },
          ipv6: { cidr: 'fd00:202::/64' },
          routingTable: 202,
        },
      },
      { name: 'b3', spec: { type: 'bridge', bridge: `${P}-br1`, ipv4: { cidr: '10.203.0.0/16' } } },
      {
        name: 'b4',
        spec: {
          type: 'macvlan',
          device: `${P}-nic`,
          mode: 'private',
          ipv4: { cidr: '10.204.0.0/16' },
        },
      },
    ];
    writeNetworks(join(dir, 'nets'), nets);
    const tartanConf = (ifs: number) => ({
      cniVersion: '1.1.0',
      name: 'tartan',
      type: 'tartan',
      networksDir: join(dir, 'nets'),
      store: { type: 'file', path: join(dir, 'ipam.db') },
      stateDir: join(dir, 'state'),
      nodeName: 'bench',
      interfaces: nets.slice(0, ifs).map((n) => ({ network: n.name })),
    });
    const refConf = {
      cniVersion: '1.0.0',
      name: 'tt-bn-ref',
      type: 'bridge',
      bridge: `${P}-br0`,
      ipam: {
        type: 'host-local',
        ranges: [[{ subnet: '10.200.0.0/16' }]],
        dataDir: join(dir, 'host-local'),
      },
    };

    const floor = await buildFloor(dir);
    // What network b1 gives the pod (the floor plans its kernel steps from it), one address
    // per pod: each pod's netns is deleted before the next, so reuse is harmless.
    const floorConf = {
      device: `${P}-nic`,
      cidr: '10.201.0.0/16',
      address: '10.201.255.254',
      prefixLength: 16,
      gateway: '10.201.0.1',
    };
    const startTartan = await startup(TARTAN);
    const startShim = await startup(TARTAN_SHIM);
    const startRef = await startup(REF);
    // A node in service already has pods on these networks: a resident pod keeps the shared
    // host parents (VXLAN device, bridge) alive, so the series measure a pod's own ADD/DEL,
    // not the first-pod/last-pod parent creation and removal.
    const resident = {
      plugin: TARTAN,
      conf: tartanConf(4),
      netns: `/run/netns/${P}-resident`,
      containerId: 'bench-resident',
      ifname: 'eth0',
    };
    await addNetns(`${P}-resident`);
    await timed({ ...resident, command: 'ADD' });
    const [ref1, t1, t4, f1] = await interleaved([
      { name: 'ref', plugin: REF, conf: refConf },
      { name: 't1', plugin: TARTAN, conf: tartanConf(1) },
      { name: 't4', plugin: TARTAN, conf: tartanConf(4) },
      { name: 'f1', plugin: floor, conf: floorConf },
    ]);
    const phases = await traced(TARTAN, tartanConf(1));
    // The same pods through the shim and the node agent (how Tartan runs in a cluster, with
    // the binary the DaemonSet installs).
    const agent = await startAgent(dir, tartanConf(1));
    let ref2: Series;
    let a1: Series;
    let a4: Series;
    try {
      [ref2, a1, a4] = await interleaved([
        { name: 'ref2', plugin: REF, conf: refConf },
        { name: 'a1', plugin: TARTAN_SHIM, conf: { ...tartanConf(1), agentSocket: agent.socket } },
        { name: 'a4', plugin: TARTAN_SHIM, conf: { ...tartanConf(4), agentSocket: agent.socket } },
      ]);
    } finally {
      await agent.stop();
    }
    await timed({ ...resident, command: 'DEL' });
    const ref: Series = { add: [...ref1.add, ...ref2.add], del: [...ref1.del, ...ref2.del] };

    const refAdd = quantile(ref.add, 0.5);
    const row = (n: string, s: Series) => [
      n,
      round(quantile(s.add, 0.5)),
      round(quantile(s.add, 0.9)),
      round(quantile(s.del, 0.5)),
      round(quantile(s.del, 0.9)),
      round(quantile(s.add, 0.5) / refAdd),
    ];
    console.log(
      `\nCNI ADD/DEL latency in ms (${RUNS} runs each after ${WARMUP} warm-up; reference interleaved with Tartan, pod by pod)\n`,
    );
    printTable(
      ['plugin', 'ADD p50', 'ADD p90', 'DEL p50', 'DEL p90', 'ADD p50 / ref'],
      [
        row('reference bridge + host-local (1 if)', ref),
        row('tartan, 1 interface (macvlan)', t1),
        row('tartan, 4 interfaces (macvlan, vxlan dual-stack + PBR, bridge, macvlan)', t4),
        row('tartan shim + node agent, 1 interface', a1),
        row('tartan shim + node agent, 4 interfaces', a4),
        // Its DEL does nothing (the macvlan goes with the netns): no DEL figures.
        [...row('floor: a Bun binary doing only the 1-if kernel steps', f1)].fill('-', 3, 5),
      ],
    );
    console.log(
      `\nexecutable start-up (VERSION, p50): tartan ${round(startTartan)} ms, tartan-shim ${round(startShim)} ms, reference bridge ${round(startRef)} ms`,
    );
    console.log(`one traced tartan ADD (ms since exec): ${phases}`);
    const out = {
      runs: RUNS,
      ref_add_p50_ms: round(refAdd),
      ref_add_p90_ms: round(quantile(ref.add, 0.9)),
      ref_del_p50_ms: round(quantile(ref.del, 0.5)),
      tartan_1if_add_p50_ms: round(quantile(t1.add, 0.5)),
      tartan_1if_add_p90_ms: round(quantile(t1.add, 0.9)),
      tartan_1if_del_p50_ms: round(quantile(t1.del, 0.5)),
      tartan_4if_add_p50_ms: round(quantile(t4.add, 0.5)),
      tartan_4if_add_p90_ms: round(quantile(t4.add, 0.9)),
      tartan_4if_del_p50_ms: round(quantile(t4.del, 0.5)),
      add_p50_ratio_1if: round(quantile(t1.add, 0.5) / refAdd, 3),
      add_p50_ratio_4if: round(quantile(t4.add, 0.5) / refAdd, 3),
      agent_1if_add_p50_ms: round(quantile(a1.add, 0.5)),
      agent_4if_add_p50_ms: round(quantile(a4.add, 0.5)),
      agent_1if_del_p50_ms: round(quantile(a1.del, 0.5)),
      add_p50_ratio_1if_agent: round(quantile(a1.add, 0.5) / refAdd, 3),
      add_p50_ratio_4if_agent: round(quantile(a4.add, 0.5) / refAdd, 3),
      floor_add_p50_ms: round(quantile(f1.add, 0.5)),
      floor_add_p50_ratio: round(quantile(f1.add, 0.5) / refAdd, 3),
      startup_tartan_ms: round(startTartan),
      startup_tartan_shim_ms: round(startShim),
      startup_ref_ms: round(startRef),
    };
    mkdirSync(join(root, 'bench', 'results'), { recursive: true });
    writeFileSync(join(root, 'bench', 'results', 'cni.json'), JSON.stringify(out, null, 2) + '\n');
    console.log(`plot: ${plotResult(join(root, 'bench', 'results'), 'cni')}`);
    console.log(
      `\nwrote bench/results/cni.json: add_p50_ratio_1if=${out.add_p50_ratio_1if} add_p50_ratio_4if=${out.add_p50_ratio_4if}`,
    );
  } finally {
    for (const ns of await listNetns(P)) await delNetns(ns);
    for (const l of [`${P}-nic`, `${P}-br0`, `${P}-br1`, 'tvx2402'])
      await run('ip', ['link', 'del', l], undefined, process.env);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
