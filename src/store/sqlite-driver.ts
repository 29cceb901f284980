// The smallest common surface of bun:sqlite and better-sqlite3, so the file store runs
// unchanged in the Bun-compiled CNI binary and in the Node agent. Both drivers are
// synchronous and embed SQLite, so the two runtimes share one file with SQLite's own locks.

import { statSync } from 'node:fs';

export type SqlValue = string | number | bigint | null;
export type Row = Record<string, unknown>;

export interface SqliteDriver {
  readonly runtime: 'bun' | 'node';
  exec(sql: string): void;
  get(sql: string, ...params: SqlValue[]): Row | undefined;
  all(sql: string, ...params: SqlValue[]): Row[];
  /** Returns the number of rows changed. */
  run(sql: string, ...params: SqlValue[]): number;
  /**
   * For a process that exits without closing (the CNI binary): checkpoints the WAL into the
   * database and truncates it once it holds more than WAL_TRIM_BYTES. A process that opens
   * the file alone rebuilds the WAL index by reading the whole WAL, and forgets what
   * earlier processes checkpointed, so without this the WAL, and every ADD's start, would
   * grow for the life of the node (measured: 12 MB and +3.7 ms after 500 pods).
   */
  trimWal(): void;
  close(): void;
}

/** A truncating checkpoint costs two fsyncs; at ~16 KB of WAL per pod, once per ~30 pods. */
export const WAL_TRIM_BYTES = 512 * 1024;

interface Statement {
  get(...params: SqlValue[]): Row | null | undefined;
  all(...params: SqlValue[]): Row[];
  run(...params: SqlValue[]): { changes: number | bigint };
}

interface Database {
  exec(sql: string): unknown;
  prepare(sql: string): Statement;
  close(): void;
}

type DatabaseCtor = new (path: string, opts?: Record<string, unknown>) => Database;

// Specifiers are held in variables so neither bundler follows them: the Bun build must
// not pull in a native Node addon, and esbuild cannot resolve bun:sqlite.
const BUN_SQLITE = 'bun:sqlite';
const BETTER_SQLITE3 = 'better-sqlite3';

/**
 * Switches the file to WAL, waiting up to timeoutMs for other processes. Changing the
 * journal mode needs an exclusive lock, and while the file is still in rollback mode
 * SQLite answers SQLITE_BUSY at once, without the busy handler, when another connection
 * holds the write lock (its deadlock avoidance): processes that create a fresh file together,
 * such as a node's first pods, race here (measured: 1 open in ~250 failed). Once the file
 * is WAL, which the header keeps, the first try succeeds.
 */
export async function useWal(db: SqliteDriver, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let pauseMs = 1; ; pauseMs = Math.min(pauseMs * 2, 50)) {
    try {
      db.exec('PRAGMA journal_mode = WAL');
      return;
    } catch (e) {
      if (!isBusy(e) || Date.now() >= deadline) throw e;
    }
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
}

/** SQLITE_BUSY or one of its extended codes, as both drivers report them. */
export const isBusy = (e: unknown): boolean =>
  String((e as { code?: unknown } | null)?.code ?? '').startsWith('SQLITE_BUSY');

export const isBun = (): boolean => typeof process !== 'undefined' && !!process.versions.bun;

export async function openSqlite(path: string): Promise<SqliteDriver> {
  let db: Database;
  let runtime: SqliteDriver['runtime'];
  if (isBun()) {
    const mod = (await import(BUN_SQLITE)) as { Database: DatabaseCtor };
    db = new mod.Database(path, { create: true });
    runtime = 'bun';
  } else {
    const mod = (await import(BETTER_SQLITE3)) as { default: DatabaseCtor };
    db = new mod.default(path);
    runtime = 'node';
  }
  // Preparing costs more than running these tiny statements; the store uses a handful.
  const cache = new Map<string, Statement>();
  const stmt = (sql: string): Statement => {
    let s = cache.get(sql);
    if (!s) {
      s = db.prepare(sql);
      cache.set(sql, s);
    }
    return s;
  };
  return {
    runtime,
    exec: (sql) => void db.exec(sql),
    // bun:sqlite answers null for "no row", better-sqlite3 undefined.
    get: (sql, ...p) => stmt(sql).get(...p) ?? undefined,
    all: (sql, ...p) => stmt(sql).all(...p),
    run: (sql, ...p) => Number(stmt(sql).run(...p).changes),
    trimWal: () => {
      let size = 0;
      try {
        size = statSync(`${path}-wal`).size;
      } catch {
        return; // no WAL: nothing written since the last truncation
      }
      if (size <= WAL_TRIM_BYTES) return;
      // Waits for other processes' transactions, briefly: this process is about to exit,
      // and if they are busy the next process trims instead.
      db.exec('PRAGMA busy_timeout = 100');
      db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    },
    close: () => {
      cache.clear();
      db.close();
    },
  };
}
