// deploy/rbac/*.yaml on a real API server (--authorization-mode=Node,RBAC), checked by
// impersonating the agent's and the controller's service accounts: what each needs works,
// and what it must not do is refused with 403 by the API server itself.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLeaderElection } from '../../src/controller/leader.js';
import { createIpam } from '../../src/ipam/index.js';
import { ensureNamespace, installCrds } from '../../src/k8s/apply.js';
import { createKubeClient, inClusterConnection } from '../../src/k8s/client.js';
import type { KubeClient, KubeRequest } from '../../src/k8s/client.js';
import { kubernetesStoreWith } from '../../src/store/kubernetes.js';
import { applyDeployRbac } from '../harness/deploy.js';
import { startKube, type KubeHandle } from '../harness/kube.js';

const G = '/apis/tartan.io/v1alpha1';
const SA = (name: string) => `system:serviceaccount:tartan-system:${name}`;
let kube: KubeHandle;
let admin: KubeClient;
let agent: KubeClient;
let controller: KubeClient;

beforeAll(async () => {
  kube = await startKube();
  admin = kube.client();
  await installCrds(admin);
  await applyDeployRbac(admin);
  await ensureNamespace(admin, 'tenant-a');
  await admin.must({
    method: 'POST',
    path: `${G}/clusternetworks`,
    body: {
      apiVersion: 'tartan.io/v1alpha1',
      kind: 'ClusterNetwork',
      metadata: { name: 'oam' },
      spec: { type: 'bridge', ipv4: { cidr: '10.90.0.0/24' } },
    },
  });
  await admin.must({
    method: 'POST',
    path: '/api/v1/namespaces/tenant-a/pods',
    body: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p' },
      spec: { containers: [{ name: 'c', image: 'busybox' }] },
    },
  });
  await admin.must({
    method: 'POST',
    path: `${G}/namespaces/tenant-a/tenantnetworks`,
    body: {
      apiVersion: 'tartan.io/v1alpha1',
      kind: 'TenantNetwork',
      metadata: { name: 't1', finalizers: ['tartan.io/segment'] },
      spec: { type: 'bridge' },
    },
  });
  agent = admin.impersonate(SA('tartan-agent'));
  controller = admin.impersonate(SA('tartan-controller'));
});
afterAll(async () => {
  await kube?.stop();
});

const status = async (c: KubeClient, req: KubeRequest) => (await c.request(req)).status;
const rec = (name: string, ns = 'tartan-system') => ({
  method: 'POST' as const,
  path: `${G}/namespaces/${ns}/tartanrecords`,
  body: {
    apiVersion: 'tartan.io/v1alpha1',
    kind: 'TartanRecord',
    metadata: { name },
    spec: { key: name, value: '1' },
  },
});
const attachment = (name: string) => ({
  method: 'POST' as const,
  path: `${G}/namespaces/tenant-a/attachments`,
  body: {
    apiVersion: 'tartan.io/v1alpha1',
    kind: 'Attachment',
    metadata: { name },
    spec: {
      pod: 'p',
      node: 'n1',
      containerId: 'c',
      ifname: 'net1',
      network: { kind: 'ClusterNetwork', name: 'oam' },
    },
  },
});

