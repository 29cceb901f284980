// Many allocators interleaving on one store. The store wrapper delays every call by a random
// few milliseconds, so reads and compare-and-swaps of different allocators overlap; the
// retry sleep is real too. Whatever the interleaving, no address may be handed out twice.
import { describe, expect, it } from 'vitest';
import type { NetworkSpec } from '../network/schema.js';
import { createMemoryStore } from '../store/memory.js';
import type { Store } from '../store/types.js';
import { auditIpam } from './audit.js';
import { createIpam } from './index.js';

function jittery(store: Store, maxDelayMs: number) {
  const stats = { conflicts: 0, calls: 0 };
  const pause = () => new Promise((r) => setTimeout(r, Math.random() * maxDelayMs));
  const wrap =
    <A extends unknown[], R>(fn: (...a: A) => Promise<R>, isConflict?: (r: R) => boolean) =>
    async (...a: A): Promise<R> => {
      stats.calls++;
      await pause();
      const r = await fn(...a);
      if (isConflict?.(r)) stats.conflicts++;
      await pause();
      return r;
    };
  const s: Store = {
    kind: 'jittery',
    get: wrap(store.get.bind(store)) as Store['get'],
    list: wrap(store.list.bind(store)) as Store['list'],
    create: wrap(store.create.bind(store), (r) => r === undefined),
    update: wrap(store.update.bind(store), (r) => r === undefined),
    delete: wrap(store.delete.bind(store), (r) => !r),
    close: () => store.close(),
  };
  return { store: s, stats };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('concurrent allocators', () => {
  it('hand out no address twice across nodes claiming and borrowing tiny blocks', async () => {
    const mem = createMemoryStore();
    const { store, stats } = jittery(mem, 2);
    // 120 of the 125 addresses of a /25 in /29 blocks: 16 blocks for 8 nodes needing 15 each,
    // so the last allocations find no free block and borrow.
    const spec: NetworkSpec = {
      type: 'bridge',
      ipv4: { cidr: '10.4.0.0/25', gateway: '10.4.0.1', blockPrefix: 29 },
      ipv6: { cidr: 'fd00:4::/64', blockPrefix: 125 },
    };
    const nodes = 8;
    const workers = 5;
    const perWorker = 3;
    const got: string[][] = [];
    await Promise.all(
      Array.from({ length: nodes * workers }, async (_, w) => {
        // One instance per node, as one agent per node would have.
        const ipam = createIpam(store, { maxRetries: 200, sleep });
        for (let i = 0; i < perWorker; i++) {
          const a = await ipam.allocate({
            network: 'race',
            spec,
            node: `node-${w % nodes}`,
            containerId: `w${w}-${i}`,
            ifname: 'eth0',
          });
          got.push(a.map((x) => x.address));
        }
      }),
    );
    const audit = auditIpam([...mem.dump().values()]);
    expect(audit.duplicates).toEqual([]);
    expect(audit.overlaps).toEqual([]);
    expect(audit.misplaced).toEqual([]);
    expect(audit.held).toHaveLength(nodes * workers * perWorker * 2);
    expect(new Set(got.flat()).size).toBe(nodes * workers * perWorker * 2);
    // The interleaving was real: compare-and-swaps lost races and were retried.
    expect(stats.conflicts).toBeGreaterThan(0);
    expect(audit.held.some((h) => h.blockNode !== h.node)).toBe(true);
  }, 60_000);

  it('fills a small pool exactly, then reports exhaustion', async () => {
    const mem = createMemoryStore();
    const { store } = jittery(mem, 1);
    const spec: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.5.0.0/27', blockPrefix: 30 } };
    const results = await Promise.allSettled(
      Array.from({ length: 45 }, (_, i) =>
        createIpam(store, { maxRetries: 500, sleep }).allocate({
          network: 'small',
          spec,
          node: `n${i % 5}`,
          containerId: `c${i}`,
          ifname: 'eth0',
        }),
      ),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const codes = results.flatMap((r) =>
      r.status === 'rejected' ? [(r.reason as { code: string }).code] : [],
    );
    expect(ok).toHaveLength(30);
    expect(new Set(codes)).toEqual(new Set(['ERR_IPAM_EXHAUSTED']));
    expect(auditIpam([...mem.dump().values()]).duplicates).toEqual([]);
  }, 60_000);

  it('gives a contested fixed address to exactly one holder while others churn', async () => {
    const mem = createMemoryStore();
    const { store } = jittery(mem, 2);
    const spec: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.6.0.0/24', blockPrefix: 28 } };
    const ipam = createIpam(store, { maxRetries: 200, sleep });
    const churn = Array.from({ length: 6 }, async (_, w) => {
      for (let i = 0; i < 5; i++) {
        const id = { network: 'fix', spec, containerId: `churn${w}-${i}`, ifname: 'eth0' };
        const a = await ipam.allocate({ ...id, node: `n${w % 3}` });
        await ipam.release({ ...id, allocations: a });
      }
    });
    const racers = Array.from({ length: 12 }, (_, i) =>
      ipam.allocate({
        network: 'fix',
        spec,
        node: `n${i % 3}`,
        containerId: `r${i}`,
        ifname: 'eth0',
        ip: '10.6.0.20',
      }),
    );
    const [, results] = await Promise.all([Promise.all(churn), Promise.allSettled(racers)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results)
      if (r.status === 'rejected')
        expect((r.reason as { code: string }).code).toBe('ERR_IPAM_TAKEN');
    const audit = auditIpam([...mem.dump().values()]);
    expect(audit.duplicates).toEqual([]);
    expect(audit.held.map((h) => h.address)).toEqual(['10.6.0.20']);
  }, 60_000);
});
