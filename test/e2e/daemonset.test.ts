// End to end, the way operators install Tartan: deploy/agent.yaml's agent runs as a pod
// (from the image scripts/build-image.sh builds) under the real kubelet, its init
// container installs the shim and the conflist on the node, workload pods get the
// interfaces their annotations ask for through shim -> agent (in-cluster config), and
// deleting the agent pod (uninstall) removes the shim and the conflist, after which pods
// are created on the cluster's own CNI again.
//
// What differs from a real cluster, and why: no DaemonSet controller or scheduler runs, so
// the DaemonSet's pod template is created as a pod bound to the node; the API server runs
// without the ServiceAccount admission plugin (no controller-manager creates the default
// ServiceAccounts it needs), so the service-account token volume that plugin would add is
// added here, and the kube-root-ca.crt ConfigMap is created here; no kube-proxy runs, so
// KUBERNETES_SERVICE_HOST/PORT point at the API server itself. The host paths of the
// manifest (/opt/cni/bin, /etc/cni/net.d, /run/tartan, /var/lib/...) are moved to this
// test's temporary directory; a mount at a volume's own host path moves with it, so the
// manifest's "same path on both sides" mounts keep their meaning.
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyManifests, installCrds } from '../../src/k8s/apply.js';
import type { KubeClient } from '../../src/k8s/client.js';
import { kubernetesStoreWith } from '../../src/store/kubernetes.js';
import { heldByPods } from '../harness/ipam.js';
import { makeCniBinDir } from '../harness/clients/containerd.js';
import {
  addrsIn,
  ipv4Of,
  linkDel,
  mkTmp,
  pingFrom,
  removeDir,
  sh,
  sleep,
} from '../harness/clients/util.js';
import { CLUSTER_TIMEOUT_MS, startCluster, type Cluster } from '../harness/kubelet.js';

const ROOT = resolve(import.meta.dirname, '../..');
const IMAGE_TAR = join(ROOT, 'dist/tartan-image.tar');
const SYS = 'tartan-system';
const NS = 'tt-e2e-ds';
const NODE = 'tt-e2e-node3';
const PARENT = 'tt-e2e-d0';
const PEER = 'tt-e2e-d1';
const PRIMARY_BRIDGE = 'tt-e2e-dbr';
const AGENT_POD = 'tartan-agent-tt';
const FIXED = { 'tt-ds-a': '10.64.0.21', 'tt-ds-b': '10.64.0.22' } as const;

type Obj = Record<string, unknown> & { kind: string; metadata: { name: string } };
interface Volume {
  name: string;
  hostPath?: { path: string; type?: string };
  [k: string]: unknown;
}
interface Mount {
  name: string;
  mountPath: string;
  [k: string]: unknown;
}
interface Container {
  name: string;
  image: string;
  imagePullPolicy?: string;
  env?: unknown[];
  volumeMounts?: Mount[];
  [k: string]: unknown;
}

