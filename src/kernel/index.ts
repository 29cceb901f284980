// The kernel driver of this process. The Bun-built CNI executable speaks rtnetlink itself
// (bun:ffi): no iproute2 process per pod. Node programs (agent, lab, tartanctl) have no
// FFI and drive iproute2. Both mean the same by every op (test/kernel/netlink.test.ts).
import { createKernel } from './iproute.js';
import type { Kernel } from './types.js';

export async function createProcessKernel(): Promise<Kernel> {
  if (!process.versions.bun) return createKernel();
  const { createNetlinkKernel } = await import('./netlink/index.js');
  return createNetlinkKernel();
}
