// The controller's GC against an in-memory API: what it takes for a stale Attachment, and
// so which addresses it frees. The real API server runs in test/k8s/controller.test.ts.
import { describe, expect, it } from 'vitest';
import { createIpam } from '../ipam/index.js';
import { attachmentName, writeAttachment } from '../k8s/attachments.js';
import type { KubeClient, KubeRequest, KubeResponse } from '../k8s/client.js';
import { API_GROUP_PATH as G } from '../k8s/names.js';
import type { NetworkSpec } from '../network/schema.js';
import { createMemoryStore } from '../store/memory.js';
import { inUse } from './network-rules.js';
import { reconcileOnce } from './reconcile.js';

type Obj = { metadata: { name: string; namespace?: string; resourceVersion?: string } };

/** Objects by path; a collection GET lists the objects under it (any namespace for a group-wide path). */
function fakeApi(afterList: (path: string) => Promise<void> = async () => {}) {
  const objs = new Map<string, Obj>();
  let rv = 1;
  const put = (path: string, o: Obj) => {
    o.metadata.resourceVersion = String(++rv);
    objs.set(path, structuredClone(o));
  };
  const request = async (req: KubeRequest): Promise<KubeResponse> => {
    const path = req.path.split('?')[0]!;
    const plural = path.split('/').at(-1)!;
    if (req.method === 'GET' && objs.has(path)) return { status: 200, body: objs.get(path) };
    if (req.method === 'GET') {
      const items = [...objs.entries()]
        .filter(
          ([k]) =>
            k.startsWith(`${path}/`) ||
            (k.split('/').at(-2) === plural && k.startsWith(path.slice(0, path.lastIndexOf('/')))),
        )
        .map(([, v]) => structuredClone(v));
      await afterList(path);
      return { status: 200, body: { items } };
    }
    if (req.method === 'POST') {
      const o = structuredClone(req.body) as Obj;
      const at = `${path}/${o.metadata.name}`;
      if (path.endsWith('/events')) return { status: 201, body: o };
      if (objs.has(at)) return { status: 409, body: {} };
      put(at, o);
      return { status: 201, body: o };
    }
    if (req.method === 'PUT') return (put(path, req.body as Obj), { status: 200, body: req.body });
    if (req.method === 'DELETE') return { status: objs.delete(path) ? 200 : 404, body: {} };
    return { status: 200, body: {} }; // status PATCHes
  };
  const client: KubeClient = {
    url: 'https://fake',
    request: request as KubeClient['request'],
    async must<T>(req: KubeRequest) {
      const r = await request(req);
      if (r.status >= 400) throw new Error(`${req.method} ${req.path}: ${r.status}`);
      return r.body as T;
    },
    watch: () => {
      throw new Error('not used');
    },
    impersonate: () => client,
    close: () => {},
  };
  return { client, objs, put };
}

const spec: NetworkSpec = { type: 'macvlan', device: 'eth1', ipv4: { cidr: '10.0.0.0/24' } };

describe('controller GC', () => {
  it('does not take a pod attached while it lists for a gone one, nor free its address', async () => {
    const store = createMemoryStore();
    const agent = createIpam(store);
    let addr = '';
    let fired = false;
    // A pod is created and attached while the controller is between its two lists.
    const api = fakeApi(async (path) => {
      if (fired || !(path === '/api/v1/pods' || path === `${G}/attachments`)) return;
      fired = true;
      const pod = { name: 'web', namespace: 'tenant-a', uid: 'uid-web' };
      api.put(`/api/v1/namespaces/tenant-a/pods/web`, { metadata: pod });
      const a = await agent.allocate({
        network: 'shared',
        spec,
        node: 'n1',
        containerId: 'c',
        ifname: 'net1',
      });
      addr = a[0]!.address;
      await writeAttachment(api.client, {
        pod,
        node: 'n1',
        containerId: 'c',
        ifname: 'net1',
        network: { kind: 'ClusterNetwork', name: 'shared' },
        ips: [addr],
      });
    });
    api.put(`${G}/clusternetworks/shared`, { metadata: { name: 'shared' }, spec } as Obj);
    let t = 1_000_000;
    const deps = { client: api.client, store, gcGraceMs: 60_000, now: () => t };
    expect((await reconcileOnce(deps)).staleAttachments).toBe(0);
    t += 120_000;
    expect(await reconcileOnce(deps)).toMatchObject({ staleAttachments: 0, released: 0 });
    const next = await agent.allocate({
      network: 'shared',
      spec,
      node: 'n1',
      containerId: 'd',
      ifname: 'net1',
    });
    expect(next[0]!.address).not.toBe(addr);
  });

  it('Attachment names are one per pod and interface', () => {
    const names = [
      attachmentName('sig', 'net-1'),
      attachmentName('sig', 'net.1'),
      attachmentName('a', 'b-net1'),
      attachmentName('a-b', 'net1'),
    ];
    expect(new Set(names).size).toBe(4);
    expect(attachmentName('sig', 'net-1')).toMatch(/^sig-net-1-[0-9a-f]{10}$/);
    expect(attachmentName('sig', 'net-1')).toBe(names[0]); // stable: a repeated ADD replaces it
  });
});

describe('the webhook\'s "network in use" check', () => {
  it('fails closed when the Attachments cannot be listed', async () => {
    const api = fakeApi();
    const client: KubeClient = {
      ...api.client,
      request: (async (req: KubeRequest) =>
        req.path.includes('/attachments')
          ? { status: 503, body: {} }
          : api.client.request(req)) as KubeClient['request'],
    };
    // A delegated network holds no addresses: its Attachments are all there is to go by.
    await expect(
      inUse(client, createMemoryStore(), { kind: 'ClusterNetwork', name: 'sriov' }),
    ).rejects.toThrow(/cannot list the network's attachments: HTTP 503/);
  });
});
