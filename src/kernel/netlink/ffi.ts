// libc for the netlink driver: a few calls, a NETLINK_ROUTE socket, and the switch of the
// calling thread's network namespace. Under Bun (the CNI executable) through bun:ffi, under
// Node (the node agent) through koffi (libc-node.ts). Every call here is synchronous on the
// JS thread, and setns() moves only that thread, so a switch is undone before any other JS
// runs (no await in between). The runtime's own threads never leave the process's netns.
import { EINTR, SysError } from './errno.js';
import { NLMSG_DONE, NLMSG_ERROR } from './constants.js';
import { parseDone, parseError, parseMessages, setSeq, type NlMessage } from './message.js';

// Held in a variable so that no bundler tries to resolve it: the module loads only under Bun.
const BUN_FFI = 'bun:ffi';

type Fn = (...args: unknown[]) => unknown;
interface FfiModule {
  dlopen(
    path: string,
    defs: Record<string, { args: string[]; returns: string }>,
  ): {
    symbols: Record<string, Fn>;
  };
  read: { i32(ptr: unknown, offset: number): number };
}

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0x80000;
const NETLINK_ROUTE = 0;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const O_RDONLY = 0;
const O_WRONLY = 1;
const O_CLOEXEC = 0x80000;
const CLONE_NEWNET = 0x40000000;
const EAGAIN = 11;
const EINVAL = 22;
const EMSGSIZE = 90;
const MSG_TRUNC = 0x20;

export interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  setsockopt(fd: number, level: number, name: number, val: Uint8Array, len: number): number;
  send(fd: number, buf: Uint8Array, len: number, flags: number): number;
  recv(fd: number, buf: Uint8Array, len: number, flags: number): number;
  open(path: Uint8Array, flags: number): number;
  write(fd: number, buf: Uint8Array, len: number): number;
  close(fd: number): number;
  setns(fd: number, nstype: number): number;
  errno(): number;
  /** _exit(2): ends the process without running exit handlers (see src/bin/tartan.ts). */
  exit(code: number): void;
  /**
   * send(2) on a thread of its own, for requests the kernel may take tens of milliseconds to
   * answer (a link deletion waits for an RCU grace period): a long-lived process keeps
   * serving meanwhile. Absent where calls cannot leave the JS thread (bun:ffi). -1 on
   * failure, with the errno left on the worker thread.
   */
  sendAsync?(fd: number, buf: Uint8Array, len: number, flags: number): Promise<number>;
}

let libc: Promise<Libc> | undefined;

/** libc through bun:ffi or koffi, loaded once per process. */
export function loadLibc(): Promise<Libc> {
  libc ??= (async () => {
    if (!process.versions.bun) return (await import('./libc-node.js')).loadNodeLibc();
    const ffi = (await import(BUN_FFI)) as FfiModule;
    const i = 'i32';
    const { symbols: s } = ffi.dlopen('libc.so.6', {
      socket: { args: [i, i, i], returns: i },
      setsockopt: { args: [i, i, i, 'ptr', 'u32'], returns: i },
      send: { args: [i, 'ptr', 'u64', i], returns: 'i64_fast' },
      recv: { args: [i, 'ptr', 'u64', i], returns: 'i64_fast' },
      open: { args: ['ptr', i], returns: i },
      write: { args: [i, 'ptr', 'u64'], returns: 'i64_fast' },
      close: { args: [i], returns: i },
      setns: { args: [i, i], returns: i },
      __errno_location: { args: [], returns: 'ptr' },
      _exit: { args: [i], returns: 'void' },
    });
    const call = (name: string) => s[name] as (...a: unknown[]) => number;
    const errnoLocation = s['__errno_location'] as () => unknown;
    return {
      socket: call('socket'),
      setsockopt: call('setsockopt'),
      send: call('send'),
      recv: call('recv'),
      open: call('open'),
      write: call('write'),
      close: call('close'),
      setns: call('setns'),
      errno: () => ffi.read.i32(errnoLocation(), 0),
      exit: call('_exit'),
    };
  })();
  return libc;
}

