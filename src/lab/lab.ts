// The local lab: real network namespaces as nodes and pods, real interfaces, real traffic,
// every pod attached by the real `tartan` executable. up / status / down, or all three.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Network } from '../network/schema.js';
import { callCni } from './cni.js';
import type { Scenario } from './scenario.js';
import { addNetns, delNetns, listNetns, nsjson, ping, run, sh } from './sh.js';
import { buildTopology } from './topology.js';

export interface LabState {
  scenario: Scenario;
  prefix: string;
  dir: string;
  tartan: string;
  results: Record<string, unknown>;
}

export interface PodInterface {
  pod: string;
  node: string;
  ifname: string;
  network: string;
  type: string;
  addresses: string[];
  mac: string;
}

const LAB_ROOT = process.env.TARTAN_LAB_DIR ?? '/run/tartan-lab';

export const labPrefix = (s: Scenario) => `tt-lab-${s.name}`;
const stateFile = (name: string) => join(LAB_ROOT, name, 'lab.json');

export function loadLabState(name: string): LabState | undefined {
  const f = stateFile(name);
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as LabState) : undefined;
}

function pluginConf(st: LabState, node: string, pod: Scenario['pods'][number]) {
  return {
    cniVersion: '1.1.0',
    name: 'tartan-lab',
    type: 'tartan',
    networksDir: join(st.dir, 'networks'),
    store: { type: 'file', path: join(st.dir, 'ipam.db') },
    stateDir: join(st.dir, `state-${node}`),
    nodeName: node,
    interfaces: pod.interfaces,
  };
}

/** Whether this kernel can make VLAN sub-interfaces (8021q): try one on a scratch veth. */
async function hasVlan(): Promise<boolean> {
  const probe = 'tt-lab-vlprobe';
  try {
    await sh('ip', ['link', 'add', probe, 'type', 'veth', 'peer', 'name', `${probe}p`]);
    await sh('ip', ['link', 'add', 'link', probe, 'name', `${probe}.9`, 'type', 'vlan', 'id', '9']);
    return true;
  } catch {
    return false;
  } finally {
    await run('ip', ['link', 'del', probe], undefined, process.env);
  }
}

/** Drops VLAN networks (and the interfaces on them) when the kernel cannot make VLANs. */
async function fitToKernel(scenario: Scenario, networks: Network[], log: (s: string) => void) {
  const vlanNets = new Set(
    networks.filter((n) => n.spec.vlan !== undefined).map((n) => n.metadata.name),
  );
  if (vlanNets.size === 0 || (await hasVlan())) return { scenario, networks };
  log(
    `SKIPPED VLAN networks ${[...vlanNets].join(', ')}: this kernel has no 8021q module ` +
      '(VLAN parents are tested in the VM tier: npm run test:vm)',
  );
  const pods = scenario.pods
    .map((p) => ({ ...p, interfaces: p.interfaces.filter((i) => !vlanNets.has(i.network)) }))
    .filter((p) => p.interfaces.length > 0);
  const keep = new Set(pods.flatMap((p) => p.interfaces.map((i) => i.network)));
  const isolation = (scenario.isolation ?? []).filter((i) => pods.some((p) => p.name === i.from));
  return {
    scenario: {
      ...scenario,
      pods,
      isolation,
      networks: scenario.networks.filter((n) => !vlanNets.has(n.name) || keep.has(n.name)),
    },
    networks: networks.filter((n) => !vlanNets.has(n.metadata.name)),
  };
}

export async function labUp(
  fullScenario: Scenario,
  fullNetworks: Network[],
  tartan: string,
  log: (s: string) => void,
): Promise<LabState> {
  const { scenario, networks } = await fitToKernel(fullScenario, fullNetworks, log);
  if (loadLabState(scenario.name))
    throw new Error(`lab ${scenario.name} is already up; run "down" first`);
  const prefix = labPrefix(scenario);
  const dir = join(LAB_ROOT, scenario.name);
  mkdirSync(join(dir, 'networks'), { recursive: true });
  writeFileSync(
    join(dir, 'networks', 'networks.yaml'),
    networks.map((n) => stringify(n)).join('---\n'),
  );
  const st: LabState = { scenario, prefix, dir, tartan, results: {} };
  writeFileSync(stateFile(scenario.name), JSON.stringify(st, null, 2));
  log(`building ${scenario.nodes.length} nodes and the fabric (netns ${prefix}-*)`);
  const topo = await buildTopology(
    prefix,
    scenario.nodes.map((n) => ({ name: n.name, nics: n.nics })),
  );
  void topo;
  for (const pod of scenario.pods) {
    const ns = `${prefix}-${pod.name}`;
    await addNetns(ns);
    const t0 = process.hrtime.bigint();
    const r = await callCni({
      plugin: tartan,
      command: 'ADD',
      conf: pluginConf(st, pod.node, pod),
      node: `${prefix}-${pod.node}`,
      netns: `/run/netns/${ns}`,
      containerId: `lab-${pod.name}`,
      ifname: 'eth0',
    });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.code !== 0) throw new Error(`ADD of pod ${pod.name} failed: ${r.stdout.trim()}`);
    st.results[pod.name] = r.out;
    log(
      `pod ${pod.name} on ${pod.node}: ${pod.interfaces.length} interface(s) attached by tartan in ${ms.toFixed(1)} ms`,
    );
  }
  writeFileSync(stateFile(scenario.name), JSON.stringify(st, null, 2));
  return st;
}

