// DELs that arrived while the agent was down. The shim writes one file per (container,
// interface) and reports success, because a runtime that sees DEL fail retries it forever
// and keeps the pod sandbox (and kubelet keeps the pod Terminating) until it succeeds;
// the agent replays the queue before it becomes ready, and periodically. Node builtins only:
// the shim loads this on the agent-down path.
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { WireRequest } from './wire.js';

export const pendingDir = (stateDir: string) => join(stateDir, 'pending-del');

// Names of this shape hold no "@", so "<id>@<ifname>" names exactly one attachment; any
// other (a DEL may carry an interface name such as "eth0@1", src/cni/protocol.ts) gets the
// digest name.
const SAFE_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** The queue file's name for an attachment; a digest when the id is too long for a name. */
export async function pendingName(containerId: string, ifname: string): Promise<string> {
  const readable = `${containerId}@${ifname}`;
  if (SAFE_RE.test(containerId) && SAFE_RE.test(ifname) && readable.length <= 200)
    return `${readable}.json`;
  // Loaded only here: the shim's start-up pays for each builtin it evaluates.
  const { createHash } = await import('node:crypto');
  return `h-${createHash('sha256').update(`${containerId}/${ifname}`).digest('hex')}.json`;
}

/**
 * Writes the request atomically (temporary file, fsync, rename, fsync of the directory):
 * after a crash or power loss the queue holds either the whole request or nothing, and a
 * DEL reported successful must survive, or the pod's addresses would leak.
 */
export async function queueDel(dir: string, req: WireRequest): Promise<string> {
  const containerId = req.env.CNI_CONTAINERID ?? '';
  const ifname = req.env.CNI_IFNAME ?? '';
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const name = await pendingName(containerId, ifname);
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify({ ...req, queued: new Date().toISOString() }));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const file = join(dir, name);
  renameSync(tmp, file);
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
  return file;
}

export interface PendingDel {
  file: string;
  /** Inode at read time: a newer DEL for the same attachment replaces the file (new inode). */
  ino: number;
  req: WireRequest | undefined;
}

export function listPending(dir: string): PendingDel[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json') && !n.startsWith('.'));
  } catch {
    return [];
  }
  const out: PendingDel[] = [];
  for (const n of names.sort()) {
    const file = join(dir, n);
    try {
      const ino = statSync(file).ino;
      let req: WireRequest | undefined;
      try {
        req = JSON.parse(readFileSync(file, 'utf8')) as WireRequest;
      } catch {
        req = undefined;
      }
      out.push({ file, ino, req });
    } catch {
      // Removed meanwhile (another drain pass): nothing to do.
    }
  }
  return out;
}

/** Whether the entry is still queued as read (not replayed, nor replaced, meanwhile). */
export function stillPending(p: PendingDel): boolean {
  try {
    return statSync(p.file).ino === p.ino;
  } catch {
    return false;
  }
}

/** Removes a replayed entry unless a newer DEL replaced it since it was read. */
export function removePending(p: PendingDel): void {
  try {
    if (statSync(p.file).ino === p.ino) unlinkSync(p.file);
  } catch {
    // Already gone.
  }
}