describe('the agent service account', () => {
  it('authenticates with its own token the way a pod does (inClusterConnection)', async () => {
    const tr = await admin.must<{ status: { token: string } }>({
      method: 'POST',
      path: '/api/v1/namespaces/tartan-system/serviceaccounts/tartan-agent/token',
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: { expirationSeconds: 600 },
      },
    });
    const dir = await mkdtemp(join(tmpdir(), 'tartan-sa-'));
    const env = { ...process.env };
    try {
      await writeFile(join(dir, 'token'), tr.status.token + '\n');
      await writeFile(join(dir, 'ca.crt'), kube.ca);
      const url = new URL(kube.url);
      process.env.KUBERNETES_SERVICE_HOST = url.hostname;
      process.env.KUBERNETES_SERVICE_PORT = url.port;
      const c = createKubeClient(inClusterConnection(dir));
      expect((await c.request({ method: 'GET', path: `${G}/clusternetworks` })).status).toBe(200);
      const res = await c.request<{ message: string }>({
        method: 'GET',
        path: `${G}/tenantconfigs`,
      });
      expect(res.status).toBe(403);
      expect(res.body.message).toContain(`User "${SA('tartan-agent')}" cannot list`);
      c.close();
    } finally {
      process.env = env;
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('allocates addresses through the Kubernetes store, as itself', async () => {
    const ipam = createIpam(kubernetesStoreWith(agent, { namespace: 'tartan-system' }));
    const spec = { type: 'bridge' as const, ipv4: { cidr: '10.90.0.0/24' } };
    const [a] = await ipam.allocate({
      network: 'oam',
      spec,
      node: 'n1',
      containerId: 'c1',
      ifname: 'net1',
    });
    expect(a?.address).toMatch(/^10\.90\.0\./);
  });

  it.each([
    ['lists ClusterNetworks', { method: 'GET', path: `${G}/clusternetworks` }, 200],
    [
      'patches a pod (network-status)',
      {
        method: 'PATCH',
        path: '/api/v1/namespaces/tenant-a/pods/p',
        body: { metadata: { annotations: { x: 'y' } } },
      },
      200,
    ],
    ['writes attachment records', attachment('a1'), 201],
    [
      'creates an event',
      {
        method: 'POST',
        path: '/api/v1/namespaces/tenant-a/events',
        body: {
          apiVersion: 'v1',
          kind: 'Event',
          metadata: { name: 'e1' },
          involvedObject: { kind: 'Pod', name: 'p', namespace: 'tenant-a' },
          reason: 'Attached',
          message: 'm',
        },
      },
      201,
    ],
    ['writes a TartanRecord in tartan-system', rec('agent-ok'), 201],
  ] as const)('may: %s', async (_what, req, want) => {
    expect(await status(agent, req as KubeRequest)).toBe(want);
  });

  it.each([
    [
      'create a ClusterNetwork',
      {
        method: 'POST',
        path: `${G}/clusternetworks`,
        body: {
          apiVersion: 'tartan.io/v1alpha1',
          kind: 'ClusterNetwork',
          metadata: { name: 'x' },
          spec: { type: 'bridge' },
        },
      },
    ],
    ['delete a ClusterNetwork', { method: 'DELETE', path: `${G}/clusternetworks/oam` }],
    [
      'write network status',
      {
        method: 'PATCH',
        path: `${G}/clusternetworks/oam/status`,
        body: { status: { attachments: 1 } },
      },
    ],
    ['read TenantConfigs', { method: 'GET', path: `${G}/tenantconfigs` }],
    ['delete a pod', { method: 'DELETE', path: '/api/v1/namespaces/tenant-a/pods/p' }],
    ['read secrets', { method: 'GET', path: '/api/v1/namespaces/tartan-system/secrets' }],
    ['write TartanRecords outside tartan-system', rec('agent-bad', 'tenant-a')],
    [
      "take the controller's Lease",
      {
        method: 'POST',
        path: '/apis/coordination.k8s.io/v1/namespaces/tartan-system/leases',
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: 'tartan-controller' },
          spec: {},
        },
      },
    ],
  ] as const)('may not: %s', async (_what, req) => {
    const res = await agent.request<{ message: string }>(req as KubeRequest);
    expect(res.status).toBe(403);
    expect(res.body.message).toContain(`User "${SA('tartan-agent')}" cannot`);
  });
});

