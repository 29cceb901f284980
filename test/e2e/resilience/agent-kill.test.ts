// Resilience through the real kubelet: TARTAN_E2E_CYCLES (default 200) pods created and
// deleted through the API, in batches, with Tartan as the shim in front of the node agent,
// while the agent is SIGKILLed at random moments and restarted. Every pod that ran must
// have had all its interfaces, no address may be held twice at once, and afterwards
// nothing may be left: no attachment record, no allocation, no host parent, no queued DEL,
// and no address in the default network's delegated IPAM (host-local).
// History: runs used to leave 2-4 host-local addresses per 200 cycles: the agent was killed
// while the default network's delegate ran its ADD, the plugin went on and leased, and the
// DEL found the interface recorded as "adding" without the delegate's answer and skipped
// the delegate. DEL now calls the delegate in that case too (see docs/adr/0007).
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pendingDir } from '../../../src/agent/pending.js';
import { openHostState } from '../../../src/attach/host-state.js';
import { createFileStore } from '../../../src/store/file.js';
import { borrowPointers, heldByPods } from '../../harness/ipam.js';
import { startHostAgent, type HostAgent } from '../agent-proc.js';
import { makeCniBinDir } from '../../harness/clients/containerd.js';
import {
  addrsIn,
  ipv4Of,
  linkDel,
  linkExists,
  mkTmp,
  pidAlive,
  removeDir,
  sh,
  sleep,
  tartanBinary,
  type IpAddrInfo,
} from '../../harness/clients/util.js';
import { CLUSTER_TIMEOUT_MS, startCluster, type Cluster } from '../../harness/kubelet.js';

const CYCLES = Number(process.env.TARTAN_E2E_CYCLES ?? 200);
const BATCH = 10;
const NS = 'tt-e2e-resilience';
const NODE = 'tt-e2e-node2';
const PARENT = 'tt-e2e-r0';
const UNDERLAY = 'tt-e2e-q0';
const BRIDGE = 'tt-e2e-rbr';
const LOCAL = '192.168.252.1';
const VNI = 4343;
const VXLAN_DEV = `tvx${VNI}`;

const v6Of = (addrs: IpAddrInfo[], ifname: string) =>
  (addrs.find((x) => x.ifname === ifname)?.addr_info ?? [])
    .filter((i) => i.family === 'inet6' && i.scope === 'global')
    .map((i) => i.local);

