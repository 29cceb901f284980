// Kernel tier: the CNI binary exits without closing its SQLite files (ADR 0009), so each
// process trims the WAL once it is large. Without that, a process opening a file alone
// rebuilds the WAL index from the whole WAL and forgets earlier checkpoints: the WAL, and
// the start of every ADD, would grow for the life of the node.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WAL_TRIM_BYTES } from '../../src/store/sqlite-driver.js';
import { makeFixture, podLinks, type Fixture } from './fixture.js';

let f: Fixture;

beforeAll(async () => {
  f = await makeFixture('wal', [{ name: 'n1', nics: [{ name: 'eth1', segment: 'seg1' }] }]);
  f.writeNetworks([
    { name: 'oam', spec: { type: 'macvlan', device: 'eth1', ipv4: { cidr: '10.64.0.0/24' } } },
  ]);
});

afterAll(async () => {
  await f?.destroy();
});

const walBytes = (db: string) => {
  try {
    return statSync(`${db}-wal`).size;
  } catch {
    return 0;
  }
};

describe('state files of the one-shot binary', () => {
  it('keep their WAL bounded over many pods', async () => {
    const pod = await f.pod('p');
    const conf = f.conf('n1', { interfaces: [{ network: 'oam' }] });
    const ipam = join(f.dir, 'ipam.db');
    const state = join(f.dir, 'state-n1', 'state.db');
    let most = 0;
    // ~16 KB of WAL per pod: 60 pods would make ~1 MB untrimmed.
    for (let i = 0; i < 60; i++) {
      const call = { conf, containerId: `cid-wal-${i}` };
      const add = await f.cni('ADD', 'n1', pod, call);
      expect(add.code, add.stdout).toBe(0);
      expect((await f.cni('DEL', 'n1', pod, call)).code).toBe(0);
      most = Math.max(most, walBytes(ipam), walBytes(state));
    }
    expect(most).toBeGreaterThan(WAL_TRIM_BYTES / 4); // the WAL was in use
    // At most one pod's worth above the threshold before a process trims it.
    expect(most).toBeLessThan(WAL_TRIM_BYTES + 64 * 1024);
    expect((await podLinks(pod)).map((l) => l.ifname)).toEqual(['lo']);
  });
});