describe('the controller service account', () => {
  it('holds its Lease', async () => {
    const le = startLeaderElection({
      client: controller,
      namespace: 'tartan-system',
      name: 'tartan-controller',
      identity: 'c1',
      retryPeriodMs: 100,
    });
    try {
      const deadline = Date.now() + 5000;
      while (!le.isLeader() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(le.isLeader()).toBe(true);
    } finally {
      await le.stop();
    }
  });

  it.each([
    [
      'writes network status',
      {
        method: 'PATCH',
        path: `${G}/clusternetworks/oam/status`,
        body: { status: { attachments: 1 } },
      },
      200,
    ],
    ['lists pods', { method: 'GET', path: '/api/v1/pods' }, 200],
    ['lists attachments', { method: 'GET', path: `${G}/attachments` }, 200],
    ['reads TenantConfigs', { method: 'GET', path: `${G}/tenantconfigs` }, 200],
    ['writes a TartanRecord in tartan-system', rec('ctl-ok'), 201],
    [
      "creates a claim's IPAMClaim",
      {
        method: 'POST',
        path: '/apis/k8s.cni.cncf.io/v1alpha1/namespaces/tenant-a/ipamclaims',
        body: {
          apiVersion: 'k8s.cni.cncf.io/v1alpha1',
          kind: 'IPAMClaim',
          metadata: { name: 'db-0' },
          spec: { network: 'oam', interface: 'net1' },
        },
      },
      201,
    ],
    [
      'puts its finalizer on an IPAMClaim',
      {
        method: 'PATCH',
        path: '/apis/k8s.cni.cncf.io/v1alpha1/namespaces/tenant-a/ipamclaims/db-0',
        body: { metadata: { finalizers: ['tartan.io/claim'] } },
      },
      200,
    ],
    [
      'reads the IPAMClaim CRD',
      {
        method: 'GET',
        path: '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/ipamclaims.k8s.cni.cncf.io',
      },
      200,
    ],
    [
      "writes an IPAMClaim's status",
      {
        method: 'PATCH',
        path: '/apis/k8s.cni.cncf.io/v1alpha1/namespaces/tenant-a/ipamclaims/db-0/status',
        body: { status: { ips: ['10.0.0.5/24'] } },
      },
      200,
    ],
    [
      'sets the IPAM finalizer of a ClusterNetwork',
      {
        method: 'PATCH',
        path: `${G}/clusternetworks/oam`,
        body: { metadata: { finalizers: ['tartan.io/ipam'] } },
      },
      200,
    ],
    [
      'drops the segment finalizer of a TenantNetwork',
      {
        method: 'PATCH',
        path: `${G}/namespaces/tenant-a/tenantnetworks/t1`,
        body: { metadata: { finalizers: [] } },
      },
      200,
    ],
  ] as const)('may: %s', async (_what, req, want) => {
    expect(await status(controller, req as KubeRequest)).toBe(want);
  });

  it.each([
    // Not here: changing a network's spec. Patching networks' finalizers needs `patch`, which
    // RBAC cannot narrow to metadata (deploy/rbac/controller.yaml); the webhook refuses moves.
    [
      'patch a pod',
      {
        method: 'PATCH',
        path: '/api/v1/namespaces/tenant-a/pods/p',
        body: { metadata: { annotations: { x: 'z' } } },
      },
    ],
    ['create attachment records', attachment('a2')],
    [
      'delete an IPAMClaim',
      {
        method: 'DELETE',
        path: '/apis/k8s.cni.cncf.io/v1alpha1/namespaces/tenant-a/ipamclaims/db-0',
      },
    ],
    ['read secrets', { method: 'GET', path: '/api/v1/namespaces/tartan-system/secrets' }],
    [
      'update another Lease',
      {
        method: 'PUT',
        path: '/apis/coordination.k8s.io/v1/namespaces/tartan-system/leases/other',
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: 'other' },
          spec: {},
        },
      },
    ],
    [
      'edit a foreign webhook configuration',
      {
        method: 'GET',
        path: '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/someone-else',
      },
    ],
  ] as const)('may not: %s', async (_what, req) => {
    const res = await controller.request<{ message: string }>(req as KubeRequest);
    expect(res.status).toBe(403);
    expect(res.body.message).toContain(`User "${SA('tartan-controller')}" cannot`);
  });
});
