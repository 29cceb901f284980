// `npm run bench:datapath`: pod-to-pod latency (sockperf TCP ping-pong, median of per-round
// medians) and throughput (iperf3) over a bare veth pair (the limit on one host), a Tartan
// macvlan network, a Tartan VXLAN network across two nodes, Tartan bridge + veth, and a
// NAT path (routed through a node with nft masquerade), all in one run.
import { writeNetworks } from '../src/lab/networks.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mustCni } from '../src/lab/cni.js';
import { addNetns, delNetns, listNetns, run, sh } from '../src/lab/sh.js';
import { buildTopology } from '../src/lab/topology.js';
import { plotResult } from './plot.js';
import { printTable, round } from './stats.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const TARTAN = join(root, 'dist', 'tartan');
const P = 'tt-bd';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);

interface Path {
  name: string;
  client: string; // netns
  server: string; // netns
  dst: string; // server address
}

function background(ns: string, cmd: string[]): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: 'ignore' });
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.pid === undefined) return;
  const done = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await done;
}

/** Runs a client command in p.client against a server started in p.server, stopped by PID. */
async function clientAgainstServer(p: Path, server: string[], client: string[]): Promise<string> {
  const srv = background(p.server, server);
  try {
    await new Promise((r) => setTimeout(r, 300)); // let the server bind
    return await sh('ip', ['netns', 'exec', p.client, ...client]);
  } finally {
    await stop(srv);
  }
}

async function latencyUs(p: Path): Promise<number> {
  const t = String(SECONDS);
  const out = await clientAgainstServer(
    p,
    ['sockperf', 'server', '-i', p.dst, '-p', '11111', '--tcp'],
    ['sockperf', 'ping-pong', '-i', p.dst, '-p', '11111', '--tcp', '-t', t],
  );
  const m = /percentile 50\.000 =\s*([\d.]+)/.exec(out);
  if (!m) throw new Error(`no sockperf median for ${p.name}: ${out.slice(-400)}`);
  return Number(m[1]);
}