const utf8 = new TextEncoder();
const cstr = (s: string): Uint8Array => utf8.encode(`${s}\0`);
const ONE = new Uint8Array([1, 0, 0, 0]);
/** struct timeval of 5 s (two 64-bit fields). */
const RCV_TIMEOUT = new Uint8Array([5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

function check(c: Libc, r: number, context: string): number {
  if (r < 0) throw new SysError(c.errno(), undefined, context);
  return r;
}

/** open(2) with O_CLOEXEC; errors name the path (or the context given). */
export function openPath(c: Libc, path: string, opts: { write?: boolean; what?: string } = {}) {
  const flags = (opts.write ? O_WRONLY : O_RDONLY) | O_CLOEXEC;
  return check(c, c.open(cstr(path), flags), opts.what ?? path);
}

export function writeAll(c: Libc, fd: number, data: Uint8Array, context: string): void {
  const n = check(c, c.write(fd, data, data.length), context);
  if (n !== data.length) throw new Error(`${context}: short write (${n} of ${data.length})`);
}

let stranded = false;

/** Whether a switch back to the original netns ever failed (see inNetns). */
export const isStranded = (): boolean => stranded;

/**
 * Runs fn with the calling thread inside the netns behind nsFd (named `what` in errors),
 * and always moves it back, to `home` (an fd of the thread's own netns, opened here when
 * not given). fn must be synchronous. If moving back ever failed, the thread would act in
 * the wrong namespace from then on, so every later switch is refused.
 */
export function inNetns<T>(c: Libc, nsFd: number, what: string, fn: () => T, home?: number): T {
  if (stranded) throw new Error('netns switch refused: an earlier switch could not be undone');
  const back = home ?? openHome(c);
  try {
    if (c.setns(nsFd, CLONE_NEWNET) !== 0) {
      const e = c.errno();
      const context = e === EINVAL ? `${what} is not a network namespace` : `cannot enter ${what}`;
      throw new SysError(e, undefined, context);
    }
    try {
      return fn();
    } finally {
      if (c.setns(back, CLONE_NEWNET) !== 0) {
        stranded = true;
        // Not recoverable here; whoever catches must not go on with kernel work.
        // eslint-disable-next-line no-unsafe-finally
        throw new SysError(c.errno(), undefined, 'setns back to the original netns');
      }
    }
  } finally {
    if (home === undefined) c.close(back);
  }
}

/** An fd of the calling thread's current netns (setns() moves threads, not processes). */
export const openHome = (c: Libc): number => openPath(c, '/proc/thread-self/ns/net');

/** 'ack' waits for the NLMSG_ERROR ack, 'get' for the single reply, 'dump' for NLMSG_DONE. */
type Mode = 'ack' | 'get' | 'dump';

/** A NETLINK_ROUTE socket; it stays bound to the netns it was created in. */
export class NetlinkSocket {
  private seq = Date.now() >>> 0;
  private readonly rx = new Uint8Array(1 << 16);

  private constructor(
    private readonly c: Libc,
    readonly fd: number,
  ) {}

  static open(c: Libc): NetlinkSocket {
    const fd = check(c, c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), 'socket');
    // Errors name the offending attribute in words, and acks do not echo the request. Both
    // are niceties (kernels since 4.12 have them), so their failure is ignored.
    c.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, ONE, 4);
    c.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, ONE, 4);
    // The kernel answers rtnetlink synchronously; the timeout only guards against a hang.
    c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, RCV_TIMEOUT, RCV_TIMEOUT.length);
    // No bind(): the first send binds the socket to a port id of the kernel's choice.
    return new NetlinkSocket(c, fd);
  }

  /**
   * Sends one request and collects the answer: 'ack' waits for the NLMSG_ERROR ack, 'get'
   * for the single reply, 'dump' for NLMSG_DONE. A kernel error throws a SysError carrying
   * the errno and the extended ack message.
   */
  transact(msg: Uint8Array, mode: Mode): NlMessage[] {
    const seq = this.stamp(msg);
    check(this.c, this.c.send(this.fd, msg, msg.length, 0), 'netlink send');
    return this.answer(seq, mode);
  }

  /**
   * transact() for a request the kernel may hold for long (see Libc.sendAsync): the send
   * runs off the JS thread where the runtime can, and the answer is waiting once it returns
   * (rtnetlink handles a request inside the sender's send).
   */
  async transactSlow(msg: Uint8Array, mode: Mode): Promise<NlMessage[]> {
    if (!this.c.sendAsync) return this.transact(msg, mode);
    const seq = this.stamp(msg);
    // A failed send delivered nothing: sent again here, it either goes through (EINTR) or
    // fails with an errno this thread can read.
    if ((await this.c.sendAsync(this.fd, msg, msg.length, 0)) < 0)
      check(this.c, this.c.send(this.fd, msg, msg.length, 0), 'netlink send');
    return this.answer(seq, mode);
  }

  private stamp(msg: Uint8Array): number {
    const seq = (this.seq = (this.seq + 1) >>> 0);
    setSeq(msg, seq);
    return seq;
  }

  private answer(seq: number, mode: Mode): NlMessage[] {
    const out: NlMessage[] = [];
    for (;;) {
      // MSG_TRUNC: the datagram's whole length, so a reply cut short by the buffer is an
      // error that says so, not a parse that finds nothing and waits for the timeout.
      const n = this.c.recv(this.fd, this.rx, this.rx.length, MSG_TRUNC);
      if (n < 0) {
        const e = this.c.errno();
        if (e === EINTR) continue;
        throw new SysError(e, undefined, e === EAGAIN ? 'no answer from the kernel' : 'recv');
      }
      if (n > this.rx.length)
        throw new SysError(
          EMSGSIZE,
          undefined,
          `netlink reply of ${n} bytes is larger than the ${this.rx.length}-byte buffer`,
        );
      for (const m of parseMessages(this.rx.slice(0, n))) {
        if (m.seq !== seq) continue;
        if (m.type === NLMSG_ERROR) {
          const { errno, extack } = parseError(m);
          if (errno !== 0) throw new SysError(errno, extack);
          return out;
        }
        if (m.type === NLMSG_DONE) {
          const { errno, extack } = parseDone(m);
          if (errno !== 0) throw new SysError(errno, extack);
          return out;
        }
        out.push(m);
        if (mode === 'get') return out;
      }
    }
  }

  close(): void {
    this.c.close(this.fd);
  }
}
