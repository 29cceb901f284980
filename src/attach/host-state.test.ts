import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isTartanError } from '../cni/errors.js';
import { errorResponse } from '../cni/protocol.js';
import { createIpam } from '../ipam/index.js';
import { createFakeKernel } from '../kernel/fake.js';
import { parseNetwork } from '../network/parse.js';
import { createMemoryStore } from '../store/memory.js';
import { openSqlite, type SqliteDriver } from '../store/sqlite-driver.js';
import { openHostState } from './host-state.js';
import { runCni, type Overrides } from './plugin.js';
import type { AttachmentRecord } from './records.js';

describe('openHostState', () => {
  const dirs: string[] = [];
  const held: SqliteDriver[] = [];
  afterEach(() => {
    for (const db of held.splice(0)) db.close();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  // The node's first pods open the fresh file together; switching it to WAL while another
  // process writes it is refused at once by SQLite (src/store/sqlite-driver.test.ts).
  it('opens a fresh file that another process is still creating', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tt-hoststate-'));
    dirs.push(dir);
    const writer = await openSqlite(join(dir, 'state.db'));
    held.push(writer);
    writer.exec('BEGIN IMMEDIATE');
    writer.exec('CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    setTimeout(() => writer.exec('COMMIT'), 30);
    const state = await openHostState(dir);
    try {
      expect(state.listAttachments()).toEqual([]);
      const reader = await openSqlite(join(dir, 'state.db'));
      held.push(reader);
      expect(reader.get('PRAGMA journal_mode')).toEqual({ journal_mode: 'wal' });
    } finally {
      state.close();
    }
  });

  const tmp = () => {
    const dir = mkdtempSync(join(tmpdir(), 'tt-hoststate-'));
    dirs.push(dir);
    return dir;
  };

  /** The CNI error on the wire (as the executable prints it) for one command. */
  const cni = async (command: string, conf: Record<string, unknown>, o: Overrides = {}) => {
    const env = {
      command: command as 'ADD',
      containerId: 'c1',
      netns: '/ns-c1',
      ifname: 'eth0',
      args: undefined,
      path: ['/nonexistent'],
    };
    try {
      await runCni(env, { cniVersion: '1.1.0', name: 'tartan', type: 'tartan', ...conf }, o);
      return { code: 0 };
    } catch (e) {
      const { cniVersion: _, ...out } = errorResponse(e, '1.1.0');
      return out;
    }
  };

  describe('a stateDir that is not a directory', () => {
    it('is refused with code 7 naming it, by openHostState', async () => {
      const file = join(tmp(), 'state');
      writeFileSync(file, '');
      const e = await openHostState(file).catch((x: unknown) => x);
      expect(isTartanError(e, 'ERR_CONFIG')).toBe(true);
      expect((e as Error).message).toBe(`stateDir ${file} is not a directory`);
      const below = join(file, 'sub');
      await expect(openHostState(below)).rejects.toThrow(
        `stateDir ${below} is not a directory: part of its path is a file`,
      );
    });

    // The file store may live in stateDir too: every command must meet stateDir first.
    it('fails ADD, DEL, CHECK and GC alike (code 7 naming it)', async () => {
      const dir = tmp();
      const stateDir = join(dir, 'state');
      writeFileSync(stateDir, '');
      const conf = {
        stateDir,
        networksDir: dir,
        store: { type: 'file', path: join(stateDir, 'ipam.db') },
        'cni.dev/valid-attachments': [],
      };
      for (const command of ['ADD', 'DEL', 'CHECK', 'GC'])
        expect({ command, ...(await cni(command, conf)) }).toEqual({
          command,
          code: 7,
          msg: `stateDir ${stateDir} is not a directory`,
          details: 'ERR_CONFIG',
        });
    });
  });

  /**
   * Makes a file read-only for SQLite: its mode for a user, the immutable attribute for
   * root (whom modes do not stop); undefined where neither can be done.
   */
  const readOnly = (file: string): (() => void) | undefined => {
    if (process.getuid?.() !== 0) {
      chmodSync(file, 0o444);
      return () => chmodSync(file, 0o644);
    }
    try {
      execFileSync('chattr', ['+i', file], { stdio: 'ignore' });
    } catch {
      return undefined;
    }
    return () => execFileSync('chattr', ['-i', file], { stdio: 'ignore' });
  };

  it('reports a state file that cannot be written with code 105 naming it', async () => {
    const dir = tmp();
    const file = join(dir, 'state.db');
    const st = await openHostState(dir);
    st.putParent({ name: 'br0', kind: 'bridge', external: false, users: ['c0/eth0'] });
    st.close();
    const undo = readOnly(file);
    // Loud, not skipped: without it this test would prove nothing.
    if (!undo) throw new Error(`cannot make ${file} read-only here (chattr +i)`);
    try {
      const ro = await openHostState(dir);
      try {
        expect(ro.getParent('br0')?.users).toEqual(['c0/eth0']);
        const writes = [
          () => ro.putParent({ name: 'br0', kind: 'bridge', external: false, users: [] }),
          () => ro.deleteParent('br0'),
          () => ro.deleteAttachment('c0', 'eth0'),
        ];
        for (const write of writes) {
          const e = (() => {
            try {
              write();
            } catch (x) {
              return x;
            }
          })();
          expect(isTartanError(e, 'ERR_STORE')).toBe(true);
          expect((e as { cniCode: number }).cniCode).toBe(105);
          expect((e as Error).message).toBe(
            `node state ${file} cannot be written: attempt to write a readonly database`,
          );
        }
      } finally {
        ro.close();
      }
    } finally {
      undo();
    }
  });

  describe('a record that is JSON but not a record', () => {
    const setup = async (rows: Record<string, unknown>) => {
      const dir = tmp();
      const st = await openHostState(dir);
      st.close();
      const raw = await openSqlite(join(dir, 'state.db'));
      held.push(raw);
      for (const [key, value] of Object.entries(rows))
        raw.run('INSERT INTO state (key, value) VALUES (?, ?)', key, JSON.stringify(value));
      return { dir, file: join(dir, 'state.db') };
    };
    const good: AttachmentRecord = {
      containerId: 'c2',
      ifname: 'eth0',
      netns: '/ns-c2',
      cniVersion: '1.1.0',
      node: 'n1',
      created: new Date(0).toISOString(),
      interfaces: [
        {
          ifname: 'eth0',
          network: 'oam',
          spec: { type: 'macvlan', device: 'eth1' },
          state: 'ready',
          parents: [],
          allocations: [],
          rules: [],
          routes: [],
        },
      ],
    };

    it('is reported as ERR_STORE_CORRUPT (105) naming its key, when read or listed', async () => {
      const { dir, file } = await setup({
        'att/c1/eth0': { containerId: 'c1' },
        'att/c2/eth0': good,
        'parent/br0': { name: 'br0', kind: 'bridge', users: 'c1/eth0' },
      });
      const st = await openHostState(dir);
      try {
        expect(st.getAttachment('c2', 'eth0')).toEqual(good);
        const errs = [
          () => st.getAttachment('c1', 'eth0'),
          () => st.listAttachments(),
          () => st.getParent('br0'),
          () => st.listParents(),
        ].map((read) => {
          try {
            read();
          } catch (x) {
            return x;
          }
        });
        for (const e of errs) {
          expect(isTartanError(e, 'ERR_STORE_CORRUPT')).toBe(true);
          expect((e as { cniCode: number }).cniCode).toBe(105);
        }
        expect((errs[0] as Error).message).toBe(
          `node state record att/c1/eth0 in ${file} is invalid: ifname: required; ` +
            'netns: required; cniVersion: required; node: required; created: required; ' +
            'interfaces: required',
        );
        expect((errs[1] as Error).message).toMatch(/^node state record att\/c1\/eth0 in /);
        expect((errs[2] as Error).message).toBe(
          `node state record parent/br0 in ${file} is invalid: external: required; ` +
            'users: Invalid type: Expected Array but received "c1/eth0"',
        );
      } finally {
        st.close();
      }
    });

    it("is reported when it lies under another attachment's key", async () => {
      const { dir, file } = await setup({ 'att/c1/eth0': good });
      const st = await openHostState(dir);
      try {
        expect(() => st.getAttachment('c1', 'eth0')).toThrow(
          `node state record att/c1/eth0 in ${file} is invalid: it does not belong under ` +
            'this key (it names att/c2/eth0)',
        );
      } finally {
        st.close();
      }
    });

    // Not a TypeError (code 100) from deep in the teardown: nothing is undone on a guess.
    it('fails DEL, CHECK, ADD and GC with code 105 naming it', async () => {
      const { dir } = await setup({ 'att/c1/eth0': { containerId: 'c1', ifname: 'eth0' } });
      const state = await openHostState(dir);
      try {
        const k = createFakeKernel(['lo', 'eth1']);
        k.addNetns('/ns-c1');
        const store = createMemoryStore();
        const oam = parseNetwork(
          {
            apiVersion: 'tartan.io/v1alpha1',
            kind: 'ClusterNetwork',
            metadata: { name: 'oam' },
            spec: { type: 'macvlan', device: 'eth1' },
          },
          'test',
        );
        const o = {
          kernel: k,
          store,
          ipam: createIpam(store),
          state,
          networks: new Map([['oam', oam]]),
        };
        const conf = {
          stateDir: dir,
          nodeName: 'n1',
          interfaces: [{ network: 'oam' }],
          'cni.dev/valid-attachments': [],
        };
        // CHECK as the runtime sends it: with the ADD's result as prevResult.
        const prevResult = {
          cniVersion: '1.1.0',
          interfaces: [{ name: 'eth0', sandbox: '/ns-c1' }],
          ips: [],
        };
        for (const command of ['DEL', 'CHECK', 'ADD', 'GC']) {
          const out = await cni(command, command === 'CHECK' ? { ...conf, prevResult } : conf, o);
          expect({ command, code: out.code }).toEqual({ command, code: 105 });
          expect(String(out.msg)).toContain('node state record att/c1/eth0 in ');
        }
      } finally {
        state.close();
      }
    });
  });
});
