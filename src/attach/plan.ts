// Which interfaces a pod gets, in which order and under which names: the default network
// first as CNI_IFNAME, then the requests, named as asked or net1, net2, ...
import { isUnicastMac, MAX_INTERFACES, type InterfaceRequest } from '../cni/config.js';
import { TartanError } from '../cni/errors.js';
import type { CniResult } from '../cni/spec.js';
import type { Ipam } from '../ipam/index.js';
import { parseIp } from '../ipam/ip.js';
import { nextHopProblemIn } from '../ipam/range.js';
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
  const ips = rc?.ips ?? [];
  if (!Array.isArray(ips) || !ips.every((x) => typeof x === 'string'))
    throw new TartanError(
      'ERR_IFACE_REQUEST',
      `runtimeConfig.ips ${JSON.stringify(ips)} is not a list of addresses`,
    );
  const v4 = ips.filter((x) => !x.includes(':'));
  const v6 = ips.filter((x) => x.includes(':'));
  // The first interface has one address of each family: a second would be dropped.
  for (const [fam, xs] of [
    [4, v4],
    [6, v6],
  ] as const)
    if (xs.length > 1)
      throw new TartanError(
        'ERR_IFACE_REQUEST',
        `runtimeConfig.ips asks for ${xs.length} IPv${fam} addresses (${xs.join(', ')}); an interface has one`,
      );
  if (v4[0]) out.ip = v4[0];
  if (v6[0]) out.ip6 = v6[0];
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
  /**
   * The families whose default route this interface holds, each via the request's gateway
   * of that family (NPWG default-route) or else the network's.
   */
  defaultRoute: Family[];
}

type Family = 4 | 6;

/** Orders the pod's interfaces: the default network first (as CNI_IFNAME), then requests. */
export function planInterfaces(deps: Pick<Deps, 'network'>, r: AttachRequest): PlannedInterface[] {
  const reqs: InterfaceRequest[] = [];
  const prevNames = new Set(
    (r.prevResult?.interfaces ?? []).filter((i) => i.sandbox).map((i) => i.name),
  );
  if (r.defaultNetwork && !prevNames.has(r.ifname))
    reqs.push({ network: r.defaultNetwork, ifname: r.ifname });
  reqs.push(...r.requests);
  if (reqs.length > MAX_INTERFACES)
    throw new TartanError(
      'ERR_IFACE_REQUEST',
      `${reqs.length} interfaces requested; a pod has at most ${MAX_INTERFACES}`,
    );
  if (reqs.length === 0) {
    // Chained after the plugin that made the pod's interface, for a pod that asks for no
    // more: its result passes through (SPEC: a prevResult is passed through or modified).
    if (r.prevResult) return [];
    throw new TartanError(
      'ERR_IFACE_REQUEST',
      'no interfaces requested and no defaultNetwork configured',
    );
  }
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
  const first = runtimeOverrides(r.runtimeConfig);
  if (reqs[0] && Object.keys(first).length > 0) reqs[0] = { ...first, ...reqs[0] };
  const tables = new Map<number, string>();
  const planned = reqs.map((q, i) => {
    const net = deps.network(q.network);
    if (!net) throw new TartanError('ERR_UNKNOWN_NETWORK', `unknown network ${q.network}`);
    const ifname = q.ifname ?? nextName(i === 0);
    const ignored = ignoredField(net, q);
    if (ignored)
      throw new TartanError(
        'ERR_IFACE_REQUEST',
        `interface ${ifname} (network ${net.metadata.name}): ${ignored}`,
      );
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
    const gateways = defaultGatewaysProblem(net, q);
    if (gateways)
      throw new TartanError(
        'ERR_IFACE_REQUEST',
        `interface ${ifname} (network ${net.metadata.name}): ${gateways}`,
      );
    return { ifname, net, req: q, defaultRoute: [] as Family[] };
  });
  // One claim is one address, and one MAC one link: two interfaces would share them.
  for (const [what, of] of [
    ['claim', (p: PlannedInterface) => p.req.claim && `${p.net.metadata.name} ${p.req.claim}`],
    ['MAC', (p: PlannedInterface) => p.req.mac?.toLowerCase()],
  ] as const) {
    const seen = new Map<string, string>();
    for (const p of planned) {
      const key = of(p);
      if (!key) continue;
      const other = seen.get(key);
      if (other)
        throw new TartanError(
          'ERR_IFACE_REQUEST',
          `interfaces ${other} and ${p.ifname} ask for the same ${what} ${what === 'MAC' ? key : p.req.claim}`,
        );
      seen.set(key, p.ifname);
    }
  }
  // Per family: the interface that asks for it holds it, else the pod's first interface
  // (a dual-stack eth0 keeps its IPv4 default when net1 asks for the IPv6 one). A delegated
  // network that asks (its family unknown here) keeps the first interface from holding one.
  const delegateAsks = planned.some((p) => p.req.defaultRoute && p.net.spec.type === 'delegate');
  for (const fam of [4, 6] as const) {
    const asking = planned.filter((p) => p.req.defaultRoute && canRoute(p, fam));
    if (asking.length > 1)
      throw new TartanError(
        'ERR_IFACE_REQUEST',
        `interfaces ${asking.map((p) => p.ifname).join(' and ')} both ask for the IPv${fam} default route`,
      );
    const holder = asking[0] ?? (prevNames.size === 0 && !delegateAsks ? planned[0] : undefined);
    if (holder && canRoute(holder, fam)) holder.defaultRoute.push(fam);
  }
  // A delegated network's routes are its plugins' (as before: its request's default route
  // is theirs to honour, not refused here).
  for (const p of planned)
    if (p.req.defaultRoute && p.defaultRoute.length === 0 && p.net.spec.type !== 'delegate')
      throw new TartanError(
        'ERR_IFACE_REQUEST',
        `interface ${p.ifname} asks for the default route, but network ${p.net.metadata.name} has no gateway for it (and the request names none)`,
      );
  return planned;
}

