// Node-local state: one record per CNI attachment (written ahead of kernel work, so DEL and
// GC can undo a half-done ADD even after a crash, and work when the network or the API is
// gone) and the reference counts of host parent interfaces. Kept in a SQLite file so the
// lock around parent changes dies with its holder.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { TartanError } from '../cni/errors.js';
import { openSqlite, useWal, type SqliteDriver } from '../store/sqlite-driver.js';
import type { AttachmentRecord, ParentRecord } from './records.js';

export interface HostState {
  getAttachment(containerId: string, ifname: string): AttachmentRecord | undefined;
  putAttachment(rec: AttachmentRecord): void;
  deleteAttachment(containerId: string, ifname: string): void;
  listAttachments(): AttachmentRecord[];
  getParent(name: string): ParentRecord | undefined;
  putParent(rec: ParentRecord): void;
  deleteParent(name: string): void;
  listParents(): ParentRecord[];
  /** Runs fn holding the host-wide lock (other processes wait); serialises parent changes. */
  withLock<T>(fn: () => Promise<T>): Promise<T>;
  /** Bounds the WAL before a process exits without close() (SqliteDriver.trimWal). */
  trimWal(): void;
  close(): void;
}

// How long a process waits for another's transaction on the node state (a stuck process).
const BUSY_TIMEOUT_MS = 10_000;

const attKey = (cid: string, ifname: string) => `att/${cid}/${ifname}`;

export async function openHostState(stateDir: string): Promise<HostState> {
  let db: SqliteDriver;
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    db = await openSqlite(join(stateDir, 'state.db'));
    db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    await useWal(db, BUSY_TIMEOUT_MS);
    // NORMAL survives a process crash; after a power loss every pod these records describe
    // is gone too, and GC reconciles what is left (see ADR 0002).
    db.exec('PRAGMA synchronous = NORMAL');
    db.exec('CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
  } catch (e) {
    throw new TartanError(
      'ERR_STORE',
      `cannot open node state in ${stateDir}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const get = <T>(key: string): T | undefined => {
    const row = db.get('SELECT value FROM state WHERE key = ?', key);
    if (!row) return undefined;
    try {
      return JSON.parse(String(row.value)) as T;
    } catch (e) {
      throw new TartanError('ERR_STORE_CORRUPT', `node state record ${key} is not JSON`, {
        cause: e,
      });
    }
  };
  const put = (key: string, value: unknown) =>
    db.run(
      'INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      key,
      JSON.stringify(value),
    );
  const del = (key: string) => db.run('DELETE FROM state WHERE key = ?', key);
  const list = <T>(prefix: string): T[] =>
    db
      .all(
        'SELECT key, value FROM state WHERE key >= ? AND key < ? ORDER BY key',
        prefix,
        prefix + '\uffff',
      )
      .map((r) => {
        try {
          return JSON.parse(String(r.value)) as T;
        } catch (e) {
          throw new TartanError(
            'ERR_STORE_CORRUPT',
            `node state record ${String(r.key)} is not JSON`,
            { cause: e },
          );
        }
      });

  // One connection serves every async flow of this process: chain them so that only one
  // holds the SQLite write transaction at a time.
  let chain: Promise<unknown> = Promise.resolve();
  return {
    getAttachment: (cid, ifname) => get<AttachmentRecord>(attKey(cid, ifname)),
    putAttachment: (rec) => void put(attKey(rec.containerId, rec.ifname), rec),
    deleteAttachment: (cid, ifname) => void del(attKey(cid, ifname)),
    listAttachments: () => list<AttachmentRecord>('att/'),
    getParent: (name) => get<ParentRecord>(`parent/${name}`),
    putParent: (rec) => void put(`parent/${rec.name}`, rec),
    deleteParent: (name) => void del(`parent/${name}`),
    listParents: () => list<ParentRecord>('parent/'),
    withLock<T>(fn: () => Promise<T>): Promise<T> {
      const run = async () => {
        db.exec('BEGIN IMMEDIATE');
        try {
          const r = await fn();
          db.exec('COMMIT');
          return r;
        } catch (e) {
          db.exec('ROLLBACK');
          throw e;
        }
      };
      const p = chain.then(run, run);
      chain = p.catch(() => undefined);
      return p;
    },
    trimWal: () => db.trimWal(),
    close: () => db.close(),
  };
}
