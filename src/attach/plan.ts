// Which interfaces a pod gets, in which order and under which names: the default network
// first as CNI_IFNAME, then the requests, named as asked or net1, net2, ...
import { isUnicastMac, type InterfaceRequest } from '../cni/config.js';
import { TartanError } from '../cni/errors.js';
import type { CniResult } from '../cni/spec.js';
import type { Ipam } from '../ipam/index.js';
import type { Kernel } from '../kernel/types.js';
import { policyRoutesProblem } from '../network/policy-routes.js';
import type { Network } from '../network/schema.js';
import type { HostState } from './host-state.js';

export interface Deps {
  kernel: Kernel;
  ipam: Ipam;
  state: HostState;
  node: string;
  network(name: string): Network | undefined;
}

export interface AttachRequest {
  containerId: string;
  ifname: string; // CNI_IFNAME
  netns: string;
  cniVersion: string;
  cniArgs: string | undefined;
  cniPath: string[];
  runtimeConfig: Record<string, unknown> | undefined;
  defaultNetwork: string | undefined;
  requests: InterfaceRequest[];
  prevResult: CniResult | undefined;
  /** The name of the runtime's network configuration: GC concerns one network's attachments. */
  cniNetwork?: string | undefined;
}

/**
 * The `ips` and `mac` capabilities (CNI conventions): the runtime's per-pod addresses and
 * MAC apply to the pod's first interface unless its request says otherwise.
 */
export function runtimeOverrides(
  rc: Record<string, unknown> | undefined,
): Partial<InterfaceRequest> {
  const out: Partial<InterfaceRequest> = {};
  const ips = Array.isArray(rc?.ips)
    ? (rc.ips as unknown[]).filter((x): x is string => typeof x === 'string')
    : [];
  const v4 = ips.find((x) => !x.includes(':'));
  const v6 = ips.find((x) => x.includes(':'));
  if (v4) out.ip = v4;
  if (v6) out.ip6 = v6;
  if (rc?.mac !== undefined) {
    if (typeof rc.mac !== 'string' || !isUnicastMac(rc.mac))
      throw new TartanError(
        'ERR_IFACE_REQUEST',
        `runtimeConfig.mac ${JSON.stringify(rc.mac)} is not a unicast MAC address`,
      );
    out.mac = rc.mac;
  }
  return out;
}

export interface PlannedInterface {
  ifname: string;
  net: Network;
  req: InterfaceRequest;
  defaultRoute: boolean;
}

/** Orders the pod's interfaces: the default network first (as CNI_IFNAME), then requests. */
export function planInterfaces(deps: Pick<Deps, 'network'>, r: AttachRequest): PlannedInterface[] {
  const reqs: InterfaceRequest[] = [];
  const prevNames = new Set(
    (r.prevResult?.interfaces ?? []).filter((i) => i.sandbox).map((i) => i.name),
  );
  if (r.defaultNetwork && !prevNames.has(r.ifname))
    reqs.push({ network: r.defaultNetwork, ifname: r.ifname });
  reqs.push(...r.requests);
  if (reqs.length === 0)
    throw new TartanError(
      'ERR_IFACE_REQUEST',
      'no interfaces requested and no defaultNetwork configured',
    );
  const used = new Set<string>(prevNames);
  for (const q of reqs)
    if (q.ifname) {
      if (used.has(q.ifname))
        throw new TartanError('ERR_IFACE_REQUEST', `interface name ${q.ifname} requested twice`);
      used.add(q.ifname);
    }
  let n = 1;
  const nextName = (first: boolean) => {
    if (first && !used.has(r.ifname)) return (used.add(r.ifname), r.ifname);
    while (used.has(`net${n}`)) n++;
    used.add(`net${n}`);
    return `net${n}`;
  };
  const explicitDefault = reqs.some((q) => q.defaultRoute);
  const first = runtimeOverrides(r.runtimeConfig);
  if (reqs[0] && Object.keys(first).length > 0) reqs[0] = { ...first, ...reqs[0] };
  const tables = new Map<number, string>();
  return reqs.map((q, i) => {
    const net = deps.network(q.network);
    if (!net) throw new TartanError('ERR_UNKNOWN_NETWORK', `unknown network ${q.network}`);
    const ifname = q.ifname ?? nextName(i === 0);
    const routes = policyRoutesProblem(net.spec, q.policyRoutes ?? []);
    if (routes)
      throw new TartanError(
        'ERR_IFACE_REQUEST',
        `interface ${ifname} (network ${net.metadata.name}): ${routes}`,
      );
    const table = net.spec.routingTable;
    if (table !== undefined && usesTable(net, q)) {
      // One table per attachment: a second interface's routes would replace the first's in
      // it, while both `from` rules still point there.
      const other = tables.get(table);
      if (other)
        throw new TartanError(
          'ERR_IFACE_REQUEST',
          `interfaces ${other} and ${ifname} (network ${net.metadata.name}) would share routing table ${table}`,
        );
      tables.set(table, `${ifname} (network ${net.metadata.name})`);
    }
    const defaultRoute = explicitDefault
      ? q.defaultRoute === true
      : i === 0 && prevNames.size === 0;
    return { ifname, net, req: q, defaultRoute };
  });
}

/** Whether the interface gets an address, and so a rule and routes in the network's table. */
function usesTable(net: Network, q: InterfaceRequest): boolean {
  const { type, ipv4, ipv6 } = net.spec;
  return type !== 'delegate' && ((!!ipv4 && q.ip !== 'none') || (!!ipv6 && q.ip6 !== 'none'));
}