/** A field of the request that the network would have to ignore, and why, if there is one. */
function ignoredField(net: Network, q: InterfaceRequest): string | undefined {
  const s = net.spec;
  if (q.mac !== undefined && s.type === 'ipvlan') return 'mac: an ipvlan link has its parent’s MAC';
  if (q.mac !== undefined && s.type === 'macvlan' && s.mode === 'passthru')
    return 'mac: a passthru macvlan has its parent’s MAC';
  const v4 = !!s.ipv4 && q.ip !== 'none';
  const v6 = !!s.ipv6 && q.ip6 !== 'none';
  if (q.claim !== undefined && s.type === 'delegate')
    return 'claim: the network delegates its addresses to its own plugins';
  if (q.defaultGateways?.length && s.type === 'delegate')
    return 'default route gateways: the network delegates its routes to its own plugins';
  if (q.cniArgs !== undefined && s.type !== 'delegate')
    return 'cni-args: only a delegated network’s plugins take them';
  if (q.claim !== undefined && !v4 && !v6) return 'claim: the interface gets no address to keep';
  // (A family the network has no range of is policyRoutesProblem's to name.)
  for (const r of q.policyRoutes ?? [])
    if ((r.dst.includes(':') ? q.ip6 : q.ip) === 'none')
      return `policyRoutes ${r.dst}: the interface gets no IPv${r.dst.includes(':') ? 6 : 4} address to route from`;
  return undefined;
}

/**
 * Why the request's default route gateways cannot be used, if they cannot: they serve the
 * default route it asks for, one per family, inside the network, never its own address.
 */
function defaultGatewaysProblem(net: Network, q: InterfaceRequest): string | undefined {
  const gateways = q.defaultGateways ?? [];
  if (gateways.length > 0 && !q.defaultRoute)
    return 'defaultGateways without defaultRoute would not be used';
  for (const fam of [4, 6] as const) {
    const of = gateways.filter((g) => g.includes(':') === (fam === 6));
    if (of.length > 1)
      return `${of.length} IPv${fam} default route gateways (${of.join(', ')}); a default route has one`;
  }
  for (const g of gateways) {
    const own = g.includes(':') ? q.ip6 : q.ip;
    if (own !== undefined && own.split('/')[0] === g)
      return `default route gateway ${g} is the interface's own address`;
    const problem = gatewayProblem(net, g);
    if (problem) return `default route gateway ${g} ${problem}`;
  }
  return undefined;
}

/** Whether the interface gets an address of the family and a gateway to route it by. */
function canRoute(p: PlannedInterface, fam: Family): boolean {
  const range = fam === 4 ? p.net.spec.ipv4 : p.net.spec.ipv6;
  if (!range || p.net.spec.type === 'delegate' || (fam === 4 ? p.req.ip : p.req.ip6) === 'none')
    return false;
  return (
    !!range.gateway || (p.req.defaultGateways ?? []).some((g) => g.includes(':') === (fam === 6))
  );
}

/** Why a requested default gateway cannot be the next hop over this network, if it cannot. */
function gatewayProblem(net: Network, g: string): string | undefined {
  const fam: Family = g.includes(':') ? 6 : 4;
  const range = fam === 4 ? net.spec.ipv4 : net.spec.ipv6;
  const gw = parseIp(g, fam);
  if (gw === undefined) return `is not an IPv${fam} address`;
  if (!range) return `is IPv${fam}, and the network has no IPv${fam} range`;
  return nextHopProblemIn(range.cidr, fam, gw);
}

/** Whether the interface gets an address, and so a rule and routes in the network's table. */
function usesTable(net: Network, q: InterfaceRequest): boolean {
  const { type, ipv4, ipv6 } = net.spec;
  return type !== 'delegate' && ((!!ipv4 && q.ip !== 'none') || (!!ipv6 && q.ip6 !== 'none'));
}
