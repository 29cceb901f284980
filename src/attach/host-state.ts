// Node-local state: one record per CNI attachment (written ahead of kernel work, so DEL and
// GC can undo a half-done ADD even after a crash, and work when the network or the API is
// gone) and the reference counts of host parent interfaces. Kept in a SQLite file so the
// lock around parent changes dies with its holder.
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as v from 'valibot';
import { TartanError } from '../cni/errors.js';
import { issuesText, notList } from '../cni/validation.js';
import { isBusy, openSqlite, useWal, type SqliteDriver } from '../store/sqlite-driver.js';
import type { AttachmentRecord, ParentRecord } from './records.js';

export interface HostState {
  /** Records are checked for shape when read: a malformed one is ERR_STORE_CORRUPT. */
  getAttachment(containerId: string, ifname: string): AttachmentRecord | undefined;
  putAttachment(rec: AttachmentRecord): void;
  deleteAttachment(containerId: string, ifname: string): void;
  /** Every attachment, or a container's (by its ID). */
  listAttachments(containerId?: string): AttachmentRecord[];
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

/**
 * Makes the node state directory (the configuration's stateDir). A path that exists and is
 * not a directory, or lies below a file, is a configuration error (code 7), whichever
 * command meets it first; any other failure (permissions, a read-only file system) means
 * the node state cannot be opened (105).
 */
export function ensureStateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    const code = (e as { code?: unknown } | null)?.code;
    if (code === 'EEXIST' || code === 'ENOTDIR') {
      let exists = false;
      try {
        exists = !statSync(dir).isDirectory();
      } catch {
        // Below a file (ENOTDIR): dir itself cannot exist.
      }
      throw new TartanError(
        'ERR_CONFIG',
        exists
          ? `stateDir ${dir} is not a directory`
          : `stateDir ${dir} is not a directory: part of its path is a file`,
        { cause: e },
      );
    }
    throw new TartanError(
      'ERR_STORE',
      `cannot create node state directory ${dir} (stateDir): ${(e as Error).message}`,
      { cause: e },
    );
  }
}

/** A SQLite failure on the node state file, named, with the datastore's code (105). */
function stateError(e: unknown, file: string, opening = false): TartanError {
  if (e instanceof TartanError) return e;
  const code = String((e as { code?: unknown } | null)?.code ?? '');
  const msg = e instanceof Error ? e.message : String(e);
  if (code.startsWith('SQLITE_READONLY'))
    return new TartanError('ERR_STORE', `node state ${file} cannot be written: ${msg}`, {
      cause: e,
    });
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB')
    return new TartanError('ERR_STORE_CORRUPT', `node state ${file} is damaged: ${msg}`, {
      cause: e,
    });
  if (isBusy(e))
    return new TartanError(
      'ERR_STORE',
      `node state ${file} is still locked by another process after ${BUSY_TIMEOUT_MS} ms`,
      { cause: e },
    );
  const what = opening ? 'cannot open node state' : 'node state';
  return new TartanError('ERR_STORE', `${what} ${file}: ${msg}`, { cause: e });
}

// The shapes of the records, checked when read: a record that is JSON but not a record
// (a bug, a hand edit, a damaged disk) must be reported, never acted upon (DEL would
// release the wrong addresses, or fail with a TypeError). Loose objects: fields a later
// version adds are kept. The spec copy is checked for what undoing an interface reads,
// not against today's network schema, so records from older versions still validate.
const str = v.string();
const int = v.pipe(v.number(), v.safeInteger());
const RecordedSpecSchema = v.looseObject({
  type: v.picklist(['ipvlan', 'macvlan', 'bridge', 'host-device', 'delegate']),
  ipv4: v.optional(v.looseObject({ cidr: str })),
  ipv6: v.optional(v.looseObject({ cidr: str })),
  delegate: v.optional(notList),
  mtu: v.optional(int),
});
const InterfaceRecordSchema = v.looseObject({
  ifname: str,
  network: str,
  spec: RecordedSpecSchema,
  state: v.picklist(['adding', 'ready']),
  parents: v.array(str),
  hostVeth: v.optional(str),
  hostDevice: v.optional(str),
  allocations: v.array(
    v.looseObject({
      family: v.picklist([4, 6]),
      address: str,
      prefixLength: int,
      gateway: v.optional(str),
      seq: int,
      block: str,
    }),
  ),
  claim: v.optional(str),
  rules: v.array(v.looseObject({ from: str, table: int, priority: int })),
  routes: v.array(v.looseObject({ dst: str, gw: v.optional(str), table: v.optional(int) })),
  delegate: v.optional(v.looseObject({ conflist: notList, result: notList })),
  runtimeConfig: v.optional(notList),
  cniConfArgs: v.optional(notList),
  mac: v.optional(str),
  hostMac: v.optional(str),
});
const AttachmentRecordSchema = v.looseObject({
  containerId: str,
  ifname: str,
  netns: str,
  cniNetwork: v.optional(str),
  cniVersion: str,
  node: str,
  created: str,
  interfaces: v.array(InterfaceRecordSchema),
  result: v.optional(notList),
});
const ParentRecordSchema = v.looseObject({
  name: str,
  kind: v.picklist(['vlan', 'vxlan', 'bridge']),
  external: v.boolean(),
  users: v.array(str),
  lower: v.optional(str),
  settings: v.optional(str),
});

