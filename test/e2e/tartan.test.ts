// End to end through the real kubelet: pods created through the API server, the kubelet
// drives containerd's CRI, CRI calls Tartan (the only plugin of the conflist) which gives
// each pod eth0 from a delegated default network (reference bridge + host-local), a
// macvlan interface with a fixed IP, and a macvlan interface on a VXLAN parent with dynamic
// IPv4 + IPv6 and policy routing. Everything is read back from the kernel; pods ping each
// other on every network; after deletion through the API nothing is left.
//
// Twice:
// - shim+agent, the way a cluster runs Tartan: the shim forwards to the node agent (a host
//   process with a kubeconfig), the networks are ClusterNetwork and TenantNetwork objects
//   in the API server and each pod asks for its interfaces in its tartan.io/interfaces
//   annotation; the agent publishes network-status and Attachment objects.
// - in-process, the `tartan` executable alone, without an agent or API access: network
//   files (one of them a TenantNetwork of the pods' namespace), and the same pod
//   annotations, which containerd hands to the plugin through the
//   io.kubernetes.cri.pod-annotations capability the conflist declares.
import { installCrds } from '../../src/k8s/apply.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHostState } from '../../src/attach/host-state.js';
import { reconcileOnce } from '../../src/controller/reconcile.js';
import { createIpam } from '../../src/ipam/index.js';
import { createFileStore } from '../../src/store/file.js';
import { borrowPointers, heldByPods } from '../harness/ipam.js';
import { startHostAgent, type HostAgent } from './agent-proc.js';
import { makeCniBinDir } from '../harness/clients/containerd.js';
import {
  addrsIn,
  ipv4Of,
  linkDel,
  linkExists,
  mkTmp,
  pingFrom,
  removeDir,
  run,
  sh,
  sleep,
  tartanBinary,
  type IpAddrInfo,
} from '../harness/clients/util.js';
import {
  CLUSTER_TIMEOUT_MS,
  startCluster,
  type Cluster,
  type PodObject,
  type PodSandbox,
} from '../harness/kubelet.js';

const NS = 'tt-e2e-tartan';
const NODE = 'tt-e2e-node1';
const MACVLAN_PARENT = 'tt-e2e-m0';
const MACVLAN_PEER = 'tt-e2e-m1';
const UNDERLAY = 'tt-e2e-u0';
const UNDERLAY_PEER = 'tt-e2e-u1';
const BRIDGE = 'tt-e2e-tbr';
const LOCAL_UNDERLAY = '192.168.251.1';
const REMOTE_UNDERLAY = '192.168.251.2';
const VNI = 4242;
const VXLAN_DEV = `tvx${VNI}`;
const TABLE = 162;
const FIXED = { 'tt-e2e-a': '10.61.0.11', 'tt-e2e-b': '10.61.0.12' } as const;
type PodName = keyof typeof FIXED;

function ipv6Of(addrs: IpAddrInfo[], ifname: string): string[] {
  const a = addrs.find((x) => x.ifname === ifname);
  return (a?.addr_info ?? [])
    .filter((i) => i.family === 'inet6' && i.scope === 'global')
    .map((i) => `${i.local}/${i.prefixlen}`);
}

const bare = (cidr: string) => cidr.split('/')[0]!;

type Mode = 'in-process' | 'shim+agent';