describe(`e2e resilience: ${CYCLES} pod cycles while the agent is SIGKILLed`, () => {
  let dir = '';
  let cluster: Cluster | undefined;
  let agent: HostAgent | undefined;
  let conflist = '';
  const state = () => join(dir, 'state');
  const storePath = () => join(dir, 'ipam.db');
  const agentArgs = ['--pending-ms', '500', '--reconcile-ms', '5000'];

  beforeAll(async () => {
    if (!Number.isInteger(CYCLES) || CYCLES < BATCH)
      throw new Error(`TARTAN_E2E_CYCLES must be an integer >= ${BATCH}`);
    const bin = tartanBinary();
    dir = mkTmp('tartan-e2e-res-');
    const confDir = join(dir, 'net.d');
    const nets = join(dir, 'networks');
    mkdirSync(confDir);
    mkdirSync(nets);
    for (const [a, b] of [
      [PARENT, 'tt-e2e-r1'],
      [UNDERLAY, 'tt-e2e-q1'],
    ] as const) {
      await linkDel(a);
      await sh('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
      await sh('ip', ['link', 'set', a, 'up']);
      await sh('ip', ['link', 'set', b, 'up']);
    }
    await sh('ip', ['addr', 'add', `${LOCAL}/24`, 'dev', UNDERLAY]);
    const net = (name: string, spec: Record<string, unknown>) =>
      writeFileSync(
        join(nets, `${name}.yaml`),
        stringify({
          apiVersion: 'tartan.io/v1alpha1',
          kind: 'ClusterNetwork',
          metadata: { name },
          spec,
        }),
      );
    net('cluster', {
      type: 'delegate',
      delegate: {
        cniVersion: '1.0.0',
        name: 'tt-e2e-rcluster',
        plugins: [
          {
            type: 'bridge',
            bridge: BRIDGE,
            isGateway: false,
            ipam: {
              type: 'host-local',
              ranges: [[{ subnet: '10.88.9.0/24' }]],
              dataDir: join(dir, 'host-local'),
            },
          },
        ],
      },
    });
    net('oam', {
      type: 'macvlan',
      device: PARENT,
      mode: 'bridge',
      ipv4: { cidr: '10.63.0.0/24' },
    });
    net('internal', {
      type: 'macvlan',
      device: UNDERLAY,
      mode: 'bridge',
      vxlan: { vni: VNI, port: 4789, remotes: [LOCAL, '192.168.252.2'] },
      ipv4: { cidr: '10.64.0.0/24', blockPrefix: 28 },
      ipv6: { cidr: 'fd00:64::/64' },
      routingTable: 163,
    });
    conflist = join(confDir, '10-tartan.conflist');
    writeFileSync(
      conflist,
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'tt-e2e-res',
        plugins: [
          {
            type: 'tartan',
            agentSocket: join(dir, 'agent.sock'),
            networksDir: nets,
            store: { type: 'file', path: storePath() },
            stateDir: state(),
            nodeName: NODE,
            defaultNetwork: 'cluster',
            interfaces: [
              { network: 'oam', ifname: 'net1' },
              { network: 'internal', ifname: 'net2', ip: 'dynamic', ip6: 'dynamic' },
            ],
          },
        ],
      }),
    );
    agent = await startHostAgent(dir, conflist, agentArgs);
    cluster = await startCluster({
      cniBinDir: makeCniBinDir(join(dir, 'bin'), { tartan: bin }),
      cniConfDir: confDir,
      nodeName: NODE,
    });
    await cluster.namespace(NS);
  }, CLUSTER_TIMEOUT_MS);

  afterAll(async () => {
    try {
      // The agent must run while the cluster deletes what is left (DELs).
      if (agent && !pidAlive(agent.pid)) agent = await startHostAgent(dir, conflist, agentArgs);
      await cluster?.stop();
    } finally {
      await agent?.stop();
      for (const l of [PARENT, UNDERLAY, BRIDGE, VXLAN_DEV]) await linkDel(l);
      if (dir) removeDir(dir);
    }
  }, CLUSTER_TIMEOUT_MS);

  it('every pod that ran had its interfaces; no address twice; afterwards nothing left', async () => {
    const c = cluster!;
    const t0 = Date.now();
    let kills = 0;
    let killing = true;
    const killer = (async () => {
      while (killing) {
        await sleep(500 + Math.random() * 3000);
        if (!killing) break;
        process.kill(agent!.pid, 'SIGKILL');
        kills++;
        while (pidAlive(agent!.pid)) await sleep(10);
        await sleep(Math.random() * 1500);
        agent = await startHostAgent(dir, conflist, agentArgs);
      }
    })();
    const problems: string[] = [];
    let ran = 0;
    try {
      for (let b = 0; b < Math.floor(CYCLES / BATCH); b++) {
        const names = Array.from({ length: BATCH }, (_, i) => `tt-e2e-r${b}-${i}`);
        await Promise.all(names.map((n) => c.createPod(NS, { metadata: { name: n } })));
        const pods = await Promise.all(names.map((n) => c.waitPodRunning(NS, n, 240_000)));
        const seen = new Map<string, string>();
        for (const pod of pods) {
          const sb = await c.sandbox(pod);
          const addrs = await addrsIn(sb.netns);
          const got = {
            eth0: ipv4Of(addrs, 'eth0'),
            net1: ipv4Of(addrs, 'net1'),
            net2: ipv4Of(addrs, 'net2'),
            net2v6: v6Of(addrs, 'net2'),
          };
          for (const [k, v] of Object.entries(got)) {
            if (v.length !== 1) problems.push(`${pod.metadata.name}: ${k} = ${JSON.stringify(v)}`);
            for (const a of v) {
              const other = seen.get(a);
              if (other) problems.push(`${a} on both ${other} and ${pod.metadata.name}`);
              seen.set(a, pod.metadata.name);
            }
          }
          ran++;
        }
        await Promise.all(names.map((n) => c.deletePod(NS, n, 240_000)));
      }
    } finally {
      killing = false;
      await killer;
    }
    // The agent is running again; queued DELs drain within its pending interval.
    const end = Date.now() + 60_000;
    let records = -1;
    for (;;) {
      const st = await openHostState(state());
      try {
        records = st.listAttachments().length;
      } finally {
        st.close();
      }
      const pending = pendingDir(state());
      const queued = existsSync(pending) ? readdirSync(pending).length : 0;
      if (records === 0 && queued === 0) break;
      if (Date.now() > end) {
        problems.push(`after 60 s: ${records} attachment records, ${queued} queued DELs`);
        break;
      }
      await sleep(500);
    }
    const st = await openHostState(state());
    try {
      const parents = st.listParents().map((p) => p.name);
      if (parents.length) problems.push(`parent records left: ${parents.join(', ')}`);
    } finally {
      st.close();
    }
    const store = await createFileStore(storePath());
    try {
      const entries = await store.list('');
      for (const h of heldByPods(entries)) problems.push(`allocation left: ${h}`);
      for (const k of borrowPointers(entries)) problems.push(`borrowed record left: ${k}`);
    } finally {
      await store.close();
    }
    if (linkExists(VXLAN_DEV)) problems.push(`orphan host parent ${VXLAN_DEV}`);
    const hl = join(dir, 'host-local', 'tt-e2e-rcluster');
    const hlLeft = existsSync(hl)
      ? readdirSync(hl).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f))
      : [];
    if (hlLeft.length) {
      // The delegate's own IPAM (the default network's host-local): name the containers and
      // what the agent logged about them, for the diagnosis.
      const log = readFileSync(join(dir, 'agent.log'), 'utf8').split('\n');
      for (const ip of hlLeft) {
        const cid = readFileSync(join(hl, ip), 'utf8').split(/\s/)[0] ?? '';
        const about = log
          .filter((l) => cid && l.includes(cid))
          .map((l) => {
            try {
              const j = JSON.parse(l) as Record<string, unknown>;
              return `${String(j.ts)} ${String(j.msg)} ${String(j.command ?? '')} ${String(j.ifname ?? '')} ${String(j.via ?? '')} ${String(j.code ?? j.error ?? '')}`;
            } catch {
              return l.slice(0, 200);
            }
          });
        problems.push(
          `host-local address left: ${ip} (container ${cid})\n    ${about.join('\n    ')}`,
        );
      }
    }
    console.log(
      `[resilience] ${ran} pods ran in ${Math.round((Date.now() - t0) / 1000)} s, agent SIGKILLed ${kills} times`,
    );
    expect(ran).toBe(Math.floor(CYCLES / BATCH) * BATCH);
    expect(kills).toBeGreaterThan(0);
    expect(problems).toEqual([]);
  }, 3_600_000);
});
