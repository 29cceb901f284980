// tartanctl against a real API server: networks with their usage from the Kubernetes
// store, a pod's interfaces from its Attachment objects, and the topology picture.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIpam } from '../../src/ipam/index.js';
import { ensureNamespace, installCrds } from '../../src/k8s/apply.js';
import { writeAttachment } from '../../src/k8s/attachments.js';
import { run } from '../../src/lab/sh.js';
import type { NetworkSpec } from '../../src/network/schema.js';
import { createKubernetesStore } from '../../src/store/kubernetes.js';
import { startKube, type KubeHandle } from '../harness/kube.js';

const root = join(import.meta.dirname, '../..');
let kube: KubeHandle;
const ctl = (...a: string[]) =>
  run(
    'node',
    [join(root, 'dist/tartanctl.js'), ...a, '--kubeconfig', kube.kubeconfigPath],
    undefined,
    process.env,
  );
const spec: NetworkSpec = { type: 'macvlan', device: 'eth1', ipv4: { cidr: '10.77.0.0/24' } };

beforeAll(async () => {
  const b = await run('node', [join(root, 'scripts/build.mjs')], undefined, process.env);
  if (b.code !== 0) throw new Error(`build failed: ${b.stderr}`);
  kube = await startKube();
  const admin = kube.client();
  await installCrds(admin);
  for (const ns of ['tartan-system', 'ran']) await ensureNamespace(admin, ns);
  await admin.must({
    method: 'POST',
    path: '/apis/tartan.io/v1alpha1/clusternetworks',
    body: {
      apiVersion: 'tartan.io/v1alpha1',
      kind: 'ClusterNetwork',
      metadata: { name: 'oam' },
      spec,
    },
  });
  const store = await createKubernetesStore({
    url: kube.url,
    ca: kube.ca,
    cert: kube.clientCert,
    key: kube.clientKey,
  });
  const ipam = createIpam(store);
  for (const [pod, node] of [
    ['du-0', 'node-a'],
    ['du-1', 'node-b'],
  ] as const) {
    const [a] = await ipam.allocate({
      network: 'oam',
      spec,
      node,
      containerId: `c-${pod}`,
      ifname: 'net1',
      // du-0 keeps its address in a claim (the agent qualifies it with the namespace).
      ...(pod === 'du-0' ? { claim: 'ran/du-0' } : {}),
    });
    await writeAttachment(admin, {
      pod: { name: pod, namespace: 'ran', uid: `uid-${pod}` },
      node,
      containerId: `c-${pod}`,
      ifname: 'net1',
      network: { kind: 'ClusterNetwork', name: 'oam' },
      ips: [`${a!.address}/${a!.prefixLength}`],
    });
  }
  await store.close();
}, 240_000);

afterAll(async () => {
  await kube?.stop();
});

describe('tartanctl --kubeconfig', () => {
  it('networks: usage read from the Kubernetes store', async () => {
    const r = await ctl('networks');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/oam\s+macvlan\s+eth1\s+-\s+10\.77\.0\.0\/24\s+v4: 254\s+v4: 2\s+2/);
  });

  it('pod: interfaces from the Attachment objects; pools: one block per node', async () => {
    const r = await ctl('pod', 'du-1');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/node-b\s+net1\s+oam\s+macvlan\s+10\.77\.0\.\d+\/24/);
    const p = await ctl('pools', 'oam');
    expect(p.stdout).toMatch(/v4\s+10\.77\.0\.\d+\/26\s+node-a\s+1/);
    expect(p.stdout).toMatch(/v4\s+10\.77\.0\.\d+\/26\s+node-b\s+1/);
  });

  it('topology: both nodes, both pods, the network', async () => {
    const out = '/tmp/tartan-k8s-topology.dot';
    try {
      expect((await ctl('topology', '--out', out)).code).toBe(0);
      const dot = readFileSync(out, 'utf8');
      expect(dot).toMatch(/cluster_node-a/);
      expect(dot).toMatch(/"pod:c-du-0" -- "net:oam"/);
      expect(dot).toMatch(/label="ran\/du-1"/);
    } finally {
      rmSync(out, { force: true });
    }
  });

  it('claims: the holder named from its Attachment; release-claim points at the IPAMClaim', async () => {
    const r = await ctl('claims', 'oam');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/ran\/du-0\s+10\.77\.0\.\d+\/24\s+ran\/du-0 net1/);
    const rel = await ctl('release-claim', 'oam', 'ran/du-0');
    expect(rel.code).toBe(1);
    expect(rel.stderr).toMatch(/kubectl delete ipamclaim -n ran du-0/);
    expect((await ctl('claims', 'oam')).stdout).toMatch(/ran\/du-0/);
    // The controller forgets a network's IPAM records (network-ipam.ts), not tartanctl.
    const forget = await ctl('forget-ipam', 'oam');
    expect(forget.code).toBe(1);
    expect(forget.stderr).toMatch(/in a cluster the controller removes a network's IPAM records/);
    expect((await ctl('claims', 'oam')).stdout).toMatch(/ran\/du-0/);
  });

  it('check refuses to run against the cluster (it is node-local)', async () => {
    const r = await ctl('check');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/run it on the node/);
  });
});
