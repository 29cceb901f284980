// The controller process as deployed: deploy/ manifests applied, its own service-account
// token (not the admin certificate), a serving certificate in a directory as the Secret
// would mount it. It must take the Lease, fill in the webhook caBundle, serve the webhook and
// reconcile with no more rights than deploy/rbac gives it.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runController, type RunningController } from '../../src/controller/main.js';
import { webhookConfigurations } from '../../src/controller/registration.js';
import { applyManifests, installCrds } from '../../src/k8s/apply.js';
import { createKubeClient, type KubeClient } from '../../src/k8s/client.js';
import { applyDeployRbac, yamlDocs } from '../harness/deploy.js';
import { startKube, type KubeHandle } from '../harness/kube.js';

const ROOT = resolve(import.meta.dirname, '../..');
const G = '/apis/tartan.io/v1alpha1';
const WEBHOOKS = '/apis/admissionregistration.k8s.io/v1';
let kube: KubeHandle;
let admin: KubeClient;
let dir: string;
let ctl: RunningController | undefined;

beforeAll(async () => {
  kube = await startKube();
  admin = kube.client();
  await installCrds(admin);
  await applyDeployRbac(admin);
  await applyManifests(admin, await yamlDocs(join(ROOT, 'deploy/webhooks.yaml')));
  dir = await mkdtemp(join(tmpdir(), 'tartan-ctl-'));
  const tls = await kube.issueServingCert('tartan-webhook');
  await writeFile(join(dir, 'tls.crt'), tls.cert);
  await writeFile(join(dir, 'tls.key'), tls.key);
  await writeFile(join(dir, 'ca.crt'), kube.ca);
});
afterAll(async () => {
  await ctl?.stop();
  await kube?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the controller process', () => {
  it('deploy/webhooks.yaml is what src/controller/registration.ts builds', async () => {
    const h = webhookConfigurations(
      { service: { namespace: 'tartan-system', name: 'tartan-webhook' } },
      '',
    );
    expect(await yamlDocs(join(ROOT, 'deploy/webhooks.yaml'))).toEqual([h.validating, h.mutating]);
  });

  it('runs as its service account: Lease, caBundle, webhook, reconcile', async () => {
    const tr = await admin.must<{ status: { token: string } }>({
      method: 'POST',
      path: '/api/v1/namespaces/tartan-system/serviceaccounts/tartan-controller/token',
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: {} },
    });
    ctl = await runController(
      { TARTAN_WEBHOOK_DIR: dir, TARTAN_WEBHOOK_PORT: '0', POD_NAME: 'tartan-controller-0' },
      { url: kube.url, ca: kube.ca, token: tr.status.token },
      { host: '127.0.0.1', intervalMs: 200 },
    );
    const deadline = Date.now() + 10_000;
    while (!ctl.isLeader() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(ctl.isLeader()).toBe(true);
    const lease = await admin.must<{ spec: { holderIdentity: string } }>({
      method: 'GET',
      path: '/apis/coordination.k8s.io/v1/namespaces/tartan-system/leases/tartan-controller',
    });
    expect(lease.spec.holderIdentity).toBe('tartan-controller-0');

    const hook = await admin.must<{ webhooks: { clientConfig: { caBundle: string } }[] }>({
      method: 'GET',
      path: `${WEBHOOKS}/validatingwebhookconfigurations/tartan`,
    });
    expect(Buffer.from(hook.webhooks[0]!.clientConfig.caBundle, 'base64').toString()).toBe(kube.ca);

    const wh = createKubeClient({ url: ctl.webhookUrl, ca: kube.ca });
    expect(await wh.request({ method: 'GET', path: '/healthz' })).toEqual({
      status: 200,
      body: 'ok',
    });
    wh.close();

    // The Service the configurations name does not exist here: remove them so the API
    // server does not fail closed on the network created next.
    await admin.must({
      method: 'DELETE',
      path: `${WEBHOOKS}/validatingwebhookconfigurations/tartan`,
    });
    await admin.must({
      method: 'DELETE',
      path: `${WEBHOOKS}/mutatingwebhookconfigurations/tartan`,
    });
    // The API server drops them asynchronously: until it has, the create fails closed.
    const net = {
      apiVersion: 'tartan.io/v1alpha1',
      kind: 'ClusterNetwork',
      metadata: { name: 'm' },
      spec: { type: 'bridge', ipv4: { cidr: '10.95.0.0/28' } },
    };
    const by = Date.now() + 15_000;
    while (
      (await admin.request({ method: 'POST', path: `${G}/clusternetworks`, body: net })).status !==
      201
    ) {
      if (Date.now() > by) throw new Error('webhook configurations never went away');
      await new Promise((r) => setTimeout(r, 200));
    }
    const until = Date.now() + 10_000;
    let status: { capacity?: { ipv4?: string } } | undefined;
    while (Date.now() < until) {
      status = (
        await admin.must<{ status?: typeof status }>({
          method: 'GET',
          path: `${G}/clusternetworks/m`,
        })
      ).status;
      if (status?.capacity) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toMatchObject({ capacity: { ipv4: '14' }, attachments: 0 });
  });
});
