// Tartan's side of the client tests: network definition files, the plugin's conflist entry,
// and read-only views of its node state (attachment records) and IPAM store.
// Both are SQLite files (src/attach/host-state.ts: table state; src/store/file.ts: table kv)
// holding JSON values; we read them with better-sqlite3, opened read-only.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { stringify } from 'yaml';

export interface NetworkDef {
  name: string;
  type: 'macvlan' | 'ipvlan' | 'bridge';
  device?: string;
  mode?: string;
  bridge?: string;
  ipv4?: { cidr: string; pools?: { start: string; end: string }[]; gateway?: string };
}

/** Writes one ClusterNetwork YAML file per network into `dir`. */
export function writeNetworks(dir: string, nets: NetworkDef[]): string {
  mkdirSync(dir, { recursive: true });
  for (const n of nets) {
    const { name, ...spec } = n;
    writeFileSync(
      join(dir, `${name}.yaml`),
      stringify({
        apiVersion: 'tartan.io/v1alpha1',
        kind: 'ClusterNetwork',
        metadata: { name },
        spec,
      }),
    );
  }
  return dir;
}

export interface TartanInterface {
  network: string;
  ifname?: string;
  ip?: string;
}

export interface TartanEnv {
  networksDir: string;
  storePath: string;
  stateDir: string;
  logFile: string;
}

/** A fresh Tartan environment (networks dir, file store, state dir, log) under `dir`. */
export function tartanEnv(dir: string): TartanEnv {
  return {
    networksDir: join(dir, 'networks'),
    storePath: join(dir, 'ipam.db'),
    stateDir: join(dir, 'state'),
    logFile: join(dir, 'tartan.log'),
  };
}

/** The `tartan` entry of a conflist (see src/cni/config.ts). */
export function tartanPlugin(
  env: TartanEnv,
  interfaces: TartanInterface[],
  extra: Record<string, unknown> = {},
) {
  return {
    type: 'tartan',
    networksDir: env.networksDir,
    store: { type: 'file', path: env.storePath },
    stateDir: env.stateDir,
    nodeName: 'node1',
    logFile: env.logFile,
    logLevel: 'debug',
    interfaces,
    ...extra,
  };
}

interface Db {
  prepare(sql: string): { all(...p: unknown[]): Record<string, unknown>[] };
  close(): void;
}
type DbCtor = new (path: string, opts?: Record<string, unknown>) => Db;

function openRo(path: string): Db | undefined {
  if (!existsSync(path)) return undefined;
  const Database = createRequire(import.meta.url)('better-sqlite3') as DbCtor;
  return new Database(path, { readonly: true, fileMustExist: true });
}

export interface AttachmentView {
  containerId: string;
  ifname: string;
  netns: string;
  interfaces: { ifname: string; network: string; allocations: { address: string }[] }[];
}

/** Tartan's attachment records (keys att/<containerId>/<ifname> in <stateDir>/state.db). */
export function readAttachments(stateDir: string): AttachmentView[] {
  const db = openRo(join(stateDir, 'state.db'));
  if (!db) return [];
  try {
    return db
      .prepare("SELECT value FROM state WHERE key >= 'att/' AND key < 'att/\uffff'")
      .all()
      .map((r) => JSON.parse(String(r.value)) as AttachmentView);
  } finally {
    db.close();
  }
}

export interface AllocationView {
  network: string;
  key: string;
  offset: string;
  handle: string | null;
}

/**
 * Every address recorded in the IPAM store. Found by shape, not by key layout (which may
 * change): any record under ipam/<network>/ with an `allocs` map of {handle, ...} entries.
 */
export function readAllocations(storePath: string): AllocationView[] {
  const db = openRo(storePath);
  if (!db) return [];
  try {
    const out: AllocationView[] = [];
    const rows = db
      .prepare("SELECT key, value FROM kv WHERE key >= 'ipam/' AND key < 'ipam/\uffff'")
      .all();
    for (const r of rows) {
      const key = String(r.key);
      let v: unknown;
      try {
        v = JSON.parse(String(r.value));
      } catch {
        continue;
      }
      const allocs = (v as { allocs?: unknown } | null)?.allocs;
      if (!allocs || typeof allocs !== 'object') continue;
      for (const [offset, a] of Object.entries(
        allocs as Record<string, { handle?: string | null }>,
      ))
        out.push({ network: key.split('/')[1] ?? '', key, offset, handle: a?.handle ?? null });
    }
    return out;
  } finally {
    db.close();
  }
}
