import {
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isTartanError } from '../cni/errors.js';
import { loadNetworks } from './load.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const GOOD = `apiVersion: tartan.io/v1alpha1
kind: ClusterNetwork
metadata: { name: oam }
spec: { type: macvlan, device: eth1 }
`;

// Nine to the ninth list items from a few hundred bytes: yaml refuses to resolve it.
const ALIAS_BOMB = [
  'a: &a ["x","x","x","x","x","x","x","x","x"]',
  ...['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'].map(
    (n, i) => `${n}: &${n} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(',')}]`,
  ),
].join('\n');

/** A networks directory holding a good file and what `bad` adds. */
function networksDir(bad: (dir: string) => void): string {
  const root = mkdtempSync(join(tmpdir(), 'tt-load-'));
  dirs.push(root);
  const dir = join(root, 'networks');
  mkdirSync(dir);
  writeFileSync(join(dir, 'a.yaml'), GOOD);
  bad(dir);
  return dir;
}

/** loadNetworks' failure, without and with its cache file: it must be the same. */
async function failures(dir: string): Promise<unknown[]> {
  return Promise.all(
    [undefined, join(dir, '..', 'cache.json')].map((cache) =>
      loadNetworks(dir, cache).then(
        () => undefined,
        (e: unknown) => e,
      ),
    ),
  );
}

const expectConfigError = (errors: unknown[], message: string) => {
  for (const e of errors) {
    expect(isTartanError(e, 'ERR_CONFIG')).toBe(true);
    expect((e as { cniCode: number }).cniCode).toBe(7);
    expect((e as Error).message).toBe(message);
  }
};

describe('loadNetworks: files that cannot be networks', () => {
  it('names a directory that has a network file name (code 7)', async () => {
    const dir = networksDir((d) => mkdirSync(join(d, 'zz.json')));
    expectConfigError(
      await failures(dir),
      `cannot read network file ${join(dir, 'zz.json')}: it is a directory`,
    );
  });

  it('names a symbolic link to nothing (code 7)', async () => {
    const dir = networksDir((d) => symlinkSync(join(d, 'gone.yaml'), join(d, 'zz.yaml')));
    expectConfigError(
      await failures(dir),
      `cannot read network file ${join(dir, 'zz.yaml')}: it does not exist (or is a symbolic link to nothing)`,
    );
  });

  // Only regular files are read: a FIFO would block the call, a device might never end.
  it('names what is not a regular file (code 7)', async () => {
    const dir = networksDir((d) => symlinkSync('/dev/null', join(d, 'zz.yaml')));
    expectConfigError(
      await failures(dir),
      `cannot read network file ${join(dir, 'zz.yaml')}: it is not a regular file`,
    );
  });

  it('names a file whose YAML aliases expand without bound (code 7)', async () => {
    const dir = networksDir((d) => writeFileSync(join(d, 'zz.yaml'), ALIAS_BOMB));
    expectConfigError(
      await failures(dir),
      `cannot parse ${join(dir, 'zz.yaml')}: Excessive alias count indicates a resource exhaustion attack`,
    );
  });

  it('still loads a directory of good files', async () => {
    const dir = networksDir(() => undefined);
    for (const cache of [undefined, join(dir, '..', 'cache.json'), join(dir, '..', 'cache.json')])
      expect([...(await loadNetworks(dir, cache)).keys()]).toEqual(['oam']);
  });
});

describe('loadNetworks: the networks directory', () => {
  it('says that it does not exist (code 7)', async () => {
    const dir = join(
      networksDir(() => undefined),
      'missing',
    );
    expectConfigError(
      await failures(dir),
      `cannot read networks directory ${dir}: it does not exist (or is a symbolic link to nothing)`,
    );
  });

  it('says that it is not a directory (code 7)', async () => {
    const dir = join(
      networksDir(() => undefined),
      'a.yaml',
    );
    expectConfigError(
      await failures(dir),
      `cannot read networks directory ${dir}: it is not a directory`,
    );
  });
});

describe('the networks cache', () => {
  it('serves only the build that wrote it', async () => {
    const dir = networksDir(() => undefined);
    const cache = join(dir, '..', 'networks.cache.json');
    const load = async (build: string) => {
      vi.resetModules();
      vi.stubEnv('TARTAN_BUILD_ID', build);
      try {
        const m = await import('./load.js');
        return await m.loadNetworks(dir, cache);
      } finally {
        vi.unstubAllEnvs();
      }
    };
    const file = join(dir, 'a.yaml');
    utimesSync(file, 1e9, 1e9);
    expect([...(await load('b1')).keys()]).toEqual(['oam']);
    // A file the next build refuses (here: a field of the same size that is not valid),
    // with the size and time the cache knows it by.
    const { size } = statSync(file);
    writeFileSync(file, GOOD.replace('macvlan', 'macvlam'));
    utimesSync(file, 1e9, 1e9);
    expect(statSync(file).size).toBe(size);
    expect([...(await load('b1')).keys()]).toEqual(['oam']);
    await expect(load('b2')).rejects.toThrow(/invalid network in .*a\.yaml/);
  });
});
