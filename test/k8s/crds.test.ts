// The CRDs on a real API server: they install, are served with short names and printer
// columns, and the schema itself refuses bad objects with a message a person can act on.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureNamespace, installCrds } from '../../src/k8s/apply.js';
import type { KubeClient, KubeStatus } from '../../src/k8s/client.js';
import { npwgCrds, tartanCrds } from '../../src/k8s/crds.js';
import { startKube, type KubeHandle } from '../harness/kube.js';

const ROOT = resolve(import.meta.dirname, '../..');
const G = '/apis/tartan.io/v1alpha1';
let kube: KubeHandle;
let admin: KubeClient;

beforeAll(async () => {
  kube = await startKube();
  admin = kube.client();
  // A NetworkAttachmentDefinition CRD that "Multus" installed first: ours must not replace it.
  const nad = structuredClone(npwgCrds()[0]!) as {
    spec: { versions: { additionalPrinterColumns: unknown[] }[] };
  };
  nad.spec.versions[0]!.additionalPrinterColumns = [];
  await admin.must({
    method: 'POST',
    path: '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
    body: nad,
  });
  await installCrds(admin);
  await ensureNamespace(admin, 'tenant-a');
});
afterAll(async () => {
  await kube?.stop();
});

const net = (spec: Record<string, unknown>, name = 'n1') => ({
  apiVersion: 'tartan.io/v1alpha1',
  kind: 'ClusterNetwork',
  metadata: { name },
  spec,
});

async function rejected(path: string, body: unknown): Promise<string> {
  const res = await admin.request<KubeStatus>({ method: 'POST', path, body });
  expect(res.status, JSON.stringify(res.body)).toBe(422);
  return res.body.message ?? '';
}

