// The embedded local store: one SQLite file shared by the CNI binary (Bun) and the agent
// (Node). SQLite gives what plain files cannot from JavaScript: a lock that dies with its
// holder, and atomic, crash-safe commits (see docs/adr/0002-datastores.md).
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { TartanError } from '../cni/errors.js';
import { isBusy, openSqlite, useWal, type Row, type SqliteDriver } from './sqlite-driver.js';
import { decodeValue, encodeValue } from './codec.js';
import type { Entry, Store } from './types.js';

const SCHEMA_VERSION = 1;
// How long a writer waits for another process's transaction before giving up. Writes take
// well under a millisecond, so hitting this means a stuck process, not contention. The
// drivers are synchronous: the waiting process's event loop is blocked meanwhile.
const BUSY_TIMEOUT_MS = 5000;

export async function createFileStore(path: string): Promise<Store> {
  let db: SqliteDriver | undefined;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    db = await openSqlite(path);
    await init(db);
  } catch (e) {
    try {
      db?.close();
    } catch {
      // Already failing; the first error is the one worth reporting.
    }
    throw storeError(e, path, 'open');
  }
  return fileStore(db, path);
}

async function init(db: SqliteDriver): Promise<void> {
  db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
  // WAL: readers never block the writer, and a commit is one append to the log.
  await useWal(db, BUSY_TIMEOUT_MS);
  // NORMAL, not FULL: a commit survives a crash of any process (the log is in the page
  // cache), and the file stays consistent after a power loss, which may roll back the
  // last commits. This store is local to one host, so every pod those commits described
  // died with the power too. FULL fsyncs every commit: measured on this CI VM's ext4
  // disk, 260-1,100 updates/s against 5,500-27,000 for NORMAL, i.e. 1-4 ms per write,
  // which alone would put a CNI ADD past the reference host-local plugin (no fsync).
  db.exec('PRAGMA synchronous = NORMAL');
  const version = Number(db.get('PRAGMA user_version')?.user_version ?? 0);
  if (version > SCHEMA_VERSION) {
    throw new TartanError(
      'ERR_STORE',
      `schema version ${version} is newer than this Tartan understands (${SCHEMA_VERSION})`,
    );
  }
  if (version === SCHEMA_VERSION) return;
  write(db, () => {
    db.exec(`
      CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, rev INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
      INSERT OR IGNORE INTO meta (name, value) VALUES ('rev', 0);
      PRAGMA user_version = ${SCHEMA_VERSION};
    `);
  });
}

// IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
// writes fails at once with SQLITE_BUSY under WAL instead of waiting for busy_timeout.
function write<T>(db: SqliteDriver, fn: () => T): T {
  db.exec('BEGIN IMMEDIATE');
  try {
    const result = fn();
    db.exec('COMMIT');
    return result;
  } catch (e) {
    try {
      db.exec('ROLLBACK');
    } catch {
      // SQLite may have rolled back already (e.g. on SQLITE_FULL); keep the first error.
    }
    throw e;
  }
}

