import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { listPending, pendingName, queueDel, removePending } from './pending.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const req = (cid: string, stdin = '{}') => ({
  v: 1,
  env: { CNI_COMMAND: 'DEL', CNI_CONTAINERID: cid, CNI_IFNAME: 'eth0' },
  stdin,
});

describe('pending DEL queue', () => {
  it('names one file per attachment, a digest for names that cannot be file names', async () => {
    expect(await pendingName('abc', 'eth0')).toBe('abc@eth0.json');
    expect(await pendingName('x'.repeat(300), 'eth0')).toMatch(/^h-[0-9a-f]{64}\.json$/);
    expect(await pendingName('../etc', 'eth0')).toMatch(/^h-/);
  });

  it('keeps the newest DEL of an attachment and never removes a newer one', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'tartan-pending-'));
    dirs.push(parent);
    const dir = join(parent, 'q');
    await queueDel(dir, req('c1', '{"a":1}'));
    const [first] = listPending(dir);
    expect(first?.req?.stdin).toBe('{"a":1}');
    await queueDel(dir, req('c1', '{"a":2}')); // replaces the file: a new inode
    removePending(first!);
    const left = listPending(dir);
    expect(left.map((p) => p.req?.stdin)).toEqual(['{"a":2}']);
    removePending(left[0]!);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('lists unreadable entries (to be dropped) and ignores temporary files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tartan-pending-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'bad@eth0.json'), 'not json');
    writeFileSync(join(dir, '.x@eth0.json.1.tmp'), '{}');
    const l = listPending(dir);
    expect(l.length).toBe(1);
    expect(l[0]!.req).toBeUndefined();
  });
});
