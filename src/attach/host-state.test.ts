import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openSqlite, type SqliteDriver } from '../store/sqlite-driver.js';
import { openHostState } from './host-state.js';

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
});
