// What the IPAM still holds for pods, read from a store's raw entries through the audit
// (src/ipam/audit.ts) rather than by picking record fields apart in each test.
import { auditIpam } from '../../src/ipam/audit.js';
import type { Entry } from '../../src/store/types.js';

/** "<network> <address> <handle>" of every address held for a pod (persistent claims aside). */
export function heldByPods(entries: readonly Entry[]): string[] {
  return auditIpam(entries)
    .held.filter((h) => h.handle !== null)
    .map((h) => `${h.network} ${h.address} ${h.handle}`);
}

/** Keys of the pointers a node keeps to addresses it borrowed from another node's block. */
export function borrowPointers(entries: readonly Entry[]): string[] {
  return entries.filter((e) => e.key.includes('/borrowed/')).map((e) => e.key);
}
