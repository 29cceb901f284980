// The errno values netlink, setns, open and /proc/sys writes answer with (asm-generic
// numbering, used by x86-64 and arm64), named and worded as glibc's strerror() does, so a
// failure reads the same as iproute2's "RTNETLINK answers: File exists".

const TABLE: Record<number, [string, string]> = {
  1: ['EPERM', 'Operation not permitted'],
  2: ['ENOENT', 'No such file or directory'],
  3: ['ESRCH', 'No such process'],
  4: ['EINTR', 'Interrupted system call'],
  5: ['EIO', 'Input/output error'],
  6: ['ENXIO', 'No such device or address'],
  7: ['E2BIG', 'Argument list too long'],
  9: ['EBADF', 'Bad file descriptor'],
  11: ['EAGAIN', 'Resource temporarily unavailable'],
  12: ['ENOMEM', 'Cannot allocate memory'],
  13: ['EACCES', 'Permission denied'],
  14: ['EFAULT', 'Bad address'],
  16: ['EBUSY', 'Device or resource busy'],
  17: ['EEXIST', 'File exists'],
  19: ['ENODEV', 'No such device'],
  20: ['ENOTDIR', 'Not a directory'],
  22: ['EINVAL', 'Invalid argument'],
  23: ['ENFILE', 'Too many open files in system'],
  24: ['EMFILE', 'Too many open files'],
  28: ['ENOSPC', 'No space left on device'],
  30: ['EROFS', 'Read-only file system'],
  34: ['ERANGE', 'Numerical result out of range'],
  36: ['ENAMETOOLONG', 'File name too long'],
  38: ['ENOSYS', 'Function not implemented'],
  39: ['ENOTEMPTY', 'Directory not empty'],
  40: ['ELOOP', 'Too many levels of symbolic links'],
  61: ['ENODATA', 'No data available'],
  71: ['EPROTO', 'Protocol error'],
  88: ['ENOTSOCK', 'Socket operation on non-socket'],
  90: ['EMSGSIZE', 'Message too long'],
  93: ['EPROTONOSUPPORT', 'Protocol not supported'],
  95: ['EOPNOTSUPP', 'Operation not supported'],
  97: ['EAFNOSUPPORT', 'Address family not supported by protocol'],
  98: ['EADDRINUSE', 'Address already in use'],
  99: ['EADDRNOTAVAIL', 'Cannot assign requested address'],
  100: ['ENETDOWN', 'Network is down'],
  101: ['ENETUNREACH', 'Network is unreachable'],
  105: ['ENOBUFS', 'No buffer space available'],
  107: ['ENOTCONN', 'Transport endpoint is not connected'],
  110: ['ETIMEDOUT', 'Connection timed out'],
  113: ['EHOSTUNREACH', 'No route to host'],
  114: ['EALREADY', 'Operation already in progress'],
  115: ['EINPROGRESS', 'Operation now in progress'],
};

export const EINTR = 4;
export const ENODEV = 19;

export function errnoName(errno: number): string {
  return TABLE[errno]?.[0] ?? `errno ${errno}`;
}

export function errnoText(errno: number): string {
  return TABLE[errno]?.[1] ?? `Unknown error ${errno}`;
}

/** A failed system call or a kernel refusal of a netlink request. */
export class SysError extends Error {
  constructor(
    readonly errno: number,
    readonly extack?: string,
    context?: string,
  ) {
    const reason = `${errnoText(errno)} (${errnoName(errno)})`;
    const detail = extack ? `: ${extack.replace(/\.$/, '')}` : '';
    super(`${context ? `${context}: ` : ''}${reason}${detail}`);
    this.name = 'SysError';
  }
}
