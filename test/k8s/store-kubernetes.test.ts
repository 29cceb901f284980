// The Kubernetes store against a real kube-apiserver: the shared contract, key-to-object
// mapping, and many simulated nodes allocating through the IPAM at once.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTartanError } from '../../src/cni/errors.js';
import { auditIpam } from '../../src/ipam/audit.js';
import { createIpam } from '../../src/ipam/index.js';
import { ensureNamespace, installCrds } from '../../src/k8s/apply.js';
import type { KubeClient } from '../../src/k8s/client.js';
import type { NetworkSpec } from '../../src/network/schema.js';
import { createKubernetesStore, recordLabels, recordName } from '../../src/store/kubernetes.js';
import { runStoreContract } from '../contract/store-contract.js';
import { startKube, type KubeHandle } from '../harness/kube.js';

let kube: KubeHandle;
let admin: KubeClient;
beforeAll(async () => {
  kube = await startKube();
  admin = kube.client();
  await installCrds(admin);
});
afterAll(async () => {
  await kube?.stop();
});

const recordsPath = (ns: string) => `/apis/tartan.io/v1alpha1/namespaces/${ns}/tartanrecords`;
const conn = () => ({ url: kube.url, ca: kube.ca, cert: kube.clientCert, key: kube.clientKey });

/** A fresh namespace gives each test an empty store on one API server. */
async function freshStore(listFrom: 'cache' | 'etcd' = 'cache') {
  const namespace = `store-${randomUUID().slice(0, 8)}`;
  await ensureNamespace(admin, namespace);
  const store = await createKubernetesStore({ ...conn(), namespace, listFrom });
  return { namespace, store };
}

for (const listFrom of ['cache', 'etcd'] as const)
  runStoreContract(`kubernetes, lists from ${listFrom}`, async () => {
    const { namespace, store } = await freshStore(listFrom);
    return {
      store,
      cleanup: async () => {
        await store.close();
        await admin.request({ method: 'DELETE', path: `/api/v1/namespaces/${namespace}` });
      },
      injectCorrupt: async (key) => {
        const path = `${recordsPath(namespace)}/${recordName(key)}`;
        await admin.must({
          method: 'PATCH',
          path,
          body: { spec: { value: '{"ip": "10.0.' } },
        });
      },
    };
  });

describe('kubernetes store', () => {
  it('maps any key to a valid object name and labels, readable with kubectl', async () => {
    const { namespace, store } = await freshStore();
    const keys = [
      'ipam/oam/v4/nodes/node-1/blocks/10.0.0.64_26',
      'ipam/Big%20Net/v6/cidrs/fd00--40_122',
      'x'.repeat(600),
      '/',
      '🚀/ключ',
    ];
    for (const k of keys) expect(await store.create(k, { k })).toEqual(expect.any(String));
    const obj = await admin.must<{
      metadata: { name: string; labels: Record<string, string> };
      spec: { key: string; value: string };
    }>({ method: 'GET', path: `${recordsPath(namespace)}/${recordName(keys[0]!)}` });
    expect(obj.metadata.name).toMatch(
      /^ipam-oam-v4-nodes-node-1-blocks-10-0-0-64-26-[0-9a-f]{20}$/,
    );
    expect(obj.metadata.labels['tartan.io/record']).toBe('blocks');
    expect(obj.spec).toEqual({
      key: keys[0],
      value: '{"k":"ipam/oam/v4/nodes/node-1/blocks/10.0.0.64_26"}',
    });
    for (const k of keys) expect((await store.get(k))?.value).toEqual({ k });
    expect(recordLabels('a/b/c')).toHaveProperty('tartan.io/d2');
    await store.close();
  });

  it('reports an unreachable API server as ERR_STORE naming it, in bounded time', async () => {
    const store = await createKubernetesStore({
      ...conn(),
      url: 'https://127.0.0.1:1',
      timeoutMs: 500,
      maxAttempts: 2,
    });
    const started = Date.now();
    const e: unknown = await store.get('k').then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isTartanError(e, 'ERR_STORE'), String(e)).toBe(true);
    expect((e as Error).message).toContain('https://127.0.0.1:1');
    expect(Date.now() - started).toBeLessThan(5000);
    await store.close();
  });

  it('many simulated nodes allocating at once hand out no address twice', async () => {
    const { namespace } = await freshStore();
    const spec: NetworkSpec = {
      type: 'bridge',
      ipv4: { cidr: '10.40.0.0/24', blockPrefix: 28 },
      ipv6: { cidr: 'fd00:40::/64', blockPrefix: 124 },
    };
    const nodes = 12;
    const podsPerNode = 8;
    // One store (connection) and one IPAM per node, as one agent per node would have.
    const stores = await Promise.all(
      Array.from({ length: nodes }, () => createKubernetesStore({ ...conn(), namespace })),
    );
    const got = await Promise.all(
      stores.map(async (store, n) => {
        const ipam = createIpam(store, { maxRetries: 200 });
        return Promise.all(
          Array.from({ length: podsPerNode }, (_, p) =>
            ipam.allocate({
              network: 'race',
              spec,
              node: `node-${n}`,
              containerId: `c${n}-${p}`,
              ifname: 'net1',
            }),
          ),
        );
      }),
    );
    const addresses = got.flat(2).map((a) => a.address);
    expect(addresses).toHaveLength(nodes * podsPerNode * 2);
    expect(new Set(addresses).size).toBe(addresses.length);
    // Read back the raw objects, not through the allocator.
    const raw = await admin.must<{
      items: { spec: { key: string; value: string }; metadata: { resourceVersion: string } }[];
    }>({
      method: 'GET',
      path: recordsPath(namespace),
    });
    const entries = raw.items
      .filter((o) => o.spec.key.startsWith('ipam/'))
      .map((o) => ({
        key: o.spec.key,
        value: JSON.parse(o.spec.value) as unknown,
        rev: o.metadata.resourceVersion,
      }));
    const audit = auditIpam(entries);
    expect(audit.duplicates).toEqual([]);
    expect(audit.overlaps).toEqual([]);
    expect(audit.corrupt).toEqual([]);
    expect(audit.held).toHaveLength(addresses.length);
    await Promise.all(stores.map((s) => s.close()));
  });
});