/** The key a record must be stored under (one under another key would undo another's). */
const keyOfAttachment = (r: AttachmentRecord) => attKey(r.containerId, r.ifname);
const keyOfParent = (r: ParentRecord) => `parent/${r.name}`;

export async function openHostState(stateDir: string): Promise<HostState> {
  ensureStateDir(stateDir);
  const file = join(stateDir, 'state.db');
  let db: SqliteDriver | undefined;
  try {
    db = await openSqlite(file);
    db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    await useWal(db, BUSY_TIMEOUT_MS);
    // NORMAL survives a process crash; after a power loss every pod these records describe
    // is gone too, and GC reconciles what is left (see ADR 0002).
    db.exec('PRAGMA synchronous = NORMAL');
    db.exec('CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
  } catch (e) {
    try {
      db?.close();
    } catch {
      // Already failing; the first error is the one worth reporting.
    }
    throw stateError(e, file, true);
  }
  return hostState(db, file);
}

function hostState(sql: SqliteDriver, file: string): HostState {
  // Every SQLite failure (a read-only file, a full disk, a damaged file) names the file.
  const guard = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (e) {
      throw stateError(e, file);
    }
  };
  const db: Pick<SqliteDriver, 'exec' | 'get' | 'all' | 'run'> = {
    exec: (q) => guard(() => sql.exec(q)),
    get: (q, ...p) => guard(() => sql.get(q, ...p)),
    all: (q, ...p) => guard(() => sql.all(q, ...p)),
    run: (q, ...p) => guard(() => sql.run(q, ...p)),
  };
  const decode = <T>(
    key: string,
    raw: unknown,
    schema: v.GenericSchema<unknown, unknown>,
    keyOf: (rec: T) => string,
  ): T => {
    let value: unknown;
    try {
      value = JSON.parse(String(raw));
    } catch (e) {
      const text = `node state record ${key} in ${file} is not JSON`;
      throw new TartanError('ERR_STORE_CORRUPT', text, { cause: e });
    }
    const r = v.safeParse(schema, value);
    const problem = !r.success
      ? issuesText(r.issues)
      : keyOf(value as T) !== key
        ? `it does not belong under this key (it names ${keyOf(value as T)})`
        : undefined;
    if (problem !== undefined)
      throw new TartanError(
        'ERR_STORE_CORRUPT',
        `node state record ${key} in ${file} is invalid: ${problem}`,
      );
    // The JSON itself, not the schema's output: nothing of the record is dropped.
    return value as T;
  };
  const get = <T>(
    key: string,
    schema: v.GenericSchema<unknown, unknown>,
    keyOf: (r: T) => string,
  ) => {
    const row = db.get('SELECT value FROM state WHERE key = ?', key);
    return row ? decode<T>(key, row.value, schema, keyOf) : undefined;
  };
  const put = (key: string, value: unknown) =>
    db.run(
      'INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      key,
      JSON.stringify(value),
    );
  const del = (key: string) => db.run('DELETE FROM state WHERE key = ?', key);
  const list = <T>(
    prefix: string,
    schema: v.GenericSchema<unknown, unknown>,
    keyOf: (r: T) => string,
  ): T[] =>
    db
      .all(
        'SELECT key, value FROM state WHERE key >= ? AND key < ? ORDER BY key',
        prefix,
        prefix + '\uffff',
      )
      .map((r) => decode<T>(String(r.key), r.value, schema, keyOf));

  // One connection serves every async flow of this process: chain them so that only one
  // holds the SQLite write transaction at a time.
  let chain: Promise<unknown> = Promise.resolve();
  return {
    getAttachment: (cid, ifname) =>
      get<AttachmentRecord>(attKey(cid, ifname), AttachmentRecordSchema, keyOfAttachment),
    putAttachment: (rec) => void put(keyOfAttachment(rec), rec),
    deleteAttachment: (cid, ifname) => void del(attKey(cid, ifname)),
    // A container ID holds no "/" (CNI_CONTAINERID is checked): its prefix is its own.
    listAttachments: (cid) =>
      list<AttachmentRecord>(
        cid === undefined ? 'att/' : `att/${cid}/`,
        AttachmentRecordSchema,
        keyOfAttachment,
      ),
    getParent: (name) => get<ParentRecord>(`parent/${name}`, ParentRecordSchema, keyOfParent),
    putParent: (rec) => void put(keyOfParent(rec), rec),
    deleteParent: (name) => void del(`parent/${name}`),
    listParents: () => list<ParentRecord>('parent/', ParentRecordSchema, keyOfParent),
    withLock<T>(fn: () => Promise<T>): Promise<T> {
      const run = async () => {
        db.exec('BEGIN IMMEDIATE');
        try {
          const r = await fn();
          db.exec('COMMIT');
          return r;
        } catch (e) {
          try {
            sql.exec('ROLLBACK');
          } catch {
            // SQLite may have rolled back already (e.g. on SQLITE_FULL); keep the first error.
          }
          throw e;
        }
      };
      const p = chain.then(run, run);
      chain = p.catch(() => undefined);
      return p;
    },
    trimWal: () => guard(() => sql.trimWal()),
    close: () => sql.close(),
  };
}
