// The kernel driver of this process. The Bun-built CNI executable speaks rtnetlink itself
// (bun:ffi): no iproute2 process per pod. Node programs (agent, lab, tartanctl) have no
// FFI and drive iproute2. Both mean the same by every op (test/kernel/netlink.test.ts).
import { mark } from '../cni/trace.js';
import { createKernel } from './iproute.js';
import type { Kernel } from './types.js';

/**
 * The netlink driver, or why this process cannot have it: FFI needs the Bun runtime with
 * its JIT and glibc (a JIT-less JavaScriptCore or another libc has none).
 */
export async function netlinkKernel(): Promise<Kernel | string> {
  try {
    const { loadLibc } = await import('./netlink/ffi.js');
    await loadLibc();
  } catch (e) {
    return (e as Error).message;
  }
  const { createNetlinkKernel } = await import('./netlink/index.js');
  return createNetlinkKernel();
}

export async function createProcessKernel(): Promise<Kernel> {
  if (!process.versions.bun) return createKernel();
  const k = await netlinkKernel();
  if (typeof k !== 'string') {
    mark('kernel driver netlink');
    return k;
  }
  // Slower through iproute2, but the pod still gets its interfaces.
  mark(`kernel driver iproute2 (bun:ffi unavailable: ${k})`);
  return createKernel();
}