for (const mode of ['in-process', 'shim+agent'] as Mode[])
  describe(`e2e: Tartan through the real kubelet (${mode})`, () => {
    let dir = '';
    let agent: HostAgent | undefined;
    let cluster: Cluster | undefined;
    let confDir = '';
    const paths = { networks: '', store: '', state: '', log: '' };
    const pods = new Map<PodName, { pod: PodObject; sb: PodSandbox; addrs: IpAddrInfo[] }>();

    const cni = mode === 'shim+agent';
    /** What a pod asks for in its annotation. */
    const requests = (fixed: string) => [
      { network: 'oam', kind: 'ClusterNetwork', ifname: 'net1', ip: fixed },
      { network: 'internal', kind: 'TenantNetwork', ifname: 'net2', ip: 'dynamic', ip6: 'dynamic' },
    ];
    const podManifest = (name: string, fixed: string) => ({
      metadata: { name, annotations: { 'tartan.io/interfaces': JSON.stringify(requests(fixed)) } },
    });

    const recordedAttachments = async () => {
      const st = await openHostState(paths.state);
      try {
        return st.listAttachments().length;
      } finally {
        st.close();
      }
    };
    /** "<record key>#<offset> <handle>" of every address the IPAM holds, and borrow pointers. */
    const heldAddresses = async () => {
      const store = await createFileStore(paths.store);
      try {
        const entries = await store.list('');
        return [...heldByPods(entries), ...borrowPointers(entries).map((k) => `pointer ${k}`)];
      } finally {
        await store.close();
      }
    };
    /** Waits (30 s at most) until the namespace holds n Attachment objects, and checks it. */
    const waitForAttachments = async (n: number) => {
      const list = () =>
        cluster!.kube
          .client()
          .must<{ items: unknown[] }>({
            method: 'GET',
            path: `/apis/tartan.io/v1alpha1/namespaces/${NS}/attachments`,
          })
          .then((l) => l.items.length);
      for (let i = 0; i < 300 && (await list()) !== n; i++) await sleep(100);
      expect(await list()).toBe(n);
    };

    /** The conflist CRI loads: Tartan only, asking containerd for the pod's annotations. */
    const writeConflist = () => {
      const conf = {
        cniVersion: '1.0.0',
        name: 'tt-e2e-tartan',
        plugins: [
          {
            type: 'tartan',
            ...(mode === 'shim+agent' ? { agentSocket: join(dir, 'agent.sock') } : {}),
            networksDir: paths.networks,
            store: { type: 'file', path: paths.store },
            stateDir: paths.state,
            nodeName: NODE,
            defaultNetwork: 'cluster',
            logFile: paths.log,
            logLevel: 'debug',
            capabilities: { 'io.kubernetes.cri.pod-annotations': true },
          },
        ],
      };
      writeFileSync(join(confDir, '10-tartan.conflist'), JSON.stringify(conf));
    };

    const networks: { kind: string; name: string; spec: Record<string, unknown> }[] = [];
    const network = (kind: string, name: string, spec: Record<string, unknown>) =>
      networks.push({ kind, name, spec });
    /** As objects through the API (shim+agent), or as files (in-process). */
    const publishNetworks = async () => {
      for (const { kind, name, spec } of networks) {
        const metadata = kind === 'ClusterNetwork' ? { name } : { name, namespace: NS };
        const obj = { apiVersion: 'tartan.io/v1alpha1', kind, metadata, spec };
        if (!cni) writeFileSync(join(paths.networks, `${name}.yaml`), stringify(obj));
        else
          await cluster!.kube.client().must({
            method: 'POST',
            path:
              kind === 'ClusterNetwork'
                ? '/apis/tartan.io/v1alpha1/clusternetworks'
                : `/apis/tartan.io/v1alpha1/namespaces/${NS}/tenantnetworks`,
            body: obj,
          });
      }
    };

    beforeAll(async () => {
      // Through the agent, the build the DaemonSet installs.
      const bin = tartanBinary(mode === 'shim+agent' ? 'shim' : 'full');
      dir = mkTmp('tartan-e2e-tt-');
      confDir = join(dir, 'net.d');
      paths.networks = join(dir, 'networks');
      paths.store = join(dir, 'ipam.db');
      paths.state = join(dir, 'state');
      paths.log = join(dir, 'tartan.log');
      mkdirSync(confDir);
      mkdirSync(paths.networks);
      // Host side: a veth as the macvlan parent, another as the VXLAN underlay (with an address).
      for (const [a, b] of [
        [MACVLAN_PARENT, MACVLAN_PEER],
        [UNDERLAY, UNDERLAY_PEER],
      ] as const) {
        await linkDel(a);
        await sh('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
        await sh('ip', ['link', 'set', a, 'up']);
        await sh('ip', ['link', 'set', b, 'up']);
      }
      await sh('ip', ['addr', 'add', `${LOCAL_UNDERLAY}/24`, 'dev', UNDERLAY]);

      network('ClusterNetwork', 'cluster', {
        type: 'delegate',
        delegate: {
          cniVersion: '1.0.0',
          name: 'tt-e2e-cluster',
          plugins: [
            {
              type: 'bridge',
              bridge: BRIDGE,
              isGateway: false,
              ipam: {
                type: 'host-local',
                ranges: [[{ subnet: '10.88.7.0/24' }]],
                dataDir: join(dir, 'host-local'),
              },
            },
          ],
        },
      });
      network('ClusterNetwork', 'oam', {
        type: 'macvlan',
        device: MACVLAN_PARENT,
        mode: 'bridge',
        ipv4: { cidr: '10.61.0.0/24', pools: [{ start: '10.61.0.10', end: '10.61.0.99' }] },
      });
      network('TenantNetwork', 'internal', {
        type: 'macvlan',
        device: UNDERLAY,
        mode: 'bridge',
        // One definition for every node: this node's own address is in the remotes too.
        vxlan: { vni: VNI, port: 4789, remotes: [LOCAL_UNDERLAY, REMOTE_UNDERLAY] },
        mtu: 1450,
        ipv4: { cidr: '10.62.0.0/24', blockPrefix: 28 },
        ipv6: { cidr: 'fd00:62::/64' },
        routingTable: TABLE,
      });
      writeConflist();
      cluster = await startCluster({
        cniBinDir: makeCniBinDir(join(dir, 'bin'), { tartan: bin }),
        cniConfDir: confDir,
        nodeName: NODE,
      });
      await cluster.namespace(NS);
      if (cni) await installCrds(cluster.kube.client());
      await publishNetworks();
      if (cni)
        agent = await startHostAgent(dir, join(confDir, '10-tartan.conflist'), [
          '--kubeconfig',
          cluster.kube.kubeconfigPath,
        ]);
    }, CLUSTER_TIMEOUT_MS);

    afterAll(async () => {
      try {
        await cluster?.stop();
      } finally {
        await agent?.stop();
        for (const l of [MACVLAN_PARENT, UNDERLAY, BRIDGE, VXLAN_DEV]) await linkDel(l);
        if (dir) removeDir(dir);
      }
    }, CLUSTER_TIMEOUT_MS);

    it('two pods get eth0 (delegate), net1 (macvlan, fixed IP) and net2 (VXLAN, dynamic v4+v6)', async () => {
      const c = cluster!;
      for (const name of Object.keys(FIXED) as PodName[]) {
        await c.createPod(NS, podManifest(name, FIXED[name]));
        const pod = await c.waitPodRunning(NS, name);
        const sb = await c.sandbox(pod);
        pods.set(name, { pod, sb, addrs: await addrsIn(sb.netns) });
      }

      for (const [name, { pod, addrs }] of pods) {
        const names = addrs.map((a) => a.ifname).sort();
        expect(names).toEqual(['eth0', 'lo', 'net1', 'net2']);
        // eth0: the delegated bridge; kubelet's pod IP is the eth0 address.
        const eth0 = ipv4Of(addrs, 'eth0');
        expect(eth0).toHaveLength(1);
        expect(eth0[0]).toMatch(/^10\.88\.7\.\d+\/24$/);
        expect(pod.status?.podIP).toBe(bare(eth0[0]!));
        expect(addrs.find((a) => a.ifname === 'eth0')?.linkinfo?.info_kind).toBe('veth');
        // net1: macvlan with the fixed address.
        expect(ipv4Of(addrs, 'net1')).toEqual([`${FIXED[name]}/24`]);
        expect(addrs.find((a) => a.ifname === 'net1')?.linkinfo?.info_kind).toBe('macvlan');
        // net2: macvlan over the VXLAN parent, dynamic IPv4 + IPv6, MTU from the network.
        const net2 = addrs.find((a) => a.ifname === 'net2') as IpAddrInfo & { mtu?: number };
        expect(net2.linkinfo?.info_kind).toBe('macvlan');
        expect(net2.mtu).toBe(1450);
        expect(ipv4Of(addrs, 'net2')[0]).toMatch(/^10\.62\.0\.\d+\/24$/);
        expect(ipv6Of(addrs, 'net2')[0]).toMatch(/^fd00:62::[0-9a-f:]+\/64$/);
      }

      // Host: one VXLAN parent for both pods, on the underlay; this node's address skipped
      // in the FDB, the other remote present.
      const vx = JSON.parse(
        (await sh('ip', ['-d', '-j', 'link', 'show', 'dev', VXLAN_DEV])).stdout,
      ) as {
        linkinfo?: {
          info_kind?: string;
          info_data?: { id?: number; local?: string; link?: string };
        };
      }[];
      expect(vx[0]?.linkinfo?.info_kind).toBe('vxlan');
      expect(vx[0]?.linkinfo?.info_data?.id).toBe(VNI);
      expect(vx[0]?.linkinfo?.info_data?.local).toBe(LOCAL_UNDERLAY);
      const fdb = (await sh('bridge', ['fdb', 'show', 'dev', VXLAN_DEV])).stdout;
      expect(fdb).toContain(`dst ${REMOTE_UNDERLAY}`);
      expect(fdb).not.toContain(`dst ${LOCAL_UNDERLAY}`);
    });

    it('policy routing: from <net2 address> lookup the network table, v4 and v6', async () => {
      for (const { sb, addrs } of pods.values()) {
        const v4 = bare(ipv4Of(addrs, 'net2')[0]!);
        const v6 = bare(ipv6Of(addrs, 'net2')[0]!);
        const rules4 = JSON.parse(
          (await sh('nsenter', [`--net=${sb.netns}`, 'ip', '-j', 'rule'])).stdout,
        ) as {
          src?: string;
          table?: string;
        }[];
        const rules6 = JSON.parse(
          (await sh('nsenter', [`--net=${sb.netns}`, 'ip', '-6', '-j', 'rule'])).stdout,
        ) as { src?: string; table?: string }[];
        expect(
          rules4.some((r) => r.src === v4 && r.table === String(TABLE)),
          JSON.stringify(rules4),
        ).toBe(true);
        expect(
          rules6.some((r) => r.src === v6 && r.table === String(TABLE)),
          JSON.stringify(rules6),
        ).toBe(true);
        // The table routes the network's subnet through net2.
        const t4 = (
          await sh('nsenter', [`--net=${sb.netns}`, 'ip', 'route', 'show', 'table', String(TABLE)])
        ).stdout;
        expect(t4).toMatch(/10\.62\.0\.0\/24 dev net2/);
        // No policy rule for the other interfaces (the network has no table).
        const fixed = bare(ipv4Of(addrs, 'net1')[0]!);
        expect(rules4.some((r) => r.src === fixed)).toBe(false);
      }
    });

    it('the pods reach each other on every network (eth0, net1, net2 v4, net2 v6)', async () => {
      const a = pods.get('tt-e2e-a')!;
      const b = pods.get('tt-e2e-b')!;
      const targets = (p: typeof a) => ({
        eth0: bare(ipv4Of(p.addrs, 'eth0')[0]!),
        net1: bare(ipv4Of(p.addrs, 'net1')[0]!),
        net2v4: bare(ipv4Of(p.addrs, 'net2')[0]!),
        net2v6: bare(ipv6Of(p.addrs, 'net2')[0]!),
      });
      for (const [from, to] of [
        [a, b],
        [b, a],
      ] as const)
        for (const [net, ip] of Object.entries(targets(to))) {
          const r = await pingFrom(from.sb.netns, ip);
          expect(r.code, `${from.pod.metadata.name} -> ${net} ${ip}\n${r.stdout}${r.stderr}`).toBe(
            0,
          );
        }
    });

    if (mode === 'shim+agent')
      it('the agent wrote network-status on each pod and one Attachment per interface', async () => {
        const admin = cluster!.kube.client();
        // Published in the background after ADD: give it a moment.
        for (let i = 0; i < 100; i++) {
          const l = await admin.must<{ items: unknown[] }>({
            method: 'GET',
            path: `/apis/tartan.io/v1alpha1/namespaces/${NS}/attachments`,
          });
          if (l.items.length >= pods.size * 3) break;
          await sleep(100);
        }
        for (const [name, p] of pods) {
          const pod = await admin.must<{ metadata: { annotations?: Record<string, string> } }>({
            method: 'GET',
            path: `/api/v1/namespaces/${NS}/pods/${name}`,
          });
          const status = JSON.parse(
            pod.metadata.annotations?.['k8s.v1.cni.cncf.io/network-status'] ?? '[]',
          ) as Array<{ name: string; interface?: string; ips?: string[]; default?: boolean }>;
          expect(status.map((s) => [s.name, s.interface])).toEqual([
            ['cluster', 'eth0'],
            ['oam', 'net1'],
            [`${NS}/internal`, 'net2'], // a TenantNetwork: "<namespace>/<name>"
          ]);
          expect(status[0]?.default).toBe(true);
          expect(status[1]?.ips).toEqual([FIXED[name]]);
          expect(status[2]?.ips).toEqual([
            bare(ipv4Of(p.addrs, 'net2')[0]!),
            bare(ipv6Of(p.addrs, 'net2')[0]!),
          ]);
        }
        const list = await admin.must<{
          items: Array<{
            spec: {
              pod: string;
              ifname: string;
              network: { kind: string; name: string };
              node: string;
            };
          }>;
        }>({ method: 'GET', path: `/apis/tartan.io/v1alpha1/namespaces/${NS}/attachments` });
        expect(
          list.items
            .map(
              (a) =>
                `${a.spec.pod}/${a.spec.ifname}/${a.spec.network.kind}:${a.spec.network.name}@${a.spec.node}`,
            )
            .sort(),
        ).toEqual(
          [...pods.keys()]
            .flatMap((n) => [
              `${n}/eth0/ClusterNetwork:cluster@${NODE}`,
              `${n}/net1/ClusterNetwork:oam@${NODE}`,
              `${n}/net2/TenantNetwork:internal@${NODE}`,
            ])
            .sort(),
        );
      });

    it('deleting the pods through the API leaves no link, rule, attachment record or allocation', async () => {
      const c = cluster!;
      const netns = [...pods.values()].map((p) => p.sb.netns);
      // Both recorded before deletion.
      const before = await openHostState(paths.state);
      try {
        expect(before.listAttachments().length).toBeGreaterThan(0);
      } finally {
        before.close();
      }
      for (const name of pods.keys()) await c.deletePod(NS, name);

      // CNI DEL ran at StopPodSandbox (before the kubelet confirmed the deletion).
      const state = await openHostState(paths.state);
      try {
        expect(state.listAttachments()).toEqual([]);
        expect(state.listParents()).toEqual([]);
      } finally {
        state.close();
      }
      expect(await heldAddresses()).toEqual([]);
      // Host: the VXLAN parent is gone; no macvlan left on our parents; sandboxes' netns gone
      // once the kubelet removes them (the pods' interfaces went with DEL already).
      expect(linkExists(VXLAN_DEV)).toBe(false);
      const links = JSON.parse((await sh('ip', ['-d', '-j', 'link'])).stdout) as {
        ifname: string;
        link?: string;
        linkinfo?: { info_kind?: string };
      }[];
      const ours = links.filter(
        (l) =>
          l.ifname.startsWith('tvx') ||
          (l.linkinfo?.info_kind === 'macvlan' &&
            [MACVLAN_PARENT, UNDERLAY, VXLAN_DEV].includes(l.link ?? '')),
      );
      expect(ours.map((l) => l.ifname)).toEqual([]);
      for (const ns of netns) {
        const r = await run('nsenter', [`--net=${ns}`, 'ip', '-j', 'link']);
        // Either the netns is already removed, or it holds only lo.
        if (r.code === 0) {
          const names = (JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname);
          expect(names).toEqual(['lo']);
        }
      }
      if (agent) {
        // No controller-manager runs here (no owner-reference GC): the agent's DEL removed them.
        await waitForAttachments(0);
        // The calls went through the shim to the agent: it counted the ADDs and DELs.
        const m = (await agent.get('/metrics')).body;
        expect(m).toMatch(/tartan_cni_requests_total\{[^}]*command="ADD"[^}]*\} [1-9]/);
        expect(m).toMatch(/tartan_cni_requests_total\{[^}]*command="DEL"[^}]*\} [1-9]/);
      }
    });

    it('a claim keeps its address across pod deletion and re-creation; deleting its IPAMClaim gives it back', async () => {
      const c = cluster!;
      const claimed = (name: string, claim?: string) => ({
        metadata: {
          name,
          annotations: {
            'tartan.io/interfaces': JSON.stringify([
              {
                network: 'oam',
                kind: 'ClusterNetwork',
                ifname: 'net1',
                ...(claim ? { claim } : {}),
              },
            ]),
          },
        },
      });
      const net1Of = async (name: string) => {
        const pod = await c.waitPodRunning(NS, name);
        return bare(ipv4Of(await addrsIn((await c.sandbox(pod)).netns), 'net1')[0]!);
      };
      await c.createPod(NS, claimed('tt-e2e-db-0', 'db-0'));
      const kept = await net1Of('tt-e2e-db-0');
      await c.deletePod(NS, 'tt-e2e-db-0');
      // While no pod holds it, the claim keeps it: another pod gets another address.
      await c.createPod(NS, claimed('tt-e2e-other'));
      expect(await net1Of('tt-e2e-other')).not.toBe(kept);
      await c.createPod(NS, claimed('tt-e2e-db-0', 'db-0'));
      expect(await net1Of('tt-e2e-db-0')).toBe(kept);
      for (const name of ['tt-e2e-db-0', 'tt-e2e-other']) await c.deletePod(NS, name);
      expect(await heldAddresses()).toEqual([]);
      const claims = async () => {
        const store = await createFileStore(paths.store);
        try {
          return await createIpam(store).claims('oam', {
            type: 'macvlan',
            ipv4: { cidr: '10.61.0.0/24' },
          });
        } finally {
          await store.close();
        }
      };
      // The namespace qualifies the claim: another namespace's db-0 is another claim.
      expect(await claims()).toEqual([{ name: `${NS}/db-0`, ips: [`${kept}/24`], holders: [] }]);
      if (!cni) return;

      // The controller gives the claim its IPAMClaim object; deleting it releases the address.
      const admin = c.kube.client();
      const path = `/apis/k8s.cni.cncf.io/v1alpha1/namespaces/${NS}/ipamclaims/db-0`;
      const round = async () => {
        const store = await createFileStore(paths.store);
        try {
          return (await reconcileOnce({ client: admin, store, gcGraceMs: 3_600_000 })).claims;
        } finally {
          await store.close();
        }
      };
      expect(await round()).toEqual({ created: [`${NS}/db-0`], released: [] });
      expect(await admin.must({ method: 'GET', path })).toMatchObject({
        metadata: { finalizers: ['tartan.io/claim'] },
        spec: { network: 'oam' },
        status: { ips: [`${kept}/24`] },
      });
      await admin.must({ method: 'DELETE', path });
      expect(await round()).toEqual({ created: [], released: [`${NS}/db-0`] });
      expect((await admin.request({ method: 'GET', path })).status).toBe(404);
      expect(await claims()).toEqual([]);
    });

    it('API server frozen (SIGSTOP) during a pod deletion: DEL still runs, nothing leaks after it returns', async () => {
      const c = cluster!;
      const name = 'tt-e2e-c';
      // tt-e2e-b's fixed IP, free again since its deletion.
      await c.createPod(NS, podManifest(name, FIXED['tt-e2e-b']));
      const pod = await c.waitPodRunning(NS, name);
      const sb = await c.sandbox(pod);
      expect(ipv4Of(await addrsIn(sb.netns), 'net1')).toEqual([`${FIXED['tt-e2e-b']}/24`]);
      const res = await c.client().request({
        method: 'DELETE',
        path: `/api/v1/namespaces/${NS}/pods/${name}`,
      });
      expect(res.status).toBe(200);
      await sleep(300); // the kubelet's watch sees the deletion
      const apiPid = c.kube.pid;
      process.kill(apiPid, 'SIGSTOP');
      try {
        // Teardown (StopPodSandbox -> CNI DEL) needs no API server.
        const end = Date.now() + 60_000;
        for (let n; (n = await recordedAttachments()) > 0; await sleep(250))
          if (Date.now() > end)
            throw new Error(`attachment records left while the API server is frozen: ${n}`);
      } finally {
        process.kill(apiPid, 'SIGCONT');
      }
      // The kubelet confirms the deletion once the API server answers again.
      const end = Date.now() + 120_000;
      for (;;) {
        const r = await c
          .client()
          .request({ method: 'GET', path: `/api/v1/namespaces/${NS}/pods/${name}` });
        if (r.status === 404) break;
        if (Date.now() > end)
          throw new Error(`pod ${name} not deleted after the API server returned`);
        await sleep(300);
      }
      expect(await heldAddresses()).toEqual([]);
      expect(linkExists(VXLAN_DEV)).toBe(false);
    });

    it('API server stopped during a pod deletion, then restarted: DEL runs, nothing leaks', async () => {
      const c = cluster!;
      const name = 'tt-e2e-d';
      await c.createPod(NS, podManifest(name, FIXED['tt-e2e-b']));
      const pod = await c.waitPodRunning(NS, name);
      expect(ipv4Of(await addrsIn((await c.sandbox(pod)).netns), 'net1')).toEqual([
        `${FIXED['tt-e2e-b']}/24`,
      ]);
      if (cni) await waitForAttachments(3);
      const res = await c.client().request({
        method: 'DELETE',
        path: `/api/v1/namespaces/${NS}/pods/${name}`,
      });
      expect(res.status).toBe(200);
      await sleep(300); // the kubelet's watch sees the deletion
      await c.kube.restart(async () => {
        // While the API server is down: teardown (StopPodSandbox -> CNI DEL) still runs.
        const end = Date.now() + 60_000;
        while ((await recordedAttachments()) > 0) {
          if (Date.now() > end)
            throw new Error('attachment records left while the API server is stopped');
          await sleep(250);
        }
      });
      const end = Date.now() + 120_000;
      for (;;) {
        const r = await c
          .client()
          .request({ method: 'GET', path: `/api/v1/namespaces/${NS}/pods/${name}` });
        if (r.status === 404) break;
        if (Date.now() > end) throw new Error(`pod ${name} not deleted after the restart`);
        await sleep(300);
      }
      expect(await heldAddresses()).toEqual([]);
      expect(linkExists(VXLAN_DEV)).toBe(false);
      // The agent's deletion of the pod's Attachments failed while the API server was down;
      // it retried until the API server was back.
      if (cni) await waitForAttachments(0);
    });

    if (cni)
      it("after the restart the agent's informers watch again: a network created now is usable", async () => {
        const c = cluster!;
        await c.kube.client().must({
          method: 'POST',
          path: '/apis/tartan.io/v1alpha1/clusternetworks',
          body: {
            apiVersion: 'tartan.io/v1alpha1',
            kind: 'ClusterNetwork',
            metadata: { name: 'late' },
            spec: { type: 'macvlan', device: MACVLAN_PARENT, ipv4: { cidr: '10.65.0.0/24' } },
          },
        });
        await sleep(500); // the watch event
        const name = 'tt-e2e-e';
        await c.createPod(NS, {
          metadata: {
            name,
            annotations: {
              'tartan.io/interfaces': JSON.stringify([
                { network: 'late', kind: 'ClusterNetwork', ifname: 'late0', ip: '10.65.0.7' },
              ]),
            },
          },
        });
        const pod = await c.waitPodRunning(NS, name);
        const a = await addrsIn((await c.sandbox(pod)).netns);
        expect(ipv4Of(a, 'late0')).toEqual(['10.65.0.7/24']);
        await c.deletePod(NS, name);
        expect(await heldAddresses()).toEqual([]);
      });
  });
