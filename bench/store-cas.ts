// CAS update throughput of the file and etcd stores (not a test: numbers, no verdicts).
// Run: node_modules/.bin/bun bench/store-cas.ts; under Node from a bundle (etcd3 external).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEtcdStore } from '../src/store/etcd.js';
import { createFileStore } from '../src/store/file.js';
import type { Store } from '../src/store/types.js';
import { startEtcd } from '../test/harness/etcd.js';

const runtime = process.versions.bun ? `bun ${process.versions.bun}` : `node ${process.version}`;

/** callers async loops, each CAS-incrementing its own key or one shared key. */
async function measure(store: Store, callers: number, ops: number, shared: boolean) {
  const key = (i: number) => (shared ? 'bench/shared' : `bench/k${i}`);
  for (let i = 0; i < (shared ? 1 : callers); i++) await store.create(key(i), { n: 0 });
  let done = 0;
  let conflicts = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async (_, i) => {
      while (done < ops) {
        const cur = (await store.get<{ n: number }>(key(i)))!;
        if (await store.update(key(i), { n: cur.value.n + 1 }, cur.rev)) done++;
        else conflicts++;
      }
    }),
  );
  const secs = (performance.now() - start) / 1000;
  for (let i = 0; i < (shared ? 1 : callers); i++) {
    const e = (await store.get(key(i)))!;
    await store.delete(key(i), e.rev);
  }
  return `${Math.round(done / secs)} updates/s (${done} in ${secs.toFixed(2)} s, ${conflicts} conflicts)`;
}

const dir = await mkdtemp(join(tmpdir(), 'tartan-bench-'));
try {
  const file = await createFileStore(join(dir, 'bench.db'));
  console.log(`file  ${runtime}  1 caller:             ${await measure(file, 1, 3000, false)}`);
  console.log(`file  ${runtime}  50 callers, own keys: ${await measure(file, 50, 3000, false)}`);
  await file.close();
} finally {
  await rm(dir, { recursive: true, force: true });
}

const etcd = await startEtcd();
try {
  const store = await createEtcdStore({ endpoints: [etcd.endpoint] });
  console.log(`etcd  ${runtime}  1 caller:             ${await measure(store, 1, 1000, false)}`);
  console.log(`etcd  ${runtime}  50 callers, own keys: ${await measure(store, 50, 10000, false)}`);
  console.log(`etcd  ${runtime}  50 callers, one key:  ${await measure(store, 50, 2000, true)}`);
  await store.close();
} finally {
  await etcd.stop();
}
