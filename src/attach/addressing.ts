// Pod-side configuration of one interface: addresses, link up, routes and the per-attachment
// policy routing, as one op list; plus the pod-wide sysctl defaults every link inherits.
import type { Allocation } from '../ipam/index.js';
import { type Family, formatIp, parseCidr, parseIp } from '../ipam/ip.js';
import type { Op } from '../kernel/types.js';
import type { InterfaceRequest } from '../cni/config.js';
import type { Network } from '../network/schema.js';
import type { InterfaceRecord } from './records.js';

/** Rules of the attachment at position i use priority RULE_BASE + i. */
export const RULE_BASE = 1000;

export interface AddressingPlan {
  ops: Op[];
  rules: InterfaceRecord['rules'];
  routes: InterfaceRecord['routes'];
}

/**
 * Pod-wide defaults, set before any of Tartan's links exist in the pod so that each link
 * inherits them: announce a new address at once (GARP / unsolicited NA on link up) so
 * neighbours and switches learn the pod's MAC without waiting for an ARP timeout, and use
 * an IPv6 address at once (telco default: no DAD delay; addresses also carry nodad).
 */
export function podDefaults(): Op[] {
  return [
    { op: 'sysctl', key: 'net/ipv4/conf/default/arp_notify', value: '1' },
    { op: 'sysctl', key: 'net/ipv6/conf/default/accept_dad', value: '0' },
    { op: 'sysctl', key: 'net/ipv6/conf/default/ndisc_notify', value: '1' },
  ];
}

export function planAddressing(
  ifname: string,
  net: Network,
  req: InterfaceRequest,
  allocs: Allocation[],
  position: number,
  /** The families whose default route this interface holds. */
  holdsDefaultRoute: readonly (4 | 6)[],
): AddressingPlan {
  const ops: Op[] = [];
  if (net.spec.mtu !== undefined) ops.push({ op: 'link-set', name: ifname, mtu: net.spec.mtu });
  for (const a of allocs)
    ops.push({ op: 'addr-add', dev: ifname, cidr: `${a.address}/${a.prefixLength}`, nodad: true });
  ops.push({ op: 'link-set', name: ifname, up: true });

  const routes: InterfaceRecord['routes'] = [];
  const rules: InterfaceRecord['rules'] = [];
  for (const fam of [4, 6] as const) {
    const a = allocs.find((x) => x.family === fam);
    if (!a) continue;
    const spec = fam === 4 ? net.spec.ipv4 : net.spec.ipv6;
    const gw = a.gateway;
    // Canonical text, as the kernel reads routes back (RFC 5952): CHECK compares them as text.
    // The network was validated when loaded, so its texts parse.
    const own = (spec?.routes ?? []).map((r) => {
      const via = r.gw !== undefined ? canonicalIp(r.gw, fam) : gw;
      return { dst: canonicalCidr(r.dst, fam), ...(via ? { gw: via } : {}) };
    });
    routes.push(...own);
    if (holdsDefaultRoute.includes(fam)) {
      // The request's gateway of this family (NPWG default-route), else the network's.
      const asked = req.defaultGateways?.find((g) => g.includes(':') === (fam === 6));
      const via = asked ? canonicalIp(asked, fam) : gw;
      if (via) routes.push({ dst: fam === 4 ? '0.0.0.0/0' : '::/0', gw: via });
    }
    const table = net.spec.routingTable;
    if (table !== undefined) {
      // Replies leave through the interface the request came in on: a rule for the
      // attachment's source address selects a table that only knows this interface.
      if (spec) routes.push({ dst: canonicalCidr(spec.cidr, fam), table });
      if (gw) routes.push({ dst: fam === 4 ? '0.0.0.0/0' : '::/0', gw, table });
      for (const r of own) routes.push({ ...r, table });
      for (const r of req.policyRoutes ?? [])
        if (r.dst.includes(':') === (fam === 6))
          routes.push({
            dst: canonicalCidr(r.dst, fam),
            table,
            ...(r.gw ? { gw: canonicalIp(r.gw, fam) } : {}),
          });
      rules.push({
        from: `${a.address}/${fam === 4 ? 32 : 128}`,
        table,
        priority: RULE_BASE + position,
      });
    }
  }
  for (const r of routes)
    ops.push({
      op: 'route-add',
      dst: r.dst,
      dev: ifname,
      ...(r.gw ? { gw: r.gw } : {}),
      ...(r.table !== undefined ? { table: r.table } : {}),
    });
  for (const r of rules) ops.push({ op: 'rule-add', ...r });
  return { ops, rules, routes };
}

// Checked before (network load, policyRoutesProblem in plan.ts); anything else passes unchanged.
export function canonicalCidr(s: string, f: Family = s.includes(':') ? 6 : 4): string {
  const c = parseCidr(s, f);
  return c ? `${formatIp(c[0], f)}/${c[1]}` : s;
}

function canonicalIp(s: string, f: Family): string {
  const v = parseIp(s, f);
  return v === undefined ? s : formatIp(v, f);
}
