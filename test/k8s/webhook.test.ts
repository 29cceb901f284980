// The admission webhook registered with a real API server (Validating- and
// MutatingWebhookConfiguration pointing at a loopback URL, the cluster CA as caBundle):
// every refusal below is the API server's answer to a client, as kubectl would show it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { registerWebhooks, webhookConfigurations } from '../../src/controller/registration.js';
import { reconcileOnce } from '../../src/controller/reconcile.js';
import { reconcileSegments } from '../../src/controller/segments.js';
import { startWebhook, type WebhookServer } from '../../src/controller/webhook.js';
import { createIpam } from '../../src/ipam/index.js';
import { ensureNamespace, installCrds } from '../../src/k8s/apply.js';
import type { KubeClient, KubeStatus } from '../../src/k8s/client.js';
import {
  NETWORK_STATUS_ANNOTATION,
  NPWG_ANNOTATION,
  TARTAN_ANNOTATION,
} from '../../src/k8s/annotations.js';
import { deleteAttachment, writeAttachment } from '../../src/k8s/attachments.js';
import { networkStatusOf, writeNetworkStatus } from '../../src/k8s/network-status.js';
import type { NetworkSpec } from '../../src/network/schema.js';
import { createKubernetesStore } from '../../src/store/kubernetes.js';
import type { Store } from '../../src/store/types.js';
import { startKube, type KubeHandle } from '../harness/kube.js';

const G = '/apis/tartan.io/v1alpha1';
let kube: KubeHandle;
let admin: KubeClient;
let store: Store;
let webhook: WebhookServer;

const cnet = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'tartan.io/v1alpha1',
  kind: 'ClusterNetwork',
  metadata: { name },
  spec,
});
const tnet = (ns: string, name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'tartan.io/v1alpha1',
  kind: 'TenantNetwork',
  metadata: { name, namespace: ns },
  spec,
});
const tnets = (ns: string) => `${G}/namespaces/${ns}/tenantnetworks`;

