// libc for the netlink driver under Node (the node agent), through koffi: the same calls
// ffi.ts binds with bun:ffi, plus send(2) on koffi's worker threads for the requests that
// block for an RCU grace period (see Libc.sendAsync). Typed arrays are passed as pointers.
// docs/adr/0010-agent-netlink.md.
import type { Libc } from './ffi.js';

type Call = ((...a: unknown[]) => number) & {
  async(...a: [...unknown[], (err: unknown, res: number) => void]): void;
};

export async function loadNodeLibc(): Promise<Libc> {
  const koffi = (await import('koffi')).default;
  const lib = koffi.load('libc.so.6');
  const fn = (decl: string) => lib.func(decl) as unknown as Call;
  const socket = fn('int socket(int, int, int)');
  const setsockopt = fn('int setsockopt(int, int, int, const uint8_t *, uint32_t)');
  const send = fn('long send(int, const uint8_t *, unsigned long, int)');
  const recv = fn('long recv(int, uint8_t *, unsigned long, int)');
  const open = fn('int open(const uint8_t *, int)');
  const write = fn('long write(int, const uint8_t *, unsigned long)');
  const close = fn('int close(int)');
  const setns = fn('int setns(int, int)');
  const exit = fn('void _exit(int)');
  return {
    socket: (domain, type, protocol) => socket(domain, type, protocol),
    setsockopt: (fd, level, name, val, len) => setsockopt(fd, level, name, val, len),
    send: (fd, buf, len, flags) => send(fd, buf, len, flags),
    recv: (fd, buf, len, flags) => recv(fd, buf, len, flags),
    open: (path, flags) => open(path, flags),
    write: (fd, buf, len) => write(fd, buf, len),
    close: (fd) => close(fd),
    setns: (fd, nstype) => setns(fd, nstype),
    errno: () => koffi.errno(),
    exit: (code) => void exit(code),
    sendAsync: (fd, buf, len, flags) =>
      new Promise((resolve, reject) =>
        send.async(fd, buf, len, flags, (err: unknown, n: number) => {
          if (err) reject(err instanceof Error ? err : new Error(String(err)));
          else resolve(n);
        }),
      ),
  };
}