function fileStore(db: SqliteDriver, path: string): Store {
  const guard = <T>(op: string, key: string, fn: () => T): Promise<T> => {
    try {
      return Promise.resolve(fn());
    } catch (e) {
      return Promise.reject(storeError(e, path, `${op} "${key}"`));
    }
  };
  const entry = <T>(row: Row): Entry<T> => {
    const key = String(row.key);
    const rev = String(row.rev);
    return { key, rev, value: decodeValue(`file store ${path}`, key, rev, row.value) as T };
  };
  // Every change takes the next value of one global counter, so a revision is never
  // reused, not even by a key deleted and created again: a stale rev cannot match.
  const bump = (): number => {
    db.run("UPDATE meta SET value = value + 1 WHERE name = 'rev'");
    return Number(db.get("SELECT value FROM meta WHERE name = 'rev'")?.value);
  };
  const revOf = (key: string): number | undefined => {
    const row = db.get('SELECT rev FROM kv WHERE key = ?', key);
    return row ? Number(row.rev) : undefined;
  };
  // Each write checks first without the lock: a mismatch seen by a plain read is already a
  // correct answer (the key was in another state at that instant), so the losers of a race
  // answer at once instead of queueing for the write lock, whose busy wait sleeps in steps
  // of up to 100 ms. The check is repeated under the lock before anything is written.
  const cas = <T>(key: string, expected: number | undefined, change: () => T): T | undefined => {
    if (revOf(key) !== expected) return undefined;
    return write(db, () => (revOf(key) === expected ? change() : undefined));
  };

  return {
    kind: 'file',
    get: (key) =>
      guard('get', key, () => {
        const row = db.get('SELECT key, value, rev FROM kv WHERE key = ?', key);
        return row ? entry(row) : undefined;
      }),
    list: (prefix) =>
      guard('list', prefix, () => {
        const end = prefixEnd(prefix);
        const rows =
          end === undefined
            ? db.all('SELECT key, value, rev FROM kv WHERE key >= ? ORDER BY key', prefix)
            : db.all(
                'SELECT key, value, rev FROM kv WHERE key >= ? AND key < ? ORDER BY key',
                prefix,
                end,
              );
        return rows.map((r) => entry(r));
      }),
    create: (key, value) =>
      guard('create', key, () => {
        const json = encodeValue(key, value);
        const rev = cas(key, undefined, () => {
          const next = bump();
          db.run('INSERT INTO kv (key, value, rev) VALUES (?, ?, ?)', key, json, next);
          return next;
        });
        return rev === undefined ? undefined : String(rev);
      }),
    update: (key, value, rev) =>
      guard('update', key, () => {
        const json = encodeValue(key, value);
        const expected = parseRev(rev);
        if (expected === undefined) return undefined;
        const next = cas(key, expected, () => {
          const next = bump();
          db.run(
            'UPDATE kv SET value = ?, rev = ? WHERE key = ? AND rev = ?',
            json,
            next,
            key,
            expected,
          );
          return next;
        });
        return next === undefined ? undefined : String(next);
      }),
    delete: (key, rev) =>
      guard('delete', key, () => {
        const expected = parseRev(rev);
        if (expected === undefined) return false;
        return cas(key, expected, () => db.run('DELETE FROM kv WHERE key = ?', key) === 1) === true;
      }),
    trimWal: () => db.trimWal(),
    close: async () => db.close(),
  };
}

function parseRev(rev: string): number | undefined {
  if (!/^[1-9][0-9]{0,15}$/.test(rev)) return undefined;
  const n = Number(rev);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * The least string above every string that starts with prefix, in SQLite's order for
 * TEXT (UTF-8 bytes, which is code point order), so a prefix scan is an index range.
 * undefined when there is no such bound (empty prefix, or only U+10FFFF).
 */
export function prefixEnd(prefix: string): string | undefined {
  const chars = [...prefix];
  while (chars.length > 0) {
    const last = chars.pop()!.codePointAt(0)!;
    if (last < 0x10ffff) {
      // Surrogates are not characters; the code point after U+D7FF is U+E000.
      const next = last === 0xd7ff ? 0xe000 : last + 1;
      return chars.join('') + String.fromCodePoint(next);
    }
  }
  return undefined;
}

function storeError(e: unknown, path: string, what: string): TartanError {
  const code = (e as { code?: unknown } | null)?.code;
  const msg = e instanceof Error ? e.message : String(e);
  if (e instanceof TartanError) {
    return e.message.includes(path)
      ? e
      : new TartanError(e.code, `file store ${path}: ${what}: ${e.message}`, { cause: e });
  }
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
    return new TartanError('ERR_STORE_CORRUPT', `file store ${path} is damaged (${what}): ${msg}`, {
      cause: e,
    });
  }
  if (isBusy(e)) {
    return new TartanError(
      'ERR_STORE',
      `file store ${path}: ${what}: still locked by another process after ${BUSY_TIMEOUT_MS} ms`,
      { cause: e },
    );
  }
  return new TartanError('ERR_STORE', `file store ${path}: ${what}: ${msg}`, { cause: e });
}