async function throughputGbps(p: Path): Promise<number> {
  const out = await clientAgainstServer(
    p,
    ['iperf3', '-s', '-B', p.dst, '-p', '5201', '-1'],
    ['iperf3', '-c', p.dst, '-p', '5201', '-t', String(SECONDS), '-J'],
  );
  type Iperf = { end: { sum_received: { bits_per_second: number } } };
  return (JSON.parse(out) as Iperf).end.sum_received.bits_per_second / 1e9;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main() {
  if (process.getuid?.() !== 0) throw new Error('bench:datapath needs root');
  const dir = mkdtempSync(join(tmpdir(), 'tartan-bench-dp-'));
  const topo = await buildTopology(P, [
    {
      name: 'n1',
      nics: [
        { name: 'eth1', segment: 'lan' },
        { name: 'eth2', segment: 'und', address: '192.168.250.1/24' },
      ],
    },
    {
      name: 'n2',
      nics: [
        { name: 'eth1', segment: 'lan' },
        { name: 'eth2', segment: 'und', address: '192.168.250.2/24' },
      ],
    },
  ]);
  const nft = `${P}-nat`;
  try {
    const pods: Record<string, string> = {};
    for (const n of ['va', 'vb', 'ma', 'mb', 'xa', 'xb', 'ba', 'bb', 'na', 'nb', 'nr']) {
      pods[n] = `${P}-${n}`;
      await addNetns(pods[n]!);
    }
    // 1. bare veth pair: the physical limit here.
    await sh('ip', [
      'link',
      'add',
      'v0',
      'netns',
      pods.va!,
      'type',
      'veth',
      'peer',
      'name',
      'v1',
      'netns',
      pods.vb!,
    ]);
    await sh('ip', ['-n', pods.va!, 'addr', 'add', '10.240.0.1/24', 'dev', 'v0']);
    await sh('ip', ['-n', pods.vb!, 'addr', 'add', '10.240.0.2/24', 'dev', 'v1']);
    await sh('ip', ['-n', pods.va!, 'link', 'set', 'v0', 'up']);
    await sh('ip', ['-n', pods.vb!, 'link', 'set', 'v1', 'up']);

    // 2-4. Tartan networks, attached by the real binary.
    const nets = [
      { name: 'mv', spec: { type: 'macvlan', device: 'eth1', ipv4: { cidr: '10.241.0.0/24' } } },
      {
        name: 'vx',
        spec: {
          type: 'macvlan',
          device: 'eth2',
          vxlan: { vni: 2500, remotes: ['192.168.250.1', '192.168.250.2'] },
          ipv4: { cidr: '10.242.0.0/24' },
        },
      },
      { name: 'br', spec: { type: 'bridge', bridge: `${P}-br`, ipv4: { cidr: '10.243.0.0/24' } } },
    ];
    writeNetworks(join(dir, 'nets'), nets);
    const attach = async (pod: string, node: string, network: string, ip: string) =>
      mustCni({
        plugin: TARTAN,
        command: 'ADD',
        node: topo.nodes.get(node)!,
        netns: `/run/netns/${pod}`,
        containerId: `bench-${pod}`,
        ifname: 'eth0',
        conf: {
          cniVersion: '1.1.0',
          name: 'tartan',
          type: 'tartan',
          networksDir: join(dir, 'nets'),
          store: { type: 'file', path: join(dir, 'ipam.db') },
          stateDir: join(dir, `state-${node}`),
          nodeName: node,
          interfaces: [{ network, ip }],
        },
      });
    await attach(pods.ma!, 'n1', 'mv', '10.241.0.11');
    await attach(pods.mb!, 'n1', 'mv', '10.241.0.12');
    await attach(pods.xa!, 'n1', 'vx', '10.242.0.11');
    await attach(pods.xb!, 'n2', 'vx', '10.242.0.12');
    await attach(pods.ba!, 'n1', 'br', '10.243.0.11');
    await attach(pods.bb!, 'n1', 'br', '10.243.0.12');

    // 5. NAT: na -> router (nr) -> nb, masqueraded on the way out.
    await sh('ip', [
      'link',
      'add',
      'r0',
      'netns',
      pods.nr!,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      pods.na!,
    ]);
    await sh('ip', [
      'link',
      'add',
      'r1',
      'netns',
      pods.nr!,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      pods.nb!,
    ]);
    for (const [ns, dev, a] of [
      [pods.nr!, 'r0', '10.244.1.1/24'],
      [pods.nr!, 'r1', '10.244.2.1/24'],
      [pods.na!, 'eth0', '10.244.1.2/24'],
      [pods.nb!, 'eth0', '10.244.2.2/24'],
    ] as const) {
      await sh('ip', ['-n', ns, 'addr', 'add', a, 'dev', dev]);
      await sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    }
    await sh('ip', ['-n', pods.na!, 'route', 'add', 'default', 'via', '10.244.1.1']);
    await sh('ip', ['netns', 'exec', pods.nr!, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    await sh('ip', ['netns', 'exec', pods.nr!, 'nft', '-f', '-'], {
      input: `table ip ${nft} {\n chain post { type nat hook postrouting priority srcnat; oifname "r1" masquerade; }\n}\n`,
    });

    const paths: Path[] = [
      { name: 'bare veth pair', client: pods.va!, server: pods.vb!, dst: '10.240.0.2' },
      { name: 'tartan macvlan', client: pods.ma!, server: pods.mb!, dst: '10.241.0.12' },
      { name: 'tartan vxlan (2 nodes)', client: pods.xa!, server: pods.xb!, dst: '10.242.0.12' },
      { name: 'tartan bridge + veth', client: pods.ba!, server: pods.bb!, dst: '10.243.0.12' },
      { name: 'NAT (nft masquerade)', client: pods.na!, server: pods.nb!, dst: '10.244.2.2' },
    ];
    const lat = new Map<string, number[]>(paths.map((p) => [p.name, []]));
    const thr = new Map<string, number[]>(paths.map((p) => [p.name, []]));
    // Rounds interleave the paths so drift on a shared machine hits them alike.
    for (let r = 0; r < ROUNDS; r++)
      for (const p of paths) lat.get(p.name)!.push(await latencyUs(p));
    for (const p of paths) thr.get(p.name)!.push(await throughputGbps(p));

    const base = median(lat.get(paths[0]!.name)!);
    const baseT = median(thr.get(paths[0]!.name)!);
    const rows = paths.map((p) => {
      const l = median(lat.get(p.name)!);
      const t = median(thr.get(p.name)!);
      return [p.name, round(l, 2), round(l / base, 3), round(t, 2), round(t / baseT, 3)];
    });
    console.log(
      `\nPod-to-pod datapath, ${ROUNDS} rounds x ${SECONDS}s sockperf TCP ping-pong (median of round medians), iperf3 ${SECONDS}s\n`,
    );
    printTable(
      ['path', 'latency p50 (us)', 'ratio to bare', 'throughput (Gbit/s)', 'ratio to bare'],
      rows,
    );
    const val = (i: number, c: number) => rows[i]![c] as number;
    const out = {
      rounds: ROUNDS,
      seconds: SECONDS,
      bare_latency_us: val(0, 1),
      macvlan_latency_us: val(1, 1),
      vxlan_latency_us: val(2, 1),
      bridge_latency_us: val(3, 1),
      nat_latency_us: val(4, 1),
      macvlan_latency_ratio: val(1, 2),
      vxlan_latency_ratio: val(2, 2),
      bridge_latency_ratio: val(3, 2),
      nat_latency_ratio: val(4, 2),
      bare_throughput_gbps: val(0, 3),
      macvlan_throughput_gbps: val(1, 3),
      vxlan_throughput_gbps: val(2, 3),
      bridge_throughput_gbps: val(3, 3),
      nat_throughput_gbps: val(4, 3),
    };
    mkdirSync(join(root, 'bench', 'results'), { recursive: true });
    writeFileSync(
      join(root, 'bench', 'results', 'datapath.json'),
      JSON.stringify(out, null, 2) + '\n',
    );
    console.log(
      `\nwrote bench/results/datapath.json: macvlan_latency_ratio=${out.macvlan_latency_ratio} vxlan_latency_ratio=${out.vxlan_latency_ratio}`,
    );
    console.log(`plot: ${plotResult(join(root, 'bench', 'results'), 'datapath')}`);
  } finally {
    for (const ns of await listNetns(P)) await delNetns(ns);
    await topo.destroy();
    await run('ip', ['link', 'del', `${P}-br`], undefined, process.env);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
