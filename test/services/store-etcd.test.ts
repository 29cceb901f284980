// The etcd store against a real etcd: the shared contract, prefix isolation between
// stores, and how an unreachable etcd is reported.
import { randomUUID } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTartanError } from '../../src/cni/errors.js';
import { createEtcdStore } from '../../src/store/etcd.js';
import { openStore } from '../../src/store/index.js';
import { runStoreContract } from '../contract/store-contract.js';
import { freePorts, startEtcd, type EtcdHandle } from '../harness/etcd.js';

let etcd: EtcdHandle;
let raw: Etcd3;
beforeAll(async () => {
  etcd = await startEtcd();
  raw = new Etcd3({ hosts: [etcd.endpoint] });
});
afterAll(async () => {
  raw?.close();
  await etcd?.stop();
});

// A fresh namespace per test gives each an empty store without restarting etcd.
runStoreContract('etcd', async () => {
  const prefix = `/tartan-test/${randomUUID()}/`;
  const store = await createEtcdStore({ endpoints: [etcd.endpoint], prefix });
  return {
    store,
    cleanup: async () => {
      await store.close();
      await raw.delete().prefix(prefix);
    },
    injectCorrupt: async (key) => {
      if (!(await raw.get(prefix + key).exists())) throw new Error(`no record ${key} to damage`);
      await raw.put(prefix + key).value('{"ip": "10.0.');
    },
  };
});

describe('etcd store', () => {
  it('keeps stores with different prefixes apart, and stores keys under the prefix', async () => {
    const base = `/tartan-test/${randomUUID()}`;
    const a = await openStore({ type: 'etcd', endpoints: [etcd.endpoint], prefix: `${base}/a/` });
    const b = await openStore({ type: 'etcd', endpoints: [etcd.endpoint], prefix: `${base}/b/` });
    try {
      expect(a.kind).toBe('etcd');
      await a.create('k', 'from a');
      expect(await b.get('k')).toBeUndefined();
      expect(await b.list('')).toEqual([]);
      expect(await raw.get(`${base}/a/k`).string()).toBe('"from a"');
    } finally {
      await Promise.all([a.close(), b.close()]);
      await raw.delete().prefix(base);
    }
  });

  it('reports an unreachable etcd as ERR_STORE naming the endpoint, in bounded time', async () => {
    const [port] = await freePorts(1);
    const endpoint = `http://127.0.0.1:${port}`;
    const store = await createEtcdStore({ endpoints: [endpoint], timeoutMs: 2000 });
    try {
      const ops = [() => store.get('k'), () => store.create('k', 1), () => store.list('')];
      for (const op of ops) {
        const started = Date.now();
        const e: unknown = await op().then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(isTartanError(e, 'ERR_STORE'), String(e)).toBe(true);
        expect((e as Error).message).toContain(endpoint);
        // The client retries 3 times, each attempt bounded by the deadline.
        expect(Date.now() - started).toBeLessThan(4 * 2000);
      }
    } finally {
      await store.close();
    }
  });
});