describe('CRDs', () => {
  it('deploy/crds/*.yaml are exactly what src/k8s/crds.ts builds', async () => {
    for (const [file, want] of [
      ['tartan.yaml', tartanCrds()],
      ['npwg.yaml', npwgCrds()],
    ] as const) {
      const path = join(ROOT, 'deploy/crds', file);
      const docs = parseAllDocuments(await readFile(path, 'utf8')).map((d) => d.toJS() as unknown);
      expect(docs, `${path} is stale: regenerate: npx vite-node test/k8s/gen-deploy.ts`).toEqual(
        want,
      );
    }
  });

  it('are served with short names and a ClusterNetwork/TenantNetwork scope', async () => {
    const list = await admin.must<{
      resources: { name: string; shortNames?: string[]; namespaced: boolean }[];
    }>({
      method: 'GET',
      path: G,
    });
    const byName = new Map(list.resources.map((r) => [r.name, r]));
    expect(byName.get('clusternetworks')).toMatchObject({
      shortNames: ['cnet'],
      namespaced: false,
    });
    expect(byName.get('tenantnetworks')).toMatchObject({ shortNames: ['tnet'], namespaced: true });
    expect(byName.get('tenantconfigs')).toMatchObject({ shortNames: ['tcfg'], namespaced: false });
    expect(byName.get('tartanrecords')).toMatchObject({ shortNames: ['trec'], namespaced: true });
    expect(byName.get('attachments')).toMatchObject({ shortNames: ['tatt'], namespaced: true });
    expect(byName.has('clusternetworks/status')).toBe(true);
    const ipamclaims = await admin.request({
      method: 'GET',
      path: '/apis/k8s.cni.cncf.io/v1alpha1',
    });
    expect(ipamclaims.status).toBe(200);
  });

  it('leaves a NetworkAttachmentDefinition CRD that another owner installed alone', async () => {
    const nad = await admin.must<{
      spec: { versions: { additionalPrinterColumns?: unknown[] }[] };
    }>({
      method: 'GET',
      path: '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/network-attachment-definitions.k8s.cni.cncf.io',
    });
    expect(nad.spec.versions[0]!.additionalPrinterColumns ?? []).toEqual([]);
  });

  it('accepts a valid network and shows it in printer columns', async () => {
    await admin.must({
      method: 'POST',
      path: `${G}/clusternetworks`,
      body: net(
        {
          type: 'macvlan',
          device: 'eth1',
          vlan: 100,
          mode: 'bridge',
          ipv4: { cidr: '10.10.0.0/24' },
        },
        'oam',
      ),
    });
    const table = await admin.must<{
      columnDefinitions: { name: string }[];
      rows: { cells: unknown[] }[];
    }>({
      method: 'GET',
      path: `${G}/clusternetworks/oam`,
      headers: { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' },
    });
    const cols = table.columnDefinitions.map((c) => c.name);
    expect(cols).toEqual(expect.arrayContaining(['Type', 'Device', 'VLAN', 'IPv4']));
    const cell = (name: string) => table.rows[0]!.cells[cols.indexOf(name)];
    expect([cell('Type'), cell('Device'), cell('VLAN'), cell('IPv4')]).toEqual([
      'macvlan',
      'eth1',
      100,
      '10.10.0.0/24',
    ]);
  });

  it.each([
    [
      { type: 'macvlan', device: 'eth1', vlan: 10, vxlan: { vni: 5 } },
      'vlan and vxlan are mutually exclusive',
    ],
    [{ type: 'ipvlan' }, 'type ipvlan and macvlan need a host device'],
    [{ type: 'ipvlan', device: 'eth1', mode: 'vepa' }, 'mode must be l2|l3|l3s for ipvlan'],
    [{ type: 'bridge', mode: 'l2' }, 'is valid for no other type'],
    [{ type: 'host-device', device: 'eth2', vlan: 3 }, 'host-device moves a NIC as it is'],
    [{ type: 'host-device' }, 'needs a device or a devicePool'],
    [
      { type: 'macvlan', device: 'eth1', devicePool: 'intel.com/sriov' },
      'device and devicePool are mutually exclusive',
    ],
    [{ type: 'delegate' }, 'delegate is required with, and only with, type delegate'],
    [
      { type: 'delegate', delegate: { type: 'bridge' }, ipv4: { cidr: '10.0.0.0/24' } },
      'brings its own IPAM',
    ],
    [{ type: 'macvlan', device: 'eth1', vlan: 4095 }, 'spec.vlan: Invalid value: 4095'],
    [{ type: 'vlan', device: 'eth1' }, 'spec.type: Unsupported value: "vlan"'],
    [{ type: 'macvlan', device: 'this-name-is-too-long' }, 'spec.device'],
    [{ type: 'bridge', ipv4: { pools: [] } }, 'spec.ipv4.cidr: Required value'],
    [
      { type: 'bridge', vxlan: { vni: 7, group: '239.1.1.1', remotes: ['10.0.0.2'] } },
      'set group or remotes, not both',
    ],
  ])('refuses ClusterNetwork spec %j: "%s"', async (spec, message) => {
    expect(await rejected(`${G}/clusternetworks`, net(spec, 'bad'))).toContain(message);
  });

  it('refuses a TenantConfig with an inverted range or both vlans and vnis', async () => {
    const tc = (hostDevices: unknown[]) => ({
      apiVersion: 'tartan.io/v1alpha1',
      kind: 'TenantConfig',
      metadata: { name: 'tenant-a' },
      spec: { namespaces: ['tenant-a'], hostDevices },
    });
    expect(
      await rejected(`${G}/tenantconfigs`, tc([{ name: 'eth1', vlans: [{ start: 20, end: 10 }] }])),
    ).toContain('start must not be above end');
    expect(
      await rejected(
        `${G}/tenantconfigs`,
        tc([{ name: 'eth1', vlans: [{ start: 1, end: 2 }], vnis: [{ start: 1, end: 2 }] }]),
      ),
    ).toContain('a host device offers vlans or vnis, not both');
    expect(await rejected(`${G}/tenantconfigs`, { ...tc([]), spec: { namespaces: [] } })).toContain(
      'spec.namespaces',
    );
  });

  it('keeps status apart from spec (status subresource)', async () => {
    await admin.must({
      method: 'POST',
      path: `${G}/namespaces/tenant-a/tenantnetworks`,
      body: {
        ...net({ type: 'bridge', ipv4: { cidr: '10.20.0.0/24' } }, 'internal'),
        kind: 'TenantNetwork',
      },
    });
    const path = `${G}/namespaces/tenant-a/tenantnetworks/internal`;
    // A status written through the main resource is dropped ...
    await admin.must({ method: 'PATCH', path, body: { status: { attachments: 3 } } });
    expect(
      (await admin.must<{ status?: unknown }>({ method: 'GET', path })).status,
    ).toBeUndefined();
    // ... and accepted through /status.
    await admin.must({
      method: 'PATCH',
      path: `${path}/status`,
      body: { status: { attachments: 3 } },
    });
    expect((await admin.must<{ status?: unknown }>({ method: 'GET', path })).status).toEqual({
      attachments: 3,
    });
  });

  it('keeps a TartanRecord key immutable', async () => {
    const path = `${G}/namespaces/tenant-a/tartanrecords`;
    await admin.must({
      method: 'POST',
      path,
      body: {
        apiVersion: 'tartan.io/v1alpha1',
        kind: 'TartanRecord',
        metadata: { name: 'r1' },
        spec: { key: 'a', value: '1' },
      },
    });
    const res = await admin.request<KubeStatus>({
      method: 'PATCH',
      path: `${path}/r1`,
      body: { spec: { key: 'b' } },
    });
    expect(res.status).toBe(422);
    expect(res.body.message).toContain('key is immutable');
  });
});
