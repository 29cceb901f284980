// The kernel driver of this process. The Bun-built CNI executable speaks rtnetlink itself
// (bun:ffi): no iproute2 process per pod. Node programs (agent, lab, tartanctl) have no
// FFI and drive iproute2. Both mean the same by every op (test/kernel/netlink.test.ts).
import { mark } from '../cni/trace.js';
import { createKernel } from './iproute.js';
import type { Kernel } from './types.js';

export async function createProcessKernel(): Promise<Kernel> {
  if (!process.versions.bun) return createKernel();
  const [{ createNetlinkKernel }, { loadLibc }] = await Promise.all([
    import('./netlink/index.js'),
    import('./netlink/ffi.js'),
  ]);
  try {
    await loadLibc();
  } catch (e) {
    // FFI can be unavailable (a JIT-less JavaScriptCore, a libc other than glibc): slower
    // through iproute2, but the pod still gets its interfaces.
    mark(`kernel driver iproute2 (bun:ffi unavailable: ${(e as Error).message})`);
    return createKernel();
  }
  mark('kernel driver netlink');
  return createNetlinkKernel();
}
