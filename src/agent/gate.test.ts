import { describe, expect, it } from 'vitest';
import { isTartanError } from '../cni/errors.js';
import { Gate } from './gate.js';

/** A call that runs until released, recording when it started and ended. */
function job(log: string[], name: string) {
  let release!: () => void;
  const done = new Promise<void>((r) => (release = r));
  return {
    release: () => release(),
    fn: async () => {
      log.push(`+${name}`);
      await done;
      log.push(`-${name}`);
      return name;
    },
  };
}
const tick = () => new Promise((r) => setImmediate(r));

describe('Gate', () => {
  it('runs at most maxConcurrent calls and queues the rest in order', async () => {
    const g = new Gate(2, 10);
    const log: string[] = [];
    const j = ['a', 'b', 'c'].map((n) => job(log, n));
    const p = j.map((x) => g.run({}, x.fn));
    await tick();
    expect(log).toEqual(['+a', '+b']);
    expect(g.stats()).toEqual({ running: 2, queued: 1 });
    j[0]!.release();
    await tick();
    expect(log).toEqual(['+a', '+b', '-a', '+c']);
    j[1]!.release();
    j[2]!.release();
    expect(await Promise.all(p)).toEqual(['a', 'b', 'c']);
    expect(g.stats()).toEqual({ running: 0, queued: 0 });
  });

  it('counts the calls that ended, failed ones too', async () => {
    const g = new Gate(2, 10);
    const log: string[] = [];
    const [a, b] = ['a', 'b'].map((n) => job(log, n));
    const pa = g.run({ key: 'k' }, a!.fn);
    const pb = g.run({ key: 'k' }, b!.fn);
    await tick();
    expect(g.finished).toBe(0);
    a!.release();
    await pa;
    await tick();
    expect(g.finished).toBe(1);
    b!.release();
    await pb;
    await g.run({}, async () => Promise.reject(new Error('no'))).catch(() => undefined);
    await tick();
    expect(g.finished).toBe(3);
  });

  it('serialises calls with the same key and lets other keys pass', async () => {
    const g = new Gate(4, 10);
    const log: string[] = [];
    const [a1, a2, b] = ['a1', 'a2', 'b'].map((n) => job(log, n));
    g.run({ key: 'A' }, a1!.fn);
    const p2 = g.run({ key: 'A' }, a2!.fn);
    g.run({ key: 'B' }, b!.fn);
    await tick();
    expect(log).toEqual(['+a1', '+b']);
    a1!.release();
    await tick();
    expect(log).toEqual(['+a1', '+b', '-a1', '+a2']);
    a2!.release();
    b!.release();
    await p2;
  });

  it('runs an exclusive call alone, and nothing queued after it overtakes it', async () => {
    const g = new Gate(4, 10);
    const log: string[] = [];
    const [s1, x, s2] = ['s1', 'x', 's2'].map((n) => job(log, n));
    g.run({}, s1!.fn);
    g.run({ exclusive: true }, x!.fn);
    const last = g.run({}, s2!.fn);
    await tick();
    expect(log).toEqual(['+s1']);
    s1!.release();
    await tick();
    expect(log).toEqual(['+s1', '-s1', '+x']);
    x!.release();
    await tick();
    expect(log).toEqual(['+s1', '-s1', '+x', '-x', '+s2']);
    s2!.release();
    await last;
  });

  it('refuses with "try again later" (11) when the queue is full', async () => {
    const g = new Gate(1, 1);
    const log: string[] = [];
    const [a, b] = ['a', 'b'].map((n) => job(log, n));
    g.run({}, a!.fn);
    g.run({}, b!.fn);
    const e = await g.run({}, async () => 'c').catch((x: unknown) => x);
    expect(isTartanError(e)).toBe(true);
    expect((e as { cniCode: number }).cniCode).toBe(11);
    expect((e as { details: string }).details).toBe('ERR_AGENT_BUSY');
    a!.release();
    b!.release();
  });

  it('fails waiting calls by tag (queued ADDs when draining starts)', async () => {
    const g = new Gate(1, 10);
    const log: string[] = [];
    const [a, b] = ['a', 'b'].map((n) => job(log, n));
    g.run({ tag: 'DEL' }, a!.fn);
    const add = g.run({ tag: 'ADD' }, b!.fn).catch((e: Error) => e.message);
    g.rejectWaiting('ADD', new Error('draining'));
    expect(await add).toBe('draining');
    expect(g.stats().queued).toBe(0);
    a!.release();
  });
});
