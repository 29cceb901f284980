// The kernel driver of this process: rtnetlink from the process itself, through bun:ffi in
// the Bun-built CNI executable and koffi in the Node agent, so no iproute2 process per pod.
// Where neither loads, iproute2. Both drivers mean the same by every op
// (test/kernel/netlink.test.ts). The lab and tartanctl drive iproute2 (createKernel).
import { mark } from '../cni/trace.js';
import { createKernel } from './iproute.js';
import type { Kernel } from './types.js';

/**
 * The netlink driver, or why this process cannot have it: under Bun, FFI needs the JIT and
 * glibc (a JIT-less JavaScriptCore or another libc has none); under Node, koffi and glibc.
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
  const k = await netlinkKernel();
  if (typeof k !== 'string') {
    mark('kernel driver netlink');
    return k;
  }
  // Slower through iproute2, but the pod still gets its interfaces.
  mark(`kernel driver iproute2 (FFI unavailable: ${k})`);
  return createKernel();
}