describe('e2e: deploy/agent.yaml as a pod under the real kubelet (install, attach, uninstall)', () => {
  let dir = '';
  let cluster: Cluster | undefined;
  let admin: KubeClient;
  const p = { bin: '', conf: '', run: '', state: '', varLibCni: '' };

  /** The manifest's host paths, moved into this test's directory. */
  const hostPaths = (): Record<string, string> => ({
    '/opt/cni/bin': p.bin,
    '/etc/cni/net.d': p.conf,
    '/run/tartan': p.run,
    '/var/lib/tartan': p.state,
    '/var/lib/cni': p.varLibCni,
    '/run/netns': '/run/netns',
  });

  const manifests = () =>
    parseAllDocuments(readFileSync(join(ROOT, 'deploy/agent.yaml'), 'utf8')).map(
      (d) => d.toJS() as Obj,
    );

  /** The DaemonSet's pod template as a pod on this node, adapted as the header says. */
  function agentPod(ds: Obj): Obj {
    const tpl = (ds as unknown as { spec: { template: { metadata: object; spec: Obj } } }).spec
      .template;
    const spec = structuredClone(tpl.spec) as unknown as {
      volumes: Volume[];
      initContainers: Container[];
      containers: Container[];
      [k: string]: unknown;
    };
    const moved = hostPaths();
    const hostPathOf = new Map<string, string>();
    for (const v of spec.volumes) {
      if (!v.hostPath) continue;
      const to = moved[v.hostPath.path];
      if (!to) throw new Error(`no test path for hostPath ${v.hostPath.path}`);
      hostPathOf.set(v.name, v.hostPath.path);
      v.hostPath = { ...v.hostPath, path: to };
    }
    // The reference plugins in the kubelet's bin dir are symlinks into /usr/lib/cni.
    spec.volumes.push({ name: 'tt-ref-cni', hostPath: { path: '/usr/lib/cni' } });
    spec.volumes.push({
      name: 'tt-sa-token',
      projected: {
        sources: [
          { serviceAccountToken: { path: 'token', expirationSeconds: 3607 } },
          { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        ],
      },
    });
    const url = new URL(cluster!.kube.url);
    for (const c of [...spec.initContainers, ...spec.containers]) {
      expect(c.image).toBe('localhost/tartan:dev');
      c.imagePullPolicy = 'Never';
      const mounts: Mount[] = [];
      for (const m of c.volumeMounts ?? []) {
        const host = hostPathOf.get(m.name);
        // A mount at its volume's own host path stays at the (moved) host path.
        mounts.push(
          host !== undefined && m.mountPath === host ? { ...m, mountPath: moved[host]! } : m,
        );
        // Scripts and flags name the manifest's paths (/run/tartan/...): keep those too.
        if (host !== undefined && m.mountPath === host && moved[host] !== host) mounts.push(m);
      }
      mounts.push({ name: 'tt-ref-cni', mountPath: '/usr/lib/cni', readOnly: true });
      if (c.name === 'agent') {
        mounts.push({
          name: 'tt-sa-token',
          mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
          readOnly: true,
        });
        c.env = [
          ...(c.env ?? []),
          { name: 'KUBERNETES_SERVICE_HOST', value: url.hostname },
          { name: 'KUBERNETES_SERVICE_PORT', value: url.port },
        ];
      }
      c.volumeMounts = mounts;
    }
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { ...tpl.metadata, name: AGENT_POD, namespace: SYS },
      spec: { ...spec, nodeName: NODE },
    } as unknown as Obj;
  }

  const podWith = (name: string, ifaces?: unknown[]) => ({
    metadata: {
      name,
      ...(ifaces ? { annotations: { 'tartan.io/interfaces': JSON.stringify(ifaces) } } : {}),
    },
  });

  beforeAll(async () => {
    if (!existsSync(IMAGE_TAR))
      throw new Error(`${IMAGE_TAR} missing: run "bash scripts/build-image.sh" (npm test does)`);
    dir = mkTmp('tartan-e2e-ds-');
    p.bin = makeCniBinDir(join(dir, 'opt-cni-bin'));
    p.conf = join(dir, 'etc-cni-net.d');
    p.run = join(dir, 'run-tartan');
    p.state = join(dir, 'var-lib-tartan');
    p.varLibCni = join(dir, 'var-lib-cni');
    for (const d of [p.conf, p.run, p.state, p.varLibCni]) mkdirSync(d, { recursive: true });
    await linkDel(PARENT);
    await sh('ip', ['link', 'add', PARENT, 'type', 'veth', 'peer', 'name', PEER]);
    await sh('ip', ['link', 'set', PARENT, 'up']);
    await sh('ip', ['link', 'set', PEER, 'up']);
    // The cluster's own CNI, there before Tartan (as flannel or calico would be).
    const primary = {
      cniVersion: '1.0.0',
      name: 'tt-primary',
      plugins: [
        {
          type: 'bridge',
          bridge: PRIMARY_BRIDGE,
          isGateway: false,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: '10.88.9.0/24' }]],
            dataDir: join(p.varLibCni, 'networks'),
          },
        },
      ],
    };
    writeFileSync(join(p.conf, '10-tt-primary.conflist'), JSON.stringify(primary));
    cluster = await startCluster({ cniBinDir: p.bin, cniConfDir: p.conf, nodeName: NODE });
    await cluster.ctrd.importImage(IMAGE_TAR);
    admin = cluster.kube.client();
    await installCrds(admin);
    const rbac = ['namespace.yaml', 'agent.yaml'].flatMap((f) =>
      parseAllDocuments(readFileSync(join(ROOT, 'deploy/rbac', f), 'utf8')).map((d) => d.toJS()),
    );
    await applyManifests(admin, rbac);
    await cluster.namespace(NS);
    await admin.must({
      method: 'POST',
      path: `/api/v1/namespaces/${SYS}/configmaps`,
      body: { metadata: { name: 'kube-root-ca.crt' }, data: { 'ca.crt': cluster.kube.ca } },
    });
    // deploy/default-network.yaml wraps the primary CNI; here it wraps this test's.
    const net = (name: string, spec: object) =>
      admin.must({
        method: 'POST',
        path: '/apis/tartan.io/v1alpha1/clusternetworks',
        body: {
          apiVersion: 'tartan.io/v1alpha1',
          kind: 'ClusterNetwork',
          metadata: { name },
          spec,
        },
      });
    await net('default', { type: 'delegate', delegate: primary });
    await net('tt-ds-oam', {
      type: 'macvlan',
      device: PARENT,
      mode: 'bridge',
      ipv4: { cidr: '10.64.0.0/24', pools: [{ start: '10.64.0.10', end: '10.64.0.99' }] },
    });
  }, CLUSTER_TIMEOUT_MS);

  afterAll(async () => {
    try {
      await cluster?.stop();
    } finally {
      await linkDel(PARENT);
      await linkDel(PRIMARY_BRIDGE);
      if (dir) removeDir(dir);
    }
  }, CLUSTER_TIMEOUT_MS);

  it('the init container installs the shim and the conflist; the agent turns ready in-cluster', async () => {
    const docs = manifests();
    const cm = docs.find((d) => d.kind === 'ConfigMap')!;
    const data = cm.data as Record<string, string>;
    // The conflist names the manifest's paths; here they are the moved ones.
    const conflist = JSON.parse(data['00-tartan.conflist']!) as {
      plugins: Record<string, unknown>[];
    };
    const t = conflist.plugins[0]!;
    t.agentSocket = join(p.run, 'agent.sock');
    t.stateDir = p.state;
    // The store stays the manifest's: cluster-wide, TartanRecords through the API server.
    expect(t.store).toEqual({ type: 'kubernetes', namespace: SYS });
    await applyManifests(admin, [
      { ...cm, data: { '00-tartan.conflist': JSON.stringify(conflist, null, 2) } },
    ]);
    await admin.must({
      method: 'POST',
      path: `/api/v1/namespaces/${SYS}/pods`,
      body: agentPod(docs.find((d) => d.kind === 'DaemonSet')!),
    });
    const end = Date.now() + 120_000;
    for (;;) {
      const pod = await admin.must<{
        status?: { conditions?: { type: string; status: string }[] };
      }>({ method: 'GET', path: `/api/v1/namespaces/${SYS}/pods/${AGENT_POD}` });
      if (pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) break;
      if (Date.now() > end)
        throw new Error(
          `agent pod not Ready: ${JSON.stringify(pod.status)}\n${cluster!.kubeletLogTail(20)}`,
        );
      await sleep(500);
    }
    // The agent speaks netlink itself (koffi from the image), not through the shim.
    const ps = await cluster!.ctrd.crictl(['ps', '--name', 'agent', '-q']);
    const agentId = ps.stdout.trim().split('\n')[0]!;
    const logs = await cluster!.ctrd.crictl(['logs', agentId]);
    expect(`${logs.stdout}${logs.stderr}`).toMatch(/"msg":"kernel driver"[^\n]*"driver":"netlink"/);
    // Installed on the node: the shim (executable) and the conflist with the node's name,
    // sorted before the primary CNI's.
    const shim = statSync(join(p.bin, 'tartan'));
    expect(shim.isFile() && (shim.mode & 0o111) !== 0).toBe(true);
    const installed = JSON.parse(readFileSync(join(p.conf, '00-tartan.conflist'), 'utf8')) as {
      plugins: { nodeName: string; agentSocket: string }[];
    };
    expect(installed.plugins[0]!.nodeName).toBe(NODE);
    // The agent's socket: root only.
    const sock = statSync(installed.plugins[0]!.agentSocket);
    expect(sock.isSocket()).toBe(true);
    expect(sock.mode & 0o077).toBe(0);
  });

  const addrs = new Map<string, Awaited<ReturnType<typeof addrsIn>>>();

  it("workload pods get eth0 (the wrapped primary CNI) and the annotation's macvlan with its fixed IP", async () => {
    const c = cluster!;
    for (const [name, ip] of Object.entries(FIXED)) {
      await c.createPod(
        NS,
        podWith(name, [{ network: 'tt-ds-oam', kind: 'ClusterNetwork', ifname: 'oam0', ip }]),
      );
      const pod = await c.waitPodRunning(NS, name);
      const a = await addrsIn((await c.sandbox(pod)).netns);
      addrs.set(name, a);
      expect(a.map((x) => x.ifname).sort()).toEqual(['eth0', 'lo', 'oam0']);
      expect(ipv4Of(a, 'eth0')[0]).toMatch(/^10\.88\.9\.\d+\/24$/);
      expect(ipv4Of(a, 'oam0')).toEqual([`${ip}/24`]);
    }
    const [a, b] = Object.keys(FIXED);
    const sbA = await c.sandbox(
      await c.client().must({ method: 'GET', path: `/api/v1/namespaces/${NS}/pods/${a}` }),
    );
    const r = await pingFrom(sbA.netns, FIXED[b as keyof typeof FIXED]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    // The agent published through its in-cluster connection (service-account token).
    for (let i = 0; i < 100; i++) {
      const pod = await c.client().must<{ metadata: { annotations?: Record<string, string> } }>({
        method: 'GET',
        path: `/api/v1/namespaces/${NS}/pods/${a}`,
      });
      const st = pod.metadata.annotations?.['k8s.v1.cni.cncf.io/network-status'];
      if (st) {
        const names = (JSON.parse(st) as { name: string; interface: string }[]).map(
          (s) => `${s.name}/${s.interface}`,
        );
        expect(names).toEqual(['default/eth0', 'tt-ds-oam/oam0']);
        break;
      }
      if (i === 99) throw new Error('no network-status on the pod');
      await sleep(100);
    }
  });

  const held = async () =>
    heldByPods(await kubernetesStoreWith(admin, { namespace: SYS }).list(''));

  it('the addresses live in the cluster-wide store; deleting the pods releases them', async () => {
    // Read back from the API server: TartanRecords the agent wrote with its service account.
    expect((await held()).length).toBe(Object.keys(FIXED).length);
    for (const name of Object.keys(FIXED)) await cluster!.deletePod(NS, name);
    expect(await held()).toEqual([]);
  });

  it('uninstall: the agent pod deleted, shim and conflist are gone and pods start on the primary CNI', async () => {
    const c = cluster!;
    await c.deletePod(SYS, AGENT_POD, 90_000);
    expect(existsSync(join(p.bin, 'tartan'))).toBe(false);
    expect(existsSync(join(p.conf, '00-tartan.conflist'))).toBe(false);
    await sleep(1500); // containerd's CNI conf syncer sees the removal
    await c.createPod(NS, podWith('tt-ds-after'));
    const pod = await c.waitPodRunning(NS, 'tt-ds-after');
    const a = await addrsIn((await c.sandbox(pod)).netns);
    expect(a.map((x) => x.ifname).sort()).toEqual(['eth0', 'lo']);
    expect(ipv4Of(a, 'eth0')[0]).toMatch(/^10\.88\.9\.\d+\/24$/);
    await c.deletePod(NS, 'tt-ds-after');
  });
});
