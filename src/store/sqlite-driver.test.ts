import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createFileStore } from './file.js';
import { openSqlite, useWal, type SqliteDriver } from './sqlite-driver.js';

// A fresh file is in rollback mode until someone switches it to WAL. While another process
// holds its write lock (here: a second connection in the middle of creating tables, as a
// node's first pods do together), SQLite answers the switch with SQLITE_BUSY at once and
// does not call the busy handler.
describe('switching a fresh file to WAL while another connection writes it', () => {
  const dirs: string[] = [];
  const held: SqliteDriver[] = [];
  afterEach(() => {
    for (const db of held.splice(0)) db.close();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  const writerOn = async (path: string): Promise<SqliteDriver> => {
    const db = await openSqlite(path);
    held.push(db);
    db.exec('BEGIN IMMEDIATE');
    db.exec('CREATE TABLE other (x)');
    return db;
  };
  const freshDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'tt-sqlite-'));
    dirs.push(d);
    return d;
  };

  it('is refused at once by SQLite itself despite busy_timeout (the premise)', async () => {
    const path = join(freshDir(), 'x.db');
    await writerOn(path);
    const db = await openSqlite(path);
    held.push(db);
    db.exec('PRAGMA busy_timeout = 5000');
    const started = Date.now();
    expect(() => db.exec('PRAGMA journal_mode = WAL')).toThrow(/locked|busy/i);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('useWal waits for the writer, then the file is WAL', async () => {
    const path = join(freshDir(), 'x.db');
    const writer = await writerOn(path);
    const db = await openSqlite(path);
    held.push(db);
    setTimeout(() => writer.exec('COMMIT'), 30);
    await useWal(db, 5000);
    expect(db.get('PRAGMA journal_mode')).toEqual({ journal_mode: 'wal' });
  });

  it('useWal gives up with SQLite busy error after its timeout', async () => {
    const path = join(freshDir(), 'x.db');
    await writerOn(path);
    const db = await openSqlite(path);
    held.push(db);
    await expect(useWal(db, 40)).rejects.toMatchObject({ code: 'SQLITE_BUSY' });
  });

  it('the file store opens once the writer is done', async () => {
    const path = join(freshDir(), 'ipam.db');
    const writer = await writerOn(path);
    setTimeout(() => writer.exec('COMMIT'), 30);
    const store = await createFileStore(path);
    try {
      expect(await store.create('k', { v: 1 })).toBeDefined();
      expect((await store.get('k'))?.value).toEqual({ v: 1 });
    } finally {
      await store.close();
    }
  });
});
