// The one behaviour suite every datastore runs (memory, file, etcd, and later Kubernetes).
// It speaks only through the Store interface; anything a backend cannot be asked through
// it (such as writing a damaged record) comes from the factory as an optional hook.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isTartanError } from '../../src/cni/errors.js';
import type { Store } from '../../src/store/types.js';

export interface StoreUnderTest {
  /** A store with no keys yet. */
  store: Store;
  /** Closes the store and removes whatever the factory created. */
  cleanup(): Promise<void>;
  /** Replaces the stored value of an existing key with bytes that are not JSON. */
  injectCorrupt?(key: string): Promise<void>;
}

export function runStoreContract(
  name: string,
  newStore: () => Promise<StoreUnderTest>,
  opts: { corruptible: boolean } = { corruptible: true },
): void {
  describe(`store contract: ${name}`, () => {
    let t: StoreUnderTest;
    let s: Store;
    beforeEach(async () => {
      t = await newStore();
      s = t.store;
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('names its kind', () => {
      expect(s.kind).toMatch(/^[a-z]+$/);
    });

    it('get of a missing key is undefined', async () => {
      expect(await s.get('nope')).toBeUndefined();
    });

    it('create stores the value once', async () => {
      const rev = await s.create('k', { n: 1 });
      expect(rev).toEqual(expect.any(String));
      expect(await s.get('k')).toEqual({ key: 'k', value: { n: 1 }, rev });
      expect(await s.create('k', { n: 2 })).toBeUndefined();
      expect(await s.get('k')).toEqual({ key: 'k', value: { n: 1 }, rev });
    });

    it('update succeeds only with the current rev', async () => {
      const r1 = (await s.create('k', 'one'))!;
      const r2 = await s.update('k', 'two', r1);
      expect(r2).toEqual(expect.any(String));
      expect(r2).not.toBe(r1);
      expect(await s.get('k')).toEqual({ key: 'k', value: 'two', rev: r2 });
      expect(await s.update('k', 'stale', r1)).toBeUndefined();
      expect(await s.update('k', 'junk', 'not-a-rev')).toBeUndefined();
      expect((await s.get('k'))?.value).toBe('two');
    });

    it('update of a missing key is a conflict, and does not create it', async () => {
      const r = (await s.create('other', 1))!;
      expect(await s.update('k', 'v', r)).toBeUndefined();
      expect(await s.get('k')).toBeUndefined();
    });

    it('delete succeeds only with the current rev', async () => {
      const r1 = (await s.create('k', 1))!;
      const r2 = (await s.update('k', 2, r1))!;
      expect(await s.delete('k', r1)).toBe(false);
      expect((await s.get('k'))?.value).toBe(2);
      expect(await s.delete('k', r2)).toBe(true);
      expect(await s.get('k')).toBeUndefined();
      expect(await s.delete('k', r2)).toBe(false);
    });

    it('a key deleted and created again does not accept revs from before', async () => {
      const r1 = (await s.create('k', 'first'))!;
      expect(await s.delete('k', r1)).toBe(true);
      const r2 = (await s.create('k', 'second'))!;
      expect(r2).not.toBe(r1);
      expect(await s.update('k', 'late writer', r1)).toBeUndefined();
      expect(await s.delete('k', r1)).toBe(false);
      expect(await s.get('k')).toEqual({ key: 'k', value: 'second', rev: r2 });
    });

    it('list returns exactly the keys under a prefix, sorted, with current revs', async () => {
      const keys = ['a/bc', 'a/b/2', 'a/b', 'a/b/1', 'a/a', 'ab', 'b/a/b/'];
      const revs = new Map<string, string>();
      for (const k of keys) revs.set(k, (await s.create(k, { k }))!);
      const list = async (p: string) => (await s.list(p)).map((e) => e.key);
      expect(await list('a/b/')).toEqual(['a/b/1', 'a/b/2']);
      expect(await list('a/b')).toEqual(['a/b', 'a/b/1', 'a/b/2', 'a/bc']);
      expect(await list('a/')).toEqual(['a/a', 'a/b', 'a/b/1', 'a/b/2', 'a/bc']);
      expect(await list('a')).toEqual(['a/a', 'a/b', 'a/b/1', 'a/b/2', 'a/bc', 'ab']);
      expect(await list('')).toEqual([...keys].sort());
      expect(await list('c')).toEqual([]);
      expect(await list('a/b/2/')).toEqual([]);
      for (const e of await s.list('')) {
        expect(e).toEqual({ key: e.key, value: { k: e.key }, rev: revs.get(e.key) });
      }
      // A rev from list is as good as one from get.
      const [first] = await s.list('a/b/1');
      expect(await s.update('a/b/1', 'x', first!.rev)).toEqual(expect.any(String));
    });

    it('values round-trip as JSON, unicode and nesting included', async () => {
      const values: unknown[] = [
        { ip: '10.0.0.1', tags: ['a', 'b'], nested: { deep: { deeper: [1, { x: null }] } } },
        'Grüße, 東京, Ωmega, 🚀 and "quotes", \\ back\nslash\ttab \u0000 nul',
        [],
        {},
        0,
        -1.5e-7,
        true,
        null,
        Number.MAX_SAFE_INTEGER,
      ];
      for (const [i, v] of values.entries()) {
        const key = `v/${i}/ключ/🔑`;
        await s.create(key, v);
        expect((await s.get(key))?.value).toEqual(v);
      }
      expect((await s.list('v/')).map((e) => e.value)).toEqual(values);
    });

    it('hands out copies: mutating a value read or written does not change the store', async () => {
      const v = { list: [1, 2] };
      await s.create('k', v);
      v.list.push(3);
      const got = (await s.get<{ list: number[] }>('k'))!;
      got.value.list.push(4);
      expect((await s.get('k'))?.value).toEqual({ list: [1, 2] });
    });

    it('keeps large values intact (64 KiB)', async () => {
      const big = {
        text: 'x'.repeat(64 * 1024),
        cells: Array.from({ length: 2048 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`),
      };
      const r1 = (await s.create('big', big))!;
      expect((await s.get('big'))?.value).toEqual(big);
      big.cells.reverse();
      expect(await s.update('big', big, r1)).toEqual(expect.any(String));
      expect((await s.get('big'))?.value).toEqual(big);
    });

    it('concurrent CAS increments with retries lose no update', async () => {
      const callers = 20;
      const increments = 10;
      await s.create('counter', { n: 0 });
      let conflicts = 0;
      // Bounded, so that a store that never accepts an update fails instead of spinning
      // on microtasks, where even the test timeout cannot fire.
      const incrementOnce = async () => {
        for (let attempt = 0; attempt < 1000; attempt++) {
          const cur = (await s.get<{ n: number }>('counter'))!;
          if (await s.update('counter', { n: cur.value.n + 1 }, cur.rev)) return;
          conflicts++;
        }
        throw new Error('no update accepted in 1000 attempts');
      };
      await Promise.all(
        Array.from({ length: callers }, async () => {
          for (let i = 0; i < increments; i++) await incrementOnce();
        }),
      );
      expect((await s.get('counter'))?.value).toEqual({ n: callers * increments });
      // Not asserted: a store whose operations never interleave has no conflicts at all.
      expect(conflicts).toBeGreaterThanOrEqual(0);
    });

    it('concurrent creates of one key: exactly one wins', async () => {
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => s.create('claim', { by: i })),
      );
      const winners = results.flatMap((r, i) => (r === undefined ? [] : [i]));
      expect(winners).toHaveLength(1);
      expect((await s.get('claim'))?.value).toEqual({ by: winners[0] });
    });

    // Only stores with a serialised form can hold a damaged record (not the memory store).
    if (opts.corruptible)
      it('a damaged record is reported with ERR_STORE_CORRUPT naming the key', async () => {
        await s.create('pool/good', 1);
        await s.create('pool/bad', 2);
        await t.injectCorrupt!('pool/bad');
        const expectCorrupt = async (p: Promise<unknown>) => {
          const e: unknown = await p.then(
            () => undefined,
            (err: unknown) => err,
          );
          expect(isTartanError(e, 'ERR_STORE_CORRUPT'), String(e)).toBe(true);
          expect((e as Error).message).toContain('pool/bad');
        };
        await expectCorrupt(s.get('pool/bad'));
        await expectCorrupt(s.list('pool/'));
        // The damage stays contained to that record.
        expect((await s.get('pool/good'))?.value).toBe(1);
      });
  });
}
