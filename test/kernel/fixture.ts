// A fresh world per test file: a fabric, "node" netns with NICs, pod netns, a networks
// directory, a store and node state in a temp dir. Everything carries the prefix so a
// leak is visible, and destroy() removes it all.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callCni, type CniOutcome } from '../../src/lab/cni.js';
import { writeNetworks } from '../../src/lab/networks.js';
import { addNetns, delNetns, nsjson } from '../../src/lab/sh.js';
import { buildTopology, type NodeSpec, type Topology } from '../../src/lab/topology.js';

export const TARTAN = join(import.meta.dirname, '../../dist/tartan');
/** The shim-only build the DaemonSet installs (scripts/build.mjs). */
export const TARTAN_SHIM = join(import.meta.dirname, '../../dist/tartan-shim');

export interface Fixture {
  prefix: string;
  topo: Topology;
  dir: string;
  netsDir: string;
  node(name: string): string;
  pod(name: string): Promise<string>;
  writeNetworks(nets: Parameters<typeof writeNetworks>[1]): void;
  conf(node: string, extra?: Record<string, unknown>): Record<string, unknown>;
  cni(
    command: 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION',
    node: string,
    pod: string | undefined,
    opts?: {
      containerId?: string;
      ifname?: string;
      conf?: Record<string, unknown> | string;
      args?: string;
      netns?: string;
      /** CNI_PATH; default /usr/lib/cni. */
      path?: string;
      /** Extra environment of the executable. */
      env?: Record<string, string>;
      /** The executable; default dist/tartan. */
      plugin?: string;
    },
  ): Promise<CniOutcome>;
  destroy(): Promise<void>;
}

let counter = 0;

export async function makeFixture(tag: string, nodes: NodeSpec[]): Promise<Fixture> {
  const prefix = `tt-${tag}${process.pid % 1000}${counter++}`;
  const dir = mkdtempSync(join(tmpdir(), `tartan-${tag}-`));
  const netsDir = join(dir, 'networks');
  const topo = await buildTopology(prefix, nodes);
  const pods: string[] = [];
  const f: Fixture = {
    prefix,
    topo,
    dir,
    netsDir,
    node: (n) => topo.nodes.get(n)!,
    async pod(name) {
      const ns = `${prefix}-${name}`;
      await addNetns(ns);
      pods.push(ns);
      return ns;
    },
    writeNetworks(nets) {
      rmSync(netsDir, { recursive: true, force: true });
      writeNetworks(netsDir, nets);
    },
    conf(node, extra = {}) {
      return {
        cniVersion: '1.1.0',
        name: 'tartan',
        type: 'tartan',
        networksDir: netsDir,
        store: { type: 'file', path: join(dir, 'ipam.db') },
        stateDir: join(dir, `state-${node}`),
        nodeName: node,
        ...extra,
      };
    },
    cni(command, node, pod, opts = {}) {
      return callCni({
        plugin: opts.plugin ?? TARTAN,
        command,
        conf: opts.conf ?? f.conf(node),
        node: f.node(node),
        ...(pod !== undefined || opts.netns !== undefined
          ? { netns: opts.netns ?? `/run/netns/${pod}` }
          : {}),
        containerId: opts.containerId ?? (pod ? `cid-${pod}` : 'cid-none'),
        ifname: opts.ifname ?? 'eth0',
        ...(opts.args !== undefined ? { args: opts.args } : {}),
        ...(opts.path !== undefined ? { path: opts.path } : {}),
        ...(opts.env !== undefined ? { env: opts.env } : {}),
      });
    },
    async destroy() {
      for (const p of pods) await delNetns(p);
      await topo.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return f;
}

export interface PodState {
  links: Array<{
    ifname: string;
    address?: string;
    flags: string[];
    mtu: number;
    linkinfo?: { info_kind?: string };
  }>;
  addrs: Array<{
    ifname: string;
    addr_info: Array<{ local: string; prefixlen: number; family: string; tentative?: boolean }>;
  }>;
}

export async function podLinks(ns: string) {
  return nsjson<PodState['links']>(ns, '-d', 'link', 'show');
}

export async function podAddrs(ns: string, dev: string): Promise<string[]> {
  const a = await nsjson<PodState['addrs']>(ns, 'addr', 'show', 'dev', dev);
  return (a[0]?.addr_info ?? [])
    .filter((x) => !x.local.startsWith('fe80'))
    .map((x) => `${x.local}/${x.prefixlen}`);
}
