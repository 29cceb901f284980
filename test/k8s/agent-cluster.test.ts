// The agent's view of the cluster (src/agent/cluster.ts) on a real API server, as the
// agent's service account (deploy/rbac, impersonated): informers list and watch the
// networks, the NetworkAttachmentDefinitions and this node's pods; a pod's annotation
// becomes the core's requests with the right network names; changes arrive by watch;
// bad or forbidden requests fail with the code and message the pod's owner needs.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterView, type ClusterView } from '../../src/agent/cluster.js';
import { createLogger } from '../../src/agent/log.js';
import { isTartanError } from '../../src/cni/errors.js';
import { applyManifests, ensureNamespace, installCrds } from '../../src/k8s/apply.js';
import type { KubeClient } from '../../src/k8s/client.js';
import { applyDeployRbac } from '../harness/deploy.js';
import { startKube, type KubeHandle } from '../harness/kube.js';

const ROOT = resolve(import.meta.dirname, '../..');
const G = '/apis/tartan.io/v1alpha1';
const NODE = 'tt-k8s-node1';
const NS = 'tt-tenant-a';
const OTHER = 'tt-tenant-b';

let kube: KubeHandle;
let admin: KubeClient;
let view: ClusterView;
const warnings: string[] = [];

const clusterNet = (name: string, spec: Record<string, unknown>) =>
  admin.must({
    method: 'POST',
    path: `${G}/clusternetworks`,
    body: { apiVersion: 'tartan.io/v1alpha1', kind: 'ClusterNetwork', metadata: { name }, spec },
  });
const tenantNet = (ns: string, name: string, spec: Record<string, unknown>) =>
  admin.must({
    method: 'POST',
    path: `${G}/namespaces/${ns}/tenantnetworks`,
    body: {
      apiVersion: 'tartan.io/v1alpha1',
      kind: 'TenantNetwork',
      metadata: { name, namespace: ns },
      spec,
    },
  });
const pod = (ns: string, name: string, annotations: Record<string, string>, node = NODE) =>
  admin.must<{ metadata: { uid: string } }>({
    method: 'POST',
    path: `/api/v1/namespaces/${ns}/pods`,
    body: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: ns, annotations },
      spec: { nodeName: node, containers: [{ name: 'c', image: 'tt-none' }] },
    },
  });
const ask = (ifaces: unknown[]) => ({ 'tartan.io/interfaces': JSON.stringify(ifaces) });

async function until(what: string, ok: () => boolean | Promise<boolean>) {
  for (let i = 0; i < 100; i++) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`not within 5 s: ${what}`);
}

async function failure(p: Promise<unknown>) {
  try {
    await p;
  } catch (e) {
    if (isTartanError(e)) return { code: e.code, cni: e.cniCode, msg: e.message };
    throw e;
  }
  throw new Error('expected a failure');
}

beforeAll(async () => {
  kube = await startKube();
  admin = kube.client();
  await installCrds(admin);
  await applyDeployRbac(admin);
  for (const ns of [NS, OTHER]) await ensureNamespace(admin, ns);
  await clusterNet('tt-oam', {
    type: 'macvlan',
    device: 'eth1',
    ipv4: { cidr: '10.70.0.0/24' },
    vxlan: { vni: 70 },
  });
  await clusterNet('tt-only-b', {
    type: 'bridge',
    bridge: 'br-b',
    namespaces: [OTHER],
    ipv4: { cidr: '10.71.0.0/24' },
  });
  await tenantNet(NS, 'tt-internal', {
    type: 'bridge',
    bridge: 'br-i',
    ipv6: { cidr: 'fd00:72::/64' },
    // The pod below asks for a policy route here, which needs a table.
    routingTable: 172,
  });
  await tenantNet(OTHER, 'tt-secret', {
    type: 'bridge',
    bridge: 'br-s',
    ipv4: { cidr: '10.73.0.0/24' },
  });
  await admin.must({
    method: 'POST',
    path: `/apis/k8s.cni.cncf.io/v1/namespaces/${NS}/network-attachment-definitions`,
    body: {
      apiVersion: 'k8s.cni.cncf.io/v1',
      kind: 'NetworkAttachmentDefinition',
      metadata: { name: 'tt-sriov', namespace: NS },
      spec: {
        config: JSON.stringify({ cniVersion: '1.0.0', type: 'host-device', device: 'eth9' }),
      },
    },
  });
  // The agent's own identity: what it reads must be allowed by deploy/rbac/agent.yaml.
  const asAgent = admin.impersonate('system:serviceaccount:tartan-system:tartan-agent', [
    'system:serviceaccounts',
    'system:serviceaccounts:tartan-system',
    'system:authenticated',
  ]);
  const log = createLogger({ level: 'warn', write: (l: string) => warnings.push(l) });
  view = clusterView(asAgent, NODE, log);
  await view.synced();
}, 120_000);

afterAll(async () => {
  view?.close();
  await kube?.stop();
});

