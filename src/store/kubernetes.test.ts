// The Kubernetes store's retry logic against a scripted API (the real API server runs in
// test/k8s/store-kubernetes.test.ts): transient failures are retried a bounded number of
// times, and a retried write whose first attempt did commit is recognised as our own.
import { describe, expect, it } from 'vitest';
import { isTartanError } from '../cni/errors.js';
import type { KubeClient, KubeRequest, KubeResponse } from '../k8s/client.js';
import { kubernetesStoreWith, recordLabels, recordName } from './kubernetes.js';

type Step = (req: KubeRequest) => KubeResponse | Error;

function scripted(steps: Step[]) {
  const seen: KubeRequest[] = [];
  const client: KubeClient = {
    url: 'https://api.test:6443',
    async request<T>(req: KubeRequest): Promise<KubeResponse<T>> {
      seen.push(req);
      const step = steps.shift();
      if (!step) throw new Error(`unexpected request ${req.method} ${req.path}`);
      const r = step(req);
      if (r instanceof Error) throw r;
      return r as KubeResponse<T>;
    },
    must: () => Promise.reject(new Error('not used')),
    watch: () => {
      throw new Error('not used');
    },
    impersonate: () => client,
    close: () => {},
  };
  return { client, seen };
}

const obj = (key: string, value: string, rv: string, writeId?: string) => ({
  metadata: {
    name: recordName(key),
    resourceVersion: rv,
    annotations: writeId ? { 'tartan.io/write-id': writeId } : {},
  },
  spec: { key, value },
});
const writeIdOf = (req: KubeRequest) =>
  (req.body as { metadata: { annotations: Record<string, string> } }).metadata.annotations[
    'tartan.io/write-id'
  ]!;

describe('kubernetes store retries', () => {
  it('retries 503 and transport errors, then succeeds', async () => {
    const { client, seen } = scripted([
      () => ({ status: 503, body: { message: 'etcdserver: leader changed' } }),
      () => new Error('socket hang up'),
      () => ({ status: 200, body: obj('k', '"v"', '7') }),
    ]);
    const s = kubernetesStoreWith(client, { namespace: 'ns', maxAttempts: 5 });
    expect(await s.get('k')).toEqual({ key: 'k', value: 'v', rev: '7' });
    expect(seen).toHaveLength(3);
  });

  it('gives up after maxAttempts with ERR_STORE naming the key and the last error', async () => {
    const { client } = scripted(
      Array.from({ length: 3 }, () => () => ({
        status: 429,
        body: { message: 'too many requests' },
      })),
    );
    const e: unknown = await kubernetesStoreWith(client, { namespace: 'ns', maxAttempts: 3 })
      .get('a/b')
      .catch((x: unknown) => x);
    expect(isTartanError(e, 'ERR_STORE')).toBe(true);
    expect((e as Error).message).toMatch(
      /namespace ns: "a\/b": .*429 too many requests \(after 3 attempts\)/,
    );
  });

  it('a create whose lost first attempt had committed is still ours', async () => {
    let id = '';
    const { client } = scripted([
      (req) => {
        id = writeIdOf(req);
        return new Error('ECONNRESET'); // the API server did store it
      },
      () => ({ status: 409, body: { reason: 'AlreadyExists' } }),
      () => ({ status: 200, body: obj('k', '1', '42', id) }),
    ]);
    expect(
      await kubernetesStoreWith(client, { namespace: 'ns', maxAttempts: 5 }).create('k', 1),
    ).toBe('42');
  });

  it("a conflict on a retried update that shows someone else's write is a conflict", async () => {
    const { client } = scripted([
      () => new Error('ECONNRESET'),
      () => ({ status: 409, body: { reason: 'Conflict' } }),
      () => ({ status: 200, body: obj('k', '2', '43', 'someone-else') }),
    ]);
    expect(
      await kubernetesStoreWith(client, { namespace: 'ns', maxAttempts: 5 }).update('k', 1, '41'),
    ).toBeUndefined();
  });

  it('a conflict on the first attempt is a plain conflict, with no extra read', async () => {
    const { client, seen } = scripted([() => ({ status: 409, body: {} })]);
    expect(
      await kubernetesStoreWith(client, { namespace: 'ns', maxAttempts: 5 }).create('k', 1),
    ).toBeUndefined();
    expect(seen).toHaveLength(1);
  });

  it('refuses a record that holds another key (a name collision) as corrupt', async () => {
    const { client } = scripted([() => ({ status: 200, body: obj('other', '1', '5') })]);
    const e: unknown = await kubernetesStoreWith(client, { namespace: 'ns' })
      .get('k')
      .catch((x: unknown) => x);
    expect(isTartanError(e, 'ERR_STORE_CORRUPT')).toBe(true);
  });
});

describe('kubernetes store lists', () => {
  const list = (items: ReturnType<typeof obj>[]) => () => ({
    status: 200,
    body: { items, metadata: {} },
  });

  it('read their own writes from the watch cache, and hide what they deleted', async () => {
    const { client, seen } = scripted([
      list([]),
      () => ({ status: 201, body: obj('a/1', '1', '120') }),
      list([obj('a/1', '1', '120')]),
      () => ({ status: 200, body: { kind: 'Status', status: 'Success' } }),
      // The cache has not seen the delete yet: the old version must not come back.
      list([obj('a/1', '1', '120'), obj('a/2', '2', '118')]),
    ]);
    const s = kubernetesStoreWith(client, { namespace: 'ns' });
    expect(await s.list('a/')).toEqual([]);
    const params = (i: number) => new URL(seen[i]!.path, 'https://x').searchParams;
    expect(params(0).get('resourceVersion')).toBe('0');
    await s.create('a/1', 1);
    expect((await s.list('a/')).map((e) => e.key)).toEqual(['a/1']);
    expect([params(2).get('resourceVersion'), params(2).get('resourceVersionMatch')]).toEqual([
      '120',
      'NotOlderThan',
    ]);
    expect(await s.delete('a/1', '120')).toBe(true);
    expect((await s.list('a/')).map((e) => e.key)).toEqual(['a/2']);
  });

  it('with listFrom etcd, ask for a quorum read', async () => {
    const { client, seen } = scripted([list([])]);
    await kubernetesStoreWith(client, { namespace: 'ns', listFrom: 'etcd' }).list('a/');
    expect(seen[0]!.path).not.toContain('resourceVersion');
  });
});

describe('key mapping', () => {
  it('gives valid, distinct names even to keys that slug alike', () => {
    const names = ['a/B', 'a/b', 'a-b', 'A_B', '', '/', '..', 'x'.repeat(5000)].map(recordName);
    for (const n of names) expect(n).toMatch(/^[a-z0-9]([-a-z0-9]{0,251}[a-z0-9])?$/);
    expect(new Set(names).size).toBe(names.length);
  });

  it('labels each directory level, up to ten', () => {
    const l = recordLabels('ipam/net/v4/nodes/n1/blocks/10.0.0.0_26');
    expect(Object.keys(l).filter((k) => k.startsWith('tartan.io/d'))).toHaveLength(6);
    expect(l['tartan.io/record']).toBe('blocks');
    for (const v of Object.values(l)) expect(v).toMatch(/^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/);
  });
});