/** Who got what, read back from the kernel (not from Tartan's answer). */
export async function labInterfaces(st: LabState): Promise<PodInterface[]> {
  const rows: PodInterface[] = [];
  const types = new Map(
    st.scenario.networks.map((n) => [
      n.name,
      n.spec.vxlan ? `${n.spec.type}/vxlan` : n.spec.vlan ? `${n.spec.type}/vlan` : n.spec.type,
    ]),
  );
  for (const pod of st.scenario.pods) {
    const ns = `${st.prefix}-${pod.name}`;
    const addrs = await nsjson<
      Array<{
        ifname: string;
        address?: string;
        addr_info: Array<{ local: string; prefixlen: number; scope: string }>;
      }>
    >(ns, 'addr', 'show');
    const res = st.results[pod.name] as
      { interfaces?: Array<{ name: string; sandbox?: string }> } | undefined;
    const names = (res?.interfaces ?? []).filter((i) => i.sandbox).map((i) => i.name);
    names.forEach((ifname, i) => {
      const l = addrs.find((a) => a.ifname === ifname);
      const network = pod.interfaces[i]?.network ?? '?';
      rows.push({
        pod: pod.name,
        node: pod.node,
        ifname,
        network,
        type: types.get(network) ?? '?',
        addresses: (l?.addr_info ?? [])
          .filter((a) => a.scope === 'global')
          .map((a) => `${a.local}/${a.prefixlen}`),
        mac: l?.address ?? '-',
      });
    });
  }
  return rows;
}

export interface Probe {
  from: string;
  to: string;
  network: string;
  expect: boolean;
  ok: boolean;
}

/** Every pair of pods that share a network pings each other's address on it; isolation pairs must fail. */
export async function labProbes(st: LabState, rows: PodInterface[]): Promise<Probe[]> {
  const out: Probe[] = [];
  const jobs: Array<Promise<void>> = [];
  for (const a of rows)
    for (const b of rows) {
      if (a.pod === b.pod || a.network !== b.network) continue;
      for (const addr of b.addresses) {
        const dst = addr.split('/')[0]!;
        if (!a.addresses.some((x) => x.includes(':') === dst.includes(':'))) continue;
        jobs.push(
          ping(`${st.prefix}-${a.pod}`, dst, 2).then((ok) => {
            out.push({ from: a.pod, to: dst, network: a.network, expect: true, ok });
          }),
        );
      }
    }
  for (const iso of st.scenario.isolation ?? [])
    jobs.push(
      ping(`${st.prefix}-${iso.from}`, iso.to, 1).then((ok) => {
        out.push({ from: iso.from, to: iso.to, network: '(isolation)', expect: false, ok: !ok });
      }),
    );
  await Promise.all(jobs);
  return out.sort((x, y) => (x.network + x.from + x.to).localeCompare(y.network + y.from + y.to));
}

export async function labDown(name: string, log: (s: string) => void): Promise<string[]> {
  const st = loadLabState(name);
  const prefix = st?.prefix ?? `tt-lab-${name}`;
  if (st) {
    for (const pod of [...st.scenario.pods].reverse()) {
      const r = await callCni({
        plugin: st.tartan,
        command: 'DEL',
        conf: pluginConf(st, pod.node, pod),
        node: `${prefix}-${pod.node}`,
        netns: `/run/netns/${prefix}-${pod.name}`,
        containerId: `lab-${pod.name}`,
        ifname: 'eth0',
      });
      if (r.code !== 0) log(`DEL of pod ${pod.name} failed: ${r.stdout.trim()}`);
    }
  }
  for (const ns of await listNetns(prefix)) await delNetns(ns);
  rmSync(join(LAB_ROOT, name), { recursive: true, force: true });
  return listNetns(prefix);
}

export function table(headers: string[], rows: string[][]): string {
  const w = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(w[i]!))
      .join('  ')
      .trimEnd();
  return [line(headers), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}