async function send(
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
) {
  return admin.request<KubeStatus & { spec?: NetworkSpec; metadata?: { resourceVersion: string } }>(
    { method, path, body },
  );
}
async function denied(
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<string> {
  const res = await send(method, path, body);
  expect(res.status, JSON.stringify(res.body)).toBeGreaterThanOrEqual(400);
  return res.body.message ?? '';
}

beforeAll(async () => {
  kube = await startKube();
  admin = kube.client();
  await installCrds(admin);
  for (const ns of ['tartan-system', 'tenant-a', 'tenant-b', 'orphan'])
    await ensureNamespace(admin, ns);
  store = await createKubernetesStore({
    url: kube.url,
    ca: kube.ca,
    cert: kube.clientCert,
    key: kube.clientKey,
    namespace: 'tartan-system',
  });
  webhook = await startWebhook(
    { client: kube.client(), store },
    await kube.issueServingCert('tartan-webhook'),
  );
  await registerWebhooks(admin, webhookConfigurations({ url: webhook.url }, kube.ca));
  // The API server picks up new webhook configurations asynchronously: wait for a denial.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const res = await send(
      'POST',
      `${G}/clusternetworks?dryRun=All`,
      cnet('probe', { type: 'bridge', ipv4: { cidr: '10.0.0.1/24' } }),
    );
    if (res.status === 403 || res.status === 422) break;
    if (Date.now() > deadline) throw new Error(`webhook never called: ${JSON.stringify(res.body)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  await send('POST', `${G}/tenantconfigs`, {
    apiVersion: 'tartan.io/v1alpha1',
    kind: 'TenantConfig',
    metadata: { name: 'tenant-a' },
    spec: {
      namespaces: ['tenant-a'],
      hostDevices: [
        { name: 'eth1', vnis: [{ start: 1000, end: 1009 }] },
        { name: 'eth2', vlans: [{ start: 100, end: 101 }] },
        { name: 'eth3' },
      ],
    },
  });
  await send('POST', `${G}/tenantconfigs`, {
    apiVersion: 'tartan.io/v1alpha1',
    kind: 'TenantConfig',
    metadata: { name: 'tenant-b' },
    spec: {
      namespaces: ['tenant-b'],
      hostDevices: [{ name: 'eth1', vnis: [{ start: 2000, end: 2009 }] }],
    },
  });
}, 180_000);

afterAll(async () => {
  await store?.close();
  await webhook?.close();
  await kube?.stop();
});

describe('network validation', () => {
  it.each([
    [
      { type: 'bridge', ipv4: { cidr: '10.0.0.1/24' } },
      'ClusterNetwork bad: spec.ipv4: cidr "10.0.0.1/24" has host bits set',
    ],
    [
      {
        type: 'bridge',
        ipv4: { cidr: '10.0.0.0/24', pools: [{ start: '10.0.1.1', end: '10.0.1.5' }] },
      },
      'pools[0] 10.0.1.1-10.0.1.5 is not inside 10.0.0.0/24',
    ],
    [
      { type: 'bridge', ipv4: { cidr: '10.0.0.0/24', gateway: '10.0.9.1' } },
      'gateway 10.0.9.1 is not inside 10.0.0.0/24',
    ],
    [
      {
        type: 'bridge',
        ipv4: { cidr: '10.0.0.0/24', routes: [{ dst: '10.9.0.0/16', gw: '10.1.0.1' }] },
      },
      'gateway 10.1.0.1 is not inside 10.0.0.0/24',
    ],
    [
      { type: 'bridge', ipv4: { cidr: '10.0.0.0/24', routes: [{ dst: '10.9.0.0/16' }] } },
      'a route without "gw" needs the network\'s "gateway"',
    ],
    [
      { type: 'bridge', ipv6: { cidr: 'fd00::/64', excludes: ['fd01::1'] } },
      'excludes[0] "fd01::1" does not overlap fd00::/64',
    ],
    [{ type: 'bridge', ipv4: { cidr: '10.0.0.0/33' } }, 'is not an IPv4 CIDR'],
    [
      { type: 'macvlan', device: 'eth1', vxlan: { vni: 9, group: '10.1.1.1' } },
      'spec.vxlan.group: 10.1.1.1 is not a multicast address',
    ],
    [
      { type: 'bridge', devicePool: 'intel.com/vf' },
      'only type host-device takes a device from a pool',
    ],
    [
      { type: 'host-device', devicePool: 'intel.com/vf' },
      'device-plugin pools (SR-IOV) are not supported yet',
    ],
  ])('refuses %j', async (spec, message) => {
    const msg = await denied('POST', `${G}/clusternetworks`, cnet('bad', spec));
    expect(msg).toContain('admission webhook "networks.tartan.io" denied the request');
    expect(msg).toContain(message);
  });

  it('refuses a network name the CNI core would refuse (not a DNS label)', async () => {
    const spec = { type: 'bridge', ipv4: { cidr: '10.0.0.0/24' } };
    const msg = await denied('POST', `${G}/clusternetworks`, cnet('oam.v1', spec));
    expect(msg).toContain('metadata.name must be a DNS label');
  });

  it('keeps a network in use from being deleted or moved, and frees it once unused', async () => {
    const spec = { type: 'macvlan', device: 'eth1', vlan: 10, ipv4: { cidr: '10.50.0.0/24' } };
    expect((await send('POST', `${G}/clusternetworks`, cnet('oam', spec))).status).toBe(201);
    const ipam = createIpam(store);
    const id = {
      network: 'oam',
      spec: spec as NetworkSpec,
      node: 'n1',
      containerId: 'c1',
      ifname: 'net1',
    };
    await ipam.allocate(id);
    const path = `${G}/clusternetworks/oam`;
    expect(await denied('PATCH', path, { spec: { vlan: 11 } })).toContain(
      'ClusterNetwork oam is in use (1 address allocated): vlan 10 -> 11 would cut those pods off',
    );
    expect(await denied('PATCH', path, { spec: { device: 'eth2' } })).toContain(
      'device eth1 -> eth2',
    );
    expect(await denied('DELETE', path)).toContain(
      'ClusterNetwork oam is in use (1 address allocated); delete the pods',
    );
    // A change that moves nothing is fine while in use.
    expect((await send('PATCH', path, { spec: { mtu: 1400 } })).status).toBe(200);
    await ipam.release(id);
    expect((await send('PATCH', path, { spec: { vlan: 11 } })).status).toBe(200);
    expect((await send('DELETE', path)).status).toBe(200);
  });

  it('counts attachment records as use', async () => {
    const made = await send('POST', `${G}/clusternetworks`, cnet('att', { type: 'bridge' }));
    expect(made.status).toBe(201);
    // The mutating webhook: its IPAM state goes before the network does (network-ipam.ts).
    expect((made.body.metadata as { finalizers?: string[] }).finalizers).toEqual([
      'tartan.io/ipam',
    ]);
    const pod = { name: 'p1', namespace: 'tenant-a', uid: 'u1' };
    const network = { kind: 'ClusterNetwork' as const, name: 'att' };
    await writeAttachment(admin, {
      pod,
      node: 'n1',
      containerId: 'c',
      ifname: 'net1',
      network,
      ips: [],
    });
    expect(await denied('DELETE', `${G}/clusternetworks/att`)).toContain(
      '(1 pod interface attached)',
    );
    await deleteAttachment(admin, 'tenant-a', 'p1', 'net1');
    await deleteAttachment(admin, 'tenant-a', 'p1', 'net1'); // idempotent
    expect((await send('DELETE', `${G}/clusternetworks/att`)).status).toBe(200);
  });
});

describe('tenants and VNI assignment', () => {
  it('refuses TenantConfigs that share a namespace or overlap ranges', async () => {
    const tc = (name: string, spec: Record<string, unknown>) => ({
      apiVersion: 'tartan.io/v1alpha1',
      kind: 'TenantConfig',
      metadata: { name },
      spec,
    });
    expect(
      await denied('POST', `${G}/tenantconfigs`, tc('x', { namespaces: ['tenant-a'] })),
    ).toContain('TenantConfig x: namespace tenant-a already belongs to tenant tenant-a');
    expect(
      await denied(
        'POST',
        `${G}/tenantconfigs`,
        tc('x', {
          namespaces: ['x'],
          hostDevices: [{ name: 'eth9', vnis: [{ start: 1005, end: 1100 }] }],
        }),
      ),
    ).toContain('VNIs 1005-1100 overlap 1000-1009 of tenant tenant-a');
    expect(
      await denied(
        'POST',
        `${G}/tenantconfigs`,
        tc('x', {
          namespaces: ['x'],
          hostDevices: [
            {
              name: 'e',
              vlans: [
                { start: 1, end: 5 },
                { start: 5, end: 6 },
              ],
            },
          ],
        }),
      ),
    ).toContain('VLANs on e: ranges 1-5 and 5-6 overlap');
  });

  it('gives concurrently created TenantNetworks distinct VNIs, then runs out, then reuses a freed one', async () => {
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        send(
          'POST',
          tnets('tenant-a'),
          tnet('tenant-a', `v${i}`, {
            type: 'macvlan',
            device: 'eth1',
            ipv4: { cidr: '10.60.0.0/24' },
          }),
        ),
      ),
    );
    const created = results.filter((r) => r.status === 201);
    expect(created).toHaveLength(10);
    const vnis = created.map((r) => r.body.spec!.vxlan!.vni);
    expect(new Set(vnis)).toEqual(
      new Set([1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009]),
    );
    for (const r of results.filter((x) => x.status !== 201))
      expect(r.body.message).toContain(
        'tenant tenant-a has no free VNI left on eth1 (ranges 1000-1009)',
      );
    const victim = created[3]!.body as unknown as { metadata: { name: string }; spec: NetworkSpec };
    const victimPath = `${tnets('tenant-a')}/${victim.metadata.name}`;
    expect((await send('DELETE', victimPath)).status).toBe(200);
    // Until the controller has freed its VNI, the network stays (finalizer) and keeps it.
    const dying = await admin.must<{
      metadata: { deletionTimestamp?: string; finalizers?: string[] };
    }>({ method: 'GET', path: victimPath });
    expect(dying.metadata).toMatchObject({
      deletionTimestamp: expect.any(String),
      finalizers: ['tartan.io/segment', 'tartan.io/ipam'],
    });
    expect(
      (
        await send(
          'POST',
          tnets('tenant-a'),
          tnet('tenant-a', 'early', { type: 'macvlan', device: 'eth1' }),
        )
      ).body.message,
    ).toContain('no free VNI left');
    // The controller's round: the VNI is freed, then the (empty) IPAM state is forgotten.
    const round = await reconcileOnce({ client: admin, store, forgetGraceMs: 0 });
    expect(round.finalized).toBe(1);
    expect(round.networkIpam).toContain(`tenant-a/${victim.metadata.name}: forgotten`);
    expect((await send('GET', victimPath)).status).toBe(404);
    // A vxlan without a VNI (its remotes only) gets one assigned too.
    const again = await send(
      'POST',
      tnets('tenant-a'),
      tnet('tenant-a', 'again', {
        type: 'macvlan',
        device: 'eth1',
        vxlan: { remotes: ['192.0.2.9'] },
      }),
    );
    expect(again.status, JSON.stringify(again.body)).toBe(201);
    expect(again.body.spec!.vxlan).toMatchObject({
      vni: victim.spec.vxlan!.vni,
      remotes: ['192.0.2.9'],
    });
    // Another tenant's VNIs come from its own range.
    const b = await send(
      'POST',
      tnets('tenant-b'),
      tnet('tenant-b', 'b1', { type: 'macvlan', device: 'eth1' }),
    );
    expect(b.body.spec!.vxlan!.vni).toBe(2000);
  });

  it('assigns VLANs on a VLAN device and enforces what the tenant was offered', async () => {
    const mk = (name: string, spec: Record<string, unknown>) =>
      send('POST', tnets('tenant-a'), tnet('tenant-a', name, spec));
    expect((await mk('l1', { type: 'ipvlan', device: 'eth2' })).body.spec!.vlan).toBe(100);
    expect((await mk('l2', { type: 'ipvlan', device: 'eth2', vlan: 101 })).body.spec!.vlan).toBe(
      101,
    );
    const msg = async (name: string, spec: Record<string, unknown>) =>
      (await mk(name, spec)).body.message;
    expect(await msg('l3', { type: 'ipvlan', device: 'eth2', vlan: 101 })).toContain(
      'VLAN 101 on eth2 is already used by TenantNetwork tenant-a/l2',
    );
    expect(await msg('l4', { type: 'ipvlan', device: 'eth2', vlan: 300 })).toContain(
      "VLAN 300 on eth2 is outside tenant tenant-a's VLAN ranges (100-101)",
    );
    expect(await msg('l5', { type: 'ipvlan', device: 'eth9' })).toContain(
      'host device eth9 is not offered to tenant tenant-a (offered: eth1, eth2, eth3)',
    );
    expect(await msg('l6', { type: 'ipvlan', device: 'eth2', vxlan: { vni: 5 } })).toContain(
      'offered to tenant tenant-a with VLANs, not VXLAN',
    );
    expect(await msg('l7', { type: 'ipvlan', device: 'eth3', vlan: 5 })).toContain(
      'offered to tenant tenant-a untagged',
    );
    expect(
      (await send('POST', tnets('orphan'), tnet('orphan', 'o', { type: 'bridge' }))).body.message,
    ).toContain('namespace orphan belongs to no TenantConfig');
    expect(await denied('PATCH', `${tnets('tenant-a')}/l1`, { spec: { vlan: 101 } })).toContain(
      'vlan 100 -> 101: the VLAN/VNI and device of a TenantNetwork are fixed at creation',
    );
    // Nothing past the offer: the operator's bridge, or a delegate naming any host device.
    expect(await msg('l8', { type: 'bridge', bridge: 'br-oam' })).toContain(
      'a TenantNetwork cannot name a host bridge (br-oam)',
    );
    expect(
      await msg('l9', { type: 'delegate', delegate: { type: 'macvlan', master: 'eth9' } }),
    ).toContain('a TenantNetwork cannot delegate to a CNI configuration');
    expect((await mk('l10', { type: 'bridge' })).status).toBe(201);
    expect(
      await denied('PATCH', `${tnets('tenant-a')}/l10`, { spec: { bridge: 'cni0' } }),
    ).toContain('bridge none -> cni0');
  });
});

describe('segments shared between ClusterNetworks and TenantNetworks', () => {
  it("never gives a tenant a ClusterNetwork's VLAN or VNI, nor the reverse", async () => {
    await ensureNamespace(admin, 'tenant-c');
    await send('POST', `${G}/tenantconfigs`, {
      apiVersion: 'tartan.io/v1alpha1',
      kind: 'TenantConfig',
      metadata: { name: 'tenant-c' },
      spec: {
        namespaces: ['tenant-c'],
        hostDevices: [
          { name: 'eth5', vlans: [{ start: 200, end: 201 }] },
          { name: 'eth6', vnis: [{ start: 3000, end: 3001 }] },
        ],
      },
    });
    const cn = (name: string, spec: Record<string, unknown>) =>
      send('POST', `${G}/clusternetworks`, cnet(name, spec));
    const tn = (name: string, spec: Record<string, unknown>) =>
      send('POST', tnets('tenant-c'), tnet('tenant-c', name, spec));
    const vlan200 = { type: 'ipvlan', device: 'eth5', vlan: 200 };
    expect((await cn('op-200', vlan200)).status).toBe(201);
    // Two operator networks on one VLAN: the operator's own choice.
    expect((await cn('op-200b', vlan200)).status).toBe(201);
    expect((await tn('t-auto', { type: 'ipvlan', device: 'eth5' })).body.spec!.vlan).toBe(201);
    expect((await tn('t-200', vlan200)).body.message).toContain(
      'VLAN 200 on eth5 is already used by ClusterNetwork op-200',
    );
    expect(
      (await cn('op-201', { type: 'ipvlan', device: 'eth5', vlan: 201 })).body.message,
    ).toContain('VLAN 201 on eth5 is already used by TenantNetwork tenant-c/t-auto');
    expect(
      (await cn('op-vni', { type: 'macvlan', device: 'eth6', vxlan: { vni: 3000 } })).status,
    ).toBe(201);
    expect((await tn('t-vni', { type: 'macvlan', device: 'eth6' })).body.spec!.vxlan!.vni).toBe(
      3001,
    );
    // A ClusterNetwork made before reservations existed (its record is missing) gets one.
    const vniKey = 'segments/vni/3000';
    const rec = (await store.get(vniKey))!;
    expect(await store.delete(vniKey, rec.rev)).toBe(true);
    await reconcileSegments(admin, store, 60_000);
    expect((await store.get(vniKey))?.value).toMatchObject({ namespace: '', name: 'op-vni' });
    // An overlap from before reservations (record gone, a tenant took the VNI): changing the
    // ClusterNetwork without changing its segment is not refused for it.
    expect(await store.delete(vniKey, (await store.get(vniKey))!.rev)).toBe(true);
    expect(
      (await tn('t-3000', { type: 'macvlan', device: 'eth6', vxlan: { vni: 3000 } })).status,
    ).toBe(201);
    const moved = await send('PATCH', `${G}/clusternetworks/op-vni`, { spec: { type: 'ipvlan' } });
    expect(moved.status, JSON.stringify(moved.body)).toBe(200);
    // The record stays while any ClusterNetwork carries the VLAN, and goes with the last.
    const vlanKey = 'segments/vlan/eth5/200';
    // A deleted network stays until the controller's round has forgotten its IPAM state.
    const deleted = async (name: string) => {
      await send('DELETE', `${G}/clusternetworks/${name}`);
      expect(
        (await reconcileOnce({ client: admin, store, gcGraceMs: 3_600_000, forgetGraceMs: 0 }))
          .networkIpam,
      ).toContain(`${name}: forgotten`);
    };
    await deleted('op-200');
    expect(await reconcileSegments(admin, store, 0)).not.toContain(vlanKey);
    await deleted('op-200b');
    expect(await reconcileSegments(admin, store, 0)).toContain(vlanKey);
    expect((await tn('t-200', vlan200)).status).toBe(201);
  });
});

describe('the documented examples', () => {
  it('admits the TenantConfig and the TenantNetwork of docs/examples/cluster', async () => {
    const doc = (f: string) =>
      parseDocument(
        readFileSync(join(import.meta.dirname, '../../docs/examples/cluster', f), 'utf8'),
      ).toJS() as { metadata: { name: string; namespace?: string } };
    await ensureNamespace(admin, 'telco-a');
    const tc = await send('POST', `${G}/tenantconfigs`, doc('tenant-config.yaml'));
    expect(tc.status, JSON.stringify(tc.body)).toBe(201);
    const tn = await send('POST', tnets('telco-a'), doc('tenant-network.yaml'));
    expect(tn.status, JSON.stringify(tn.body)).toBe(201);
  });
});

describe('pods', () => {
  const pod = (ns: string, name: string, annotations: Record<string, string>) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, annotations },
    spec: { containers: [{ name: 'c', image: 'busybox' }] },
  });
  const pods = (ns: string) => `/api/v1/namespaces/${ns}/pods`;

  beforeAll(async () => {
    await send(
      'POST',
      tnets('tenant-a'),
      tnet('tenant-a', 'radio', { type: 'bridge', ipv4: { cidr: '10.70.0.0/24' } }),
    );
    await send(
      'POST',
      `${G}/clusternetworks`,
      cnet('only-b', { type: 'bridge', namespaces: ['tenant-b'] }),
    );
  });

  it("refuses a pod that names a foreign tenant's network", async () => {
    const msg = await denied(
      'POST',
      pods('tenant-b'),
      pod('tenant-b', 'p', { [NPWG_ANNOTATION]: 'tenant-a/radio' }),
    );
    expect(msg).toContain('admission webhook "pods.tartan.io" denied the request');
    expect(msg).toContain(
      'pod tenant-b/p: may not use tenant-a/radio: networks of namespace tenant-a belong to another tenant',
    );
  });

  it('refuses malformed annotations and networks the namespace may not use', async () => {
    expect(
      await denied(
        'POST',
        pods('tenant-a'),
        pod('tenant-a', 'p', { [TARTAN_ANNOTATION]: '[{"network":"radio","ip":"10.70.0.300"}]' }),
      ),
    ).toContain('"10.70.0.300" is not "dynamic", "none" or an IPv4 address');
    expect(
      await denied('POST', pods('tenant-a'), pod('tenant-a', 'p', { [NPWG_ANNOTATION]: 'only-b' })),
    ).toContain('ClusterNetwork "only-b" does not admit namespace tenant-a');
    expect(
      await denied(
        'POST',
        pods('tenant-a'),
        pod('tenant-a', 'p', { [NPWG_ANNOTATION]: 'missing' }),
      ),
    ).toContain('no ClusterNetwork "missing"');
    // radio has no routingTable: a policy route there would go nowhere.
    expect(
      await denied(
        'POST',
        pods('tenant-a'),
        pod('tenant-a', 'p', {
          [TARTAN_ANNOTATION]: '[{"network":"radio","policyRoutes":[{"dst":"10.99.0.0/16"}]}]',
        }),
      ),
    ).toContain('net1: policyRoutes need a network with a routingTable');
  });

  it('refuses a pod whose NetworkAttachmentDefinition holds no usable CNI configuration', async () => {
    const nads = '/apis/k8s.cni.cncf.io/v1/namespaces/tenant-a/network-attachment-definitions';
    for (const [name, config] of [
      ['tt-notjson', 'not json'],
      ['tt-typeless', '{"cniVersion":"1.0.0"}'],
    ] as const) {
      const made = await send('POST', nads, {
        apiVersion: 'k8s.cni.cncf.io/v1',
        kind: 'NetworkAttachmentDefinition',
        metadata: { name, namespace: 'tenant-a' },
        spec: { config },
      });
      expect(made.status, JSON.stringify(made.body)).toBe(201);
    }
    const notJson = await denied(
      'POST',
      pods('tenant-a'),
      pod('tenant-a', 'p', { [NPWG_ANNOTATION]: 'tt-notjson' }),
    );
    expect(notJson).toContain(
      'NetworkAttachmentDefinition tenant-a/tt-notjson: spec.config is not JSON',
    );
    // The user's to fix: a plain denial, not the webhook failing to decide.
    expect(notJson).not.toContain('could not decide');
    expect(
      await denied(
        'POST',
        pods('tenant-a'),
        pod('tenant-a', 'p', { [NPWG_ANNOTATION]: 'tt-typeless' }),
      ),
    ).toContain(
      'NetworkAttachmentDefinition tenant-a/tt-typeless: spec.config: type must name a plugin',
    );
  });

  it('refuses a pod that asks for a network being deleted', async () => {
    // Unused: the delete is admitted, and the finalizer keeps the object until the
    // controller's next round.
    await send('POST', tnets('tenant-a'), tnet('tenant-a', 'going', { type: 'bridge' }));
    expect((await send('DELETE', `${tnets('tenant-a')}/going`)).status).toBe(200);
    expect(
      await denied('POST', pods('tenant-a'), pod('tenant-a', 'p', { [NPWG_ANNOTATION]: 'going' })),
    ).toContain('TenantNetwork tenant-a/going is being deleted: no pod can attach to it');
  });

  it('admits a valid pod, and network-status is written back on it', async () => {
    const res = await send(
      'POST',
      pods('tenant-a'),
      pod('tenant-a', 'ok', { [TARTAN_ANNOTATION]: '[{"network":"radio","ip":"10.70.0.9"}]' }),
    );
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const result = {
      cniVersion: '1.1.0',
      interfaces: [{ name: 'net1', mac: '02:00:00:00:00:09', sandbox: '/var/run/netns/x' }],
      ips: [{ address: '10.70.0.9/24', interface: 0 }],
    };
    await writeNetworkStatus(admin, 'tenant-a', 'ok', [
      networkStatusOf('tenant-a/radio', 'net1', result),
    ]);
    const got = await admin.must<{ metadata: { annotations: Record<string, string> } }>({
      method: 'GET',
      path: `${pods('tenant-a')}/ok`,
    });
    expect(JSON.parse(got.metadata.annotations[NETWORK_STATUS_ANNOTATION]!)).toEqual([
      {
        name: 'tenant-a/radio',
        interface: 'net1',
        ips: ['10.70.0.9'],
        mac: '02:00:00:00:00:09',
        default: false,
        dns: {},
      },
    ]);
    expect(got.metadata.annotations[TARTAN_ANNOTATION]).toBeDefined();
  });
});

describe('failing closed', () => {
  it('refuses network changes while the webhook is down', async () => {
    await webhook.close();
    const res = await send('POST', `${G}/clusternetworks`, cnet('while-down', { type: 'bridge' }));
    expect(res.status).toBe(500);
    expect(res.body.message).toContain('failed calling webhook "networks.tartan.io"');
  });
});
