import { describe, expect, it } from 'vitest';
import { isTartanError } from '../cni/errors.js';
import { createMemoryStore, openStore } from './index.js';

describe('openStore', () => {
  it('opens the kubernetes store only where the process has an API connection', async () => {
    const err = await openStore({ type: 'kubernetes' }).catch((e: unknown) => e);
    expect(isTartanError(err, 'ERR_CONFIG')).toBe(true);
    expect((err as Error).message).toMatch(/only the node agent has an API connection/);

    const asked: string[] = [];
    const store = createMemoryStore();
    const open = (ns: string) => (asked.push(ns), store);
    expect(await openStore({ type: 'kubernetes' }, open)).toBe(store);
    expect(await openStore({ type: 'kubernetes', namespace: 'ipam' }, open)).toBe(store);
    expect(asked).toEqual(['tartan-system', 'ipam']);
  });

  it('refuses an unknown type and a file store without a path', async () => {
    for (const cfg of [{ type: 'redis' }, { type: 'file' }])
      expect(
        isTartanError(
          await openStore(cfg as Parameters<typeof openStore>[0]).catch((e: unknown) => e),
          'ERR_CONFIG',
        ),
      ).toBe(true);
  });
});