describe('agent cluster view (informers on a real API server)', () => {
  it('lists every network under its core name, as the agent service account, with defaults applied', async () => {
    const nets = await view.networks();
    expect([...nets.keys()].sort()).toEqual(
      ['tt-oam', 'tt-only-b', `${NS}/tt-internal`, `${OTHER}/tt-secret`].sort(),
    );
    // Parsed like a network file: the VXLAN port default is filled in.
    expect(nets.get('tt-oam')!.spec.vxlan).toEqual({ vni: 70, port: 4789 });
    expect(nets.get(`${NS}/tt-internal`)!.metadata.namespace).toBe(NS);
    expect(warnings.filter((w) => /forbidden|403/i.test(w))).toEqual([]);
  });

  it("turns a pod's annotation into requests on ClusterNetwork, TenantNetwork and NAD", async () => {
    const { metadata } = await pod(
      NS,
      'tt-p1',
      ask([
        { network: 'tt-oam', kind: 'ClusterNetwork', ip: '10.70.0.5', ip6: 'none', ifname: 'oam0' },
        { network: 'tt-internal', ip6: 'fd00:72::9', policyRoutes: [{ dst: 'fd00:99::/64' }] },
      ]),
    );
    const r = await view.forPod({ namespace: NS, name: 'tt-p1', uid: metadata.uid });
    expect(r.requests).toEqual([
      { network: 'tt-oam', ifname: 'oam0', ip: '10.70.0.5', ip6: 'none' },
      // A network without IPv4: "dynamic" becomes "none" for that family.
      {
        network: `${NS}/tt-internal`,
        ifname: 'net1',
        ip: 'none',
        ip6: 'fd00:72::9',
        policyRoutes: [{ dst: 'fd00:99::/64' }],
      },
    ]);
    expect(r.networks.get(`${NS}/tt-internal`)?.spec.ipv6?.cidr).toBe('fd00:72::/64');

    await pod(NS, 'tt-p2', { 'k8s.v1.cni.cncf.io/networks': 'tt-sriov@vf0, tt-oam' });
    const n = await view.forPod({ namespace: NS, name: 'tt-p2', uid: undefined });
    expect(n.requests?.map((q) => [q.network, q.ifname])).toEqual([
      [`nad:${NS}/tt-sriov`, 'vf0'],
      ['tt-oam', 'net1'],
    ]);
    expect(n.networks.get(`nad:${NS}/tt-sriov`)?.spec).toEqual({
      type: 'delegate',
      delegate: { cniVersion: '1.0.0', type: 'host-device', device: 'eth9' },
    });
  });

  it('a pod without annotations gets no requests (the conflist decides)', async () => {
    await pod(NS, 'tt-plain', {});
    const r = await view.forPod({ namespace: NS, name: 'tt-plain', uid: undefined });
    expect(r.requests).toBeUndefined();
    expect(r.networks.has('tt-oam')).toBe(true);
  });

  it('sees network changes through the watch', async () => {
    await clusterNet('tt-late', { type: 'bridge', bridge: 'br-l', ipv4: { cidr: '10.74.0.0/24' } });
    await until('tt-late appears', async () => (await view.networks()).has('tt-late'));
    const cur = await admin.must<{ metadata: { resourceVersion: string }; spec: object }>({
      method: 'GET',
      path: `${G}/clusternetworks/tt-late`,
    });
    await admin.must({
      method: 'PUT',
      path: `${G}/clusternetworks/tt-late`,
      body: {
        apiVersion: 'tartan.io/v1alpha1',
        kind: 'ClusterNetwork',
        metadata: { name: 'tt-late', resourceVersion: cur.metadata.resourceVersion },
        spec: { ...cur.spec, mtu: 1400 },
      },
    });
    await until(
      'the new MTU',
      async () => (await view.networks()).get('tt-late')?.spec.mtu === 1400,
    );
    await admin.must({ method: 'DELETE', path: `${G}/clusternetworks/tt-late` });
    await until('tt-late goes', async () => !(await view.networks()).has('tt-late'));
  });

  it('attaches no new pod to a network being deleted (its IPAM state is about to go)', async () => {
    await admin.must({
      method: 'POST',
      path: `${G}/clusternetworks`,
      body: {
        apiVersion: 'tartan.io/v1alpha1',
        kind: 'ClusterNetwork',
        // As the mutating webhook leaves it: the controller drops the finalizer later.
        metadata: { name: 'tt-dying', finalizers: ['tartan.io/ipam'] },
        spec: { type: 'bridge', bridge: 'br-d', ipv4: { cidr: '10.75.0.0/24' } },
      },
    });
    await pod(NS, 'tt-late-pod', ask([{ network: 'tt-dying', kind: 'ClusterNetwork' }]));
    await until('tt-dying appears', async () => (await view.networks()).has('tt-dying'));
    const ref = { namespace: NS, name: 'tt-late-pod', uid: undefined };
    expect((await view.forPod(ref)).requests?.[0]?.network).toBe('tt-dying');
    await admin.must({ method: 'DELETE', path: `${G}/clusternetworks/tt-dying` });
    await until('the refusal', async () => {
      const f = await failure(view.forPod(ref)).catch(() => undefined);
      return f?.code === 'ERR_CONFIG';
    });
    expect((await failure(view.forPod(ref))).msg).toBe(
      'ClusterNetwork tt-dying is being deleted: no pod can attach to it',
    );
    // Nor one without annotations (the conflist's interfaces): it is not among the networks
    // an ADD may use, while DEL, CHECK and GC still see it.
    await pod(NS, 'tt-late-plain', {});
    const plain = await view.forPod({ namespace: NS, name: 'tt-late-plain', uid: undefined });
    expect(plain.networks.has('tt-dying')).toBe(false);
    expect((await view.attachable()).has('tt-dying')).toBe(false);
    expect((await view.networks()).has('tt-dying')).toBe(true);
    await admin.must({
      method: 'PATCH',
      patchType: 'json',
      path: `${G}/clusternetworks/tt-dying`,
      body: [{ op: 'remove', path: '/metadata/finalizers' }],
    });
    await until('tt-dying goes', async () => !(await view.networks()).has('tt-dying'));
  });

  it('refuses what the pod may not use, and what does not exist, naming both', async () => {
    await pod(NS, 'tt-bad1', ask([{ network: 'tt-only-b', kind: 'ClusterNetwork' }]));
    expect(await failure(view.forPod({ namespace: NS, name: 'tt-bad1', uid: undefined }))).toEqual({
      code: 'ERR_IFACE_REQUEST',
      cni: 107,
      msg: expect.stringContaining(`ClusterNetwork "tt-only-b" does not admit namespace ${NS}`),
    });
    await pod(NS, 'tt-bad2', { 'k8s.v1.cni.cncf.io/networks': `${OTHER}/tt-secret` });
    expect(
      (await failure(view.forPod({ namespace: NS, name: 'tt-bad2', uid: undefined }))).msg,
    ).toMatch(/belong to another tenant/);
    await pod(NS, 'tt-bad3', ask([{ network: 'tt-nowhere' }]));
    expect(await failure(view.forPod({ namespace: NS, name: 'tt-bad3', uid: undefined }))).toEqual({
      code: 'ERR_UNKNOWN_NETWORK',
      cni: expect.any(Number),
      msg: expect.stringContaining(`no TenantNetwork "tt-nowhere" in namespace ${NS}`),
    });
    await pod(NS, 'tt-bad4', { 'tartan.io/interfaces': '[{"network": "tt-oam", "ip": 5}' });
    expect(
      await failure(view.forPod({ namespace: NS, name: 'tt-bad4', uid: undefined })),
    ).toMatchObject({ code: 'ERR_IFACE_REQUEST', msg: expect.stringContaining('not valid JSON') });
    expect(
      await failure(view.forPod({ namespace: NS, name: 'tt-gone', uid: undefined })),
    ).toMatchObject({ code: 'ERR_IFACE_REQUEST', msg: `pod ${NS}/tt-gone does not exist` });
  });

  it("the guide's cluster example: the files apply, and the pod gets what the guide says", async () => {
    const ex = join(ROOT, 'docs/examples');
    const docs = [
      join(ex, 'networks/oam.yaml'),
      join(ex, 'cluster/tenant-network.yaml'),
      join(ex, 'cluster/pod.yaml'),
    ].map((f) => parseAllDocuments(readFileSync(f, 'utf8'))[0]!.toJS() as Record<string, unknown>);
    await ensureNamespace(admin, 'telco-a');
    const pod = docs[2] as { spec: Record<string, unknown> };
    // Bound to this agent's node, as the scheduler would.
    await applyManifests(admin, [
      docs[0],
      docs[1],
      { ...pod, spec: { ...pod.spec, nodeName: NODE } },
    ]);
    await until('oam and media', async () => {
      const n = await view.networks();
      return n.has('oam') && n.has('telco-a/media');
    });
    const r = await view.forPod({ namespace: 'telco-a', name: 'upf-0', uid: undefined });
    expect(r.requests).toEqual([
      { network: 'oam', ifname: 'oam0', ip: '10.60.0.10', ip6: 'none' },
      {
        network: 'telco-a/media',
        ifname: 'net1',
        ip: 'dynamic',
        ip6: 'none',
        policyRoutes: [{ dst: '10.99.0.0/16' }],
      },
    ]);
    expect(r.networks.get('telco-a/media')?.spec.routingTable).toBe(170);
  });

  it('reads a pod of another node, or one the watch has not delivered yet, from the API', async () => {
    // Not on this node: not in the informer; the GET fallback still finds it.
    await pod(NS, 'tt-elsewhere', ask([{ network: 'tt-oam', kind: 'ClusterNetwork' }]), 'tt-other');
    const r = await view.forPod({ namespace: NS, name: 'tt-elsewhere', uid: undefined });
    expect(r.requests?.map((q) => q.network)).toEqual(['tt-oam']);
  });
});
