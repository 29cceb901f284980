// The etcd store against a real etcd: the shared contract, prefix isolation between
// stores, how an unreachable etcd is reported, and the CNI binary allocating in it.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTartanError } from '../../src/cni/errors.js';
import { createEtcdStore } from '../../src/store/etcd.js';
import { openStore } from '../../src/store/index.js';
import { runStoreContract } from '../contract/store-contract.js';
import { freePorts, startEtcd, type EtcdHandle } from '../harness/etcd.js';
import { heldByPods } from '../harness/ipam.js';
import { TARTAN, podAddrs } from '../kernel/fixture.js';
import { callCni } from '../../src/lab/cni.js';
import { writeNetworks } from '../../src/lab/networks.js';
import { addNetns, delNetns, run } from '../../src/lab/sh.js';

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

  it('lists more than one gRPC message holds (4 MiB), exactly the keys under the prefix', async () => {
    const prefix = `/tartan-test/${randomUUID()}/`;
    const s = await createEtcdStore({ endpoints: [etcd.endpoint], prefix });
    try {
      // 600 records of 8 KB (a full /26 block is ~7.5 KB): ~4.8 MB in all.
      const keys = Array.from({ length: 600 }, (_, i) => `ipam/n/b${String(i).padStart(3, '0')}`);
      const pad = 'x'.repeat(8000);
      for (let i = 0; i < keys.length; i += 50)
        await Promise.all(keys.slice(i, i + 50).map((k) => s.create(k, { k, pad })));
      await s.create('ipam/n0', 'a neighbour prefix, not listed');
      const got = await s.list<{ k: string }>('ipam/n/');
      expect(got.map((e) => e.key)).toEqual(keys);
      expect(got.every((e) => e.value.k === e.key)).toBe(true);
    } finally {
      await s.close();
      await raw.delete().prefix(prefix);
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

// The CNI binary carries no etcd client: it loads dist/tartan-etcd.cjs from beside itself.
// It runs in this netns (etcd listens on its loopback) and attaches to a bridge of its own.
describe('the tartan binary on an etcd store', () => {
  it('allocates in etcd at ADD and releases at DEL', async () => {
    const prefix = `/tartan-test/${randomUUID()}/`;
    const dir = mkdtempSync(join(tmpdir(), 'tartan-se-'));
    const ns = 'tt-se-pod';
    const store = await createEtcdStore({ endpoints: [etcd.endpoint], prefix });
    try {
      writeNetworks(join(dir, 'nets'), [
        {
          name: 'oam',
          spec: { type: 'bridge', bridge: 'tt-se-br', ipv4: { cidr: '10.93.0.0/24' } },
        },
      ]);
      await addNetns(ns);
      const call = {
        plugin: TARTAN,
        netns: `/run/netns/${ns}`,
        containerId: 'cid-se',
        ifname: 'eth0',
        conf: {
          cniVersion: '1.1.0',
          name: 'tartan',
          type: 'tartan',
          networksDir: join(dir, 'nets'),
          stateDir: join(dir, 'state'),
          nodeName: 'se1',
          store: { type: 'etcd', endpoints: [etcd.endpoint], prefix },
          interfaces: [{ network: 'oam', ip: '10.93.0.7' }],
        },
      };
      const add = await callCni({ ...call, command: 'ADD' });
      expect(add.code, add.stdout).toBe(0);
      expect(await podAddrs(ns, 'eth0')).toEqual(['10.93.0.7/24']);
      expect(heldByPods(await store.list(''))).toEqual(['oam 10.93.0.7 cid-se/eth0']);
      expect((await callCni({ ...call, command: 'DEL' })).code).toBe(0);
      expect(heldByPods(await store.list(''))).toEqual([]);
      // The bridge went with its last user.
      expect((await run('ip', ['link', 'show', 'tt-se-br'], undefined, process.env)).code).not.toBe(
        0,
      );
    } finally {
      await store.close();
      await delNetns(ns);
      await run('ip', ['link', 'del', 'tt-se-br'], undefined, process.env);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
