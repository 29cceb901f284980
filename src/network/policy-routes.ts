// A pod's policy routes against its network: shared by the CNI core (attach/plan.ts) and
// the admission webhook (k8s/resolve.ts), so a pod is refused the same way at either.
import type { InterfaceRequest } from '../cni/config.js';
import { alignDown, parseCidr, parseIp, type Family } from '../ipam/ip.js';
import { nextHopProblemIn } from '../ipam/range.js';
import type { NetworkSpec } from './schema.js';

/**
 * What is wrong with a pod's policy routes on a network, if anything. They go into the
 * network's routing table, next to the routes of the family they belong to: without a
 * table, or without a range of that family, they would have nowhere to go, so the request
 * is refused rather than quietly cut short; so is a next hop the kernel would refuse.
 */
export function policyRoutesProblem(
  spec: NetworkSpec,
  routes: NonNullable<InterfaceRequest['policyRoutes']>,
): string | undefined {
  if (routes.length > 0 && spec.routingTable === undefined)
    return 'policyRoutes need a network with a routingTable';
  for (const [i, r] of routes.entries()) {
    const family: Family = r.dst.includes(':') ? 6 : 4;
    const dst = parseCidr(r.dst, family);
    if (!dst) return `policyRoutes[${i}].dst "${r.dst}" is not a CIDR`;
    const [addr, len] = dst;
    if (alignDown(addr, family, len) !== addr)
      return `policyRoutes[${i}].dst "${r.dst}" has host bits set`;
    const gw = r.gw === undefined ? undefined : parseIp(r.gw, family);
    if (r.gw !== undefined && gw === undefined)
      return `policyRoutes[${i}].gw "${r.gw}" is not an IPv${family} address`;
    const range = family === 4 ? spec.ipv4 : spec.ipv6;
    if (!range)
      return `policyRoutes[${i}] is IPv${family}, and the network has no IPv${family} range`;
    const problem = gw === undefined ? undefined : nextHopProblemIn(range.cidr, family, gw);
    if (problem) return `policyRoutes[${i}].gw ${r.gw} ${problem}`;
  }
  return undefined;
}
