// The SQLite file store: the shared contract, then what only a file shared by processes
// and runtimes can get wrong (cross-process CAS, a dead lock holder, damaged files).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { build } from 'esbuild';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isTartanError } from '../../src/cni/errors.js';
import { createFileStore } from '../../src/store/file.js';
import type { Store } from '../../src/store/types.js';
import { runStoreContract } from '../contract/store-contract.js';
import { race, type RaceResult } from './fixtures/race.js';

const ROOT = resolve(import.meta.dirname, '../..');
const BUN = join(ROOT, 'node_modules/.bin/bun');
const CHILD_TS = join(ROOT, 'test/services/fixtures/store-child.ts');

const tempDirs: string[] = [];
const tempDir = async () => {
  const d = await mkdtemp(join(tmpdir(), 'tartan-store-'));
  tempDirs.push(d);
  return d;
};
afterAll(async () => {
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

runStoreContract('file', async () => {
  const dir = await tempDir();
  const path = join(dir, 'store.db');
  const store = await createFileStore(path);
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
    injectCorrupt: async (key) => {
      const db = new Database(path);
      try {
        db.pragma('busy_timeout = 5000');
        const n = db.prepare('UPDATE kv SET value = ? WHERE key = ?').run('{"ip": "10.0.', key);
        if (n.changes !== 1) throw new Error(`no record ${key} to damage`);
      } finally {
        db.close();
      }
    },
  };
});

const expectCode = async (p: Promise<unknown>, code: string, text: string) => {
  const e: unknown = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(isTartanError(e) && e.code, String(e)).toBe(code);
  expect((e as Error).message).toContain(text);
};

describe('file store', () => {
  const children = new Set<ChildProcess>();
  const stores: Store[] = [];
  const open = async (path: string) => {
    const s = await createFileStore(path);
    stores.push(s);
    return s;
  };
  afterEach(async () => {
    for (const c of children) if (c.pid !== undefined && c.exitCode === null) c.kill('SIGKILL');
    children.clear();
    await Promise.all(stores.splice(0).map((s) => s.close().catch(() => undefined)));
  });

  const run = (cmd: string, args: string[]) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const lines = createInterface({ input: child.stdout! });
    const queue: string[] = [];
    const waiters: ((l: string) => void)[] = [];
    lines.on('line', (l) => (waiters.length ? waiters.shift()!(l) : queue.push(l)));
    const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const nextLine = () =>
      new Promise<string>((res, rej) => {
        const l = queue.shift();
        if (l !== undefined) return res(l);
        waiters.push(res);
        void exit.then((code) =>
          rej(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr}`)),
        );
      });
    return { child, nextLine, exit, stderr: () => stderr };
  };

  describe('shared by processes of both runtimes', () => {
    let nodeChild: string;
    beforeAll(async () => {
      // Node cannot run TypeScript; bundle the child, and let its dynamic import of
      // better-sqlite3 resolve through a node_modules link beside the bundle.
      const dir = await tempDir();
      await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
      nodeChild = join(dir, 'store-child.mjs');
      await build({
        entryPoints: [CHILD_TS],
        outfile: nodeChild,
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        logLevel: 'error',
      });
    });

    it('CAS increments and claims from Bun, Node and this process lose nothing', async () => {
      const path = join(await tempDir(), 'shared.db');
      const counters = ['ipam/a', 'ipam/b', 'ipam/c'];
      const [rounds, claims] = [60, 200];
      const store = await open(path);
      for (const k of counters) await store.create(k, { n: 0 });

      const args = (id: string) => ['race', path, id, counters.join(','), `${rounds}`, `${claims}`];
      const procs = [
        run(BUN, [CHILD_TS, ...args('bun-1')]),
        run(BUN, [CHILD_TS, ...args('bun-2')]),
        run(process.execPath, [nodeChild, ...args('node-1')]),
        run(process.execPath, [nodeChild, ...args('node-2')]),
      ];
      for (const p of procs) expect(await p.nextLine()).toBe('ready');
      for (const p of procs) p.child.stdin!.write('go\n');

      const results = [await race(store, { id: 'test', counters, rounds, claims })];
      for (const p of procs) {
        results.push(JSON.parse(await p.nextLine()) as RaceResult);
        expect(await p.exit, p.stderr()).toBe(0);
      }
      const total = rounds * results.length;
      for (const k of counters) expect((await store.get(k))?.value).toEqual({ n: total });
      const won = results.flatMap((r) => r.won);
      expect(won.sort()).toEqual(Array.from({ length: claims }, (_, i) => `claim/${i}`).sort());
      // Proof that the writers really overlapped: some read-then-write lost a race.
      expect(results.reduce((n, r) => n + r.conflicts, 0)).toBeGreaterThan(0);
    });

    it('a writer killed while holding the lock does not block the file', async () => {
      const path = join(await tempDir(), 'lock.db');
      const store = await open(path);
      const rev = (await store.create('k', 1))!;
      const holder = run(BUN, [CHILD_TS, 'hold', path]);
      expect(await holder.nextLine()).toBe('locked');

      const started = Date.now();
      await expectCode(store.update('k', 2, rev), 'ERR_STORE', path);
      expect(Date.now() - started).toBeGreaterThanOrEqual(4000); // waited busy_timeout

      holder.child.kill('SIGKILL');
      await holder.exit;
      expect(await store.update('k', 2, rev)).toEqual(expect.any(String));
    });
  });

  it('two connections in one process see each other and conflict on stale revs', async () => {
    const path = join(await tempDir(), 'two.db');
    const [a, b] = [await open(path), await open(path)];
    const r1 = (await a.create('k', 'a'))!;
    expect(await b.create('k', 'b')).toBeUndefined();
    const r2 = (await b.update('k', 'b', r1))!;
    expect(await a.update('k', 'a again', r1)).toBeUndefined();
    expect(await a.get('k')).toEqual({ key: 'k', value: 'b', rev: r2 });
  });

  it('revs keep increasing across keys, deletes and reopening', async () => {
    const path = join(await tempDir(), 'revs.db');
    let s = await open(path);
    const revs = [(await s.create('a', 1))!, (await s.create('b', 1))!];
    expect(await s.delete('b', revs[1]!)).toBe(true);
    revs.push((await s.update('a', 2, revs[0]!))!);
    await s.close();
    s = await open(path);
    expect(await s.get('a')).toEqual({ key: 'a', value: 2, rev: revs[2] });
    revs.push((await s.create('b', 2))!);
    const nums = revs.map(Number);
    expect(nums).toEqual([...nums].sort((x, y) => x - y));
    expect(new Set(nums).size).toBe(nums.length);
  });

  it('lists prefixes that end at the edges of Unicode', async () => {
    const s = await open(join(await tempDir(), 'unicode.db'));
    const keys = ['p\u{D7FF}', 'p\u{D7FF}x', 'p\u{E000}', 'p\u{FFFF}', 'p\u{10000}', 'p\u{10FFFF}'];
    for (const k of [...keys, 'p\u{10FFFF}\u{10FFFF}z', 'q']) await s.create(k, k);
    const list = async (p: string) => (await s.list(p)).map((e) => e.key);
    expect(await list('p\u{D7FF}')).toEqual(['p\u{D7FF}', 'p\u{D7FF}x']);
    expect(await list('p\u{10FFFF}')).toEqual(['p\u{10FFFF}', 'p\u{10FFFF}\u{10FFFF}z']);
    expect(await list('p\u{10FFFF}\u{10FFFF}')).toEqual(['p\u{10FFFF}\u{10FFFF}z']);
    expect((await list('p')).length).toBe(keys.length + 1);
  });

  it('refuses a file that is not a store, naming it', async () => {
    const path = join(await tempDir(), 'garbage.db');
    await writeFile(path, 'this is not a database\n'.repeat(200));
    await expectCode(createFileStore(path), 'ERR_STORE_CORRUPT', path);
  });

  it('reports a path it cannot open as ERR_STORE, naming it', async () => {
    const file = join(await tempDir(), 'plain-file');
    await writeFile(file, '');
    const path = join(file, 'store.db');
    await expectCode(createFileStore(path), 'ERR_STORE', path);
  });

  it('refuses a value with no JSON form instead of storing null', async () => {
    const s = await open(join(await tempDir(), 'json.db'));
    await expectCode(s.create('k', undefined), 'ERR_STORE', '"k"');
    await expectCode(s.create('k', { n: 1n }), 'ERR_STORE', '"k"');
    expect(await s.get('k')).toBeUndefined();
  });
});
