// The kernel resources of one run() call: a netlink socket per namespace (made inside it,
// then usable from here), netns fds for IFLA_NET_NS_FD and setns, and the name -> ifindex
// answers seen so far. Everything is closed by close(), whatever happened.
import { ENODEV, SysError } from './errno.js';
import { getLinkByName } from './encode-links.js';
import {
  inNetns,
  isStranded,
  NetlinkSocket,
  openHome,
  openPath,
  writeAll,
  type Libc,
} from './ffi.js';
import { readI32 } from './message.js';
import type { Op, Target } from '../types.js';

const utf8 = new TextEncoder();

/** A socket in one namespace, with the ifindexes it has looked up. */
export class Conn {
  private readonly names = new Map<string, number>();

  constructor(readonly sock: NetlinkSocket) {}

  ifindex(name: string): number {
    const known = this.names.get(name);
    if (known !== undefined) return known;
    let index: number;
    try {
      const [m] = this.sock.transact(getLinkByName(name), 'get');
      if (!m || m.body.length < 16) throw new Error(`no answer for link ${name}`);
      index = readI32(m.body, 4);
    } catch (e) {
      // iproute2's wording, which callers and people already know.
      if (e instanceof SysError && e.errno === ENODEV)
        throw new Error(`Cannot find device "${name}"`, { cause: e });
      throw e;
    }
    this.names.set(name, index);
    return index;
  }

  /** The name no longer means the same link here (deleted, renamed or moved away). */
  forget(name: string): void {
    this.names.delete(name);
  }
}

export class Session {
  private readonly conns = new Map<string, Conn>();
  private readonly fds = new Map<string, number>();
  /** The thread's own netns, to come back to after each switch. */
  private home: number | undefined;
  /** /proc/sys files opened ahead by prepare(), by netns path and key. */
  private readonly sysctlFds = new Map<string, number>();

  constructor(readonly c: Libc) {}

  nsFd(path: string): number {
    let fd = this.fds.get(path);
    if (fd === undefined) {
      fd = openPath(this.c, path, { what: `cannot open netns ${path}` });
      this.fds.set(path, fd);
    }
    return fd;
  }

  /** Runs fn inside the target's namespace (in place for the host). */
  private within<T>(t: Target, fn: () => T): T {
    if (t.ns === undefined) return fn();
    const nsFd = this.nsFd(t.ns);
    this.home ??= openHome(this.c);
    return inNetns(this.c, nsFd, `netns ${t.ns}`, fn, this.home);
  }

  conn(t: Target): Conn {
    const key = t.ns ?? '';
    let conn = this.conns.get(key);
    if (!conn) {
      conn = new Conn(this.within(t, () => NetlinkSocket.open(this.c)));
      this.conns.set(key, conn);
    }
    return conn;
  }

  /**
   * Enters a step's netns once for what the step needs from inside: its socket, and the
   * /proc/sys files of the sysctls that lead the step (opening them changes nothing; they
   * are written in op order; later ones may name links the step creates, so they wait).
   * A failure here is left for the op itself to meet and report.
   */
  prepare(t: Target, ops: Op[]): void {
    const ns = t.ns;
    if (ns === undefined) return;
    const lead: string[] = [];
    for (const o of ops) {
      if (o.op !== 'sysctl') break;
      lead.push(o.key);
    }
    const socket = lead.length < ops.length && !this.conns.has(ns);
    if (lead.length === 0 && !socket) return;
    try {
      this.within(t, () => {
        if (socket) this.conns.set(ns, new Conn(NetlinkSocket.open(this.c)));
        for (const key of lead) {
          const k = `${ns}\0${key}`;
          if (!this.sysctlFds.has(k))
            this.sysctlFds.set(k, openPath(this.c, `/proc/sys/${key}`, { write: true }));
        }
      });
    } catch (e) {
      // Reported by the op that needs what could not be had; but a thread stuck in the
      // wrong netns must stop everything.
      if (isStranded()) throw e;
    }
  }

  /** /proc/sys/net files belong to the netns of whoever opens them: open inside, write here. */
  sysctl(t: Target, key: string, value: string): void {
    const path = `/proc/sys/${key}`;
    const k = `${t.ns ?? ''}\0${key}`;
    let fd = this.sysctlFds.get(k);
    this.sysctlFds.delete(k);
    fd ??= this.within(t, () => openPath(this.c, path, { write: true }));
    try {
      // What `echo value > file` writes.
      writeAll(this.c, fd, utf8.encode(`${value}\n`), path);
    } finally {
      this.c.close(fd);
    }
  }

  close(): void {
    for (const conn of this.conns.values()) conn.sock.close();
    for (const fd of this.fds.values()) this.c.close(fd);
    for (const fd of this.sysctlFds.values()) this.c.close(fd);
    if (this.home !== undefined) this.c.close(this.home);
    this.conns.clear();
    this.fds.clear();
    this.sysctlFds.clear();
    this.home = undefined;
  }
}
