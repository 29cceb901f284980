// Ops as iproute2 argv, and the namespace conventions shared by the kernel driver and the
// script builder.
import type { Op } from './types.js';

/** Named namespaces `ip -n <name>` can switch to by itself (no nsenter needed). */
export const NAMED_NS_DIRS = new Set(['/run/netns', '/var/run/netns']);
export const SYSCTL_KEY_RE = /^[a-z0-9_]+(\/[A-Za-z0-9_.-]+)+$/;

/** Converts one op to the argv of an `ip` (or `bridge`) command. */
export function opToArgs(o: Op): { tool: 'ip' | 'ip6' | 'bridge' | 'sysctl'; args: string[] } {
  const ip = (...a: (string | undefined | false)[]) => ({
    tool: 'ip' as const,
    args: a.filter((x): x is string => typeof x === 'string'),
  });
  const mtu = (m?: number) => (m === undefined ? [] : ['mtu', String(m)]);
  const intoNs = (ns?: string) => (ns === undefined ? [] : ['netns', ns]);
  switch (o.op) {
    case 'macvlan-add':
    case 'ipvlan-add': {
      const mac = o.op === 'macvlan-add' && o.mac ? ['address', o.mac] : [];
      const kind = o.op === 'macvlan-add' ? 'macvlan' : 'ipvlan';
      return ip(
        'link',
        'add',
        'link',
        o.parent,
        'name',
        o.name,
        ...intoNs(o.intoNs),
        ...mtu(o.mtu),
        ...mac,
        'type',
        kind,
        'mode',
        o.mode,
      );
    }
    case 'veth-add':
      return ip(
        'link',
        'add',
        o.name,
        ...mtu(o.mtu),
        'type',
        'veth',
        'peer',
        'name',
        o.peer,
        ...intoNs(o.peerNs),
        ...mtu(o.mtu),
        ...(o.peerMac ? ['address', o.peerMac] : []),
      );
    case 'vlan-add':
      return ip(
        'link',
        'add',
        'link',
        o.parent,
        'name',
        o.name,
        ...mtu(o.mtu),
        'type',
        'vlan',
        'id',
        String(o.id),
      );
    case 'vxlan-add':
      return ip(
        'link',
        'add',
        o.name,
        ...mtu(o.mtu),
        'type',
        'vxlan',
        'id',
        String(o.vni),
        'dstport',
        String(o.port),
        'local',
        o.local,
        'dev',
        o.dev,
        ...(o.group ? ['group', o.group] : ['nolearning']),
      );
    case 'bridge-add':
      return ip('link', 'add', o.name, ...mtu(o.mtu), 'type', 'bridge');
    case 'link-set':
      return ip(
        'link',
        'set',
        'dev',
        o.name,
        ...(o.down ? ['down'] : []),
        ...(o.newName ? ['name', o.newName] : []),
        ...(o.mac ? ['address', o.mac] : []),
        ...mtu(o.mtu),
        ...(o.master ? ['master', o.master] : []),
        ...intoNs(o.intoNs),
        ...(o.up ? ['up'] : []),
      );
    case 'link-del':
      return ip('link', 'del', 'dev', o.name);
    case 'addr-add':
      // Batch lines take no global options: the family follows from the address.
      return ip('addr', 'add', o.cidr, 'dev', o.dev, o.nodad && o.cidr.includes(':') && 'nodad');
    case 'addr-del':
      return ip('addr', 'del', o.cidr, 'dev', o.dev);
    case 'route-add': {
      return ip(
        'route',
        'replace',
        o.dst,
        ...(o.gw ? ['via', o.gw] : []),
        'dev',
        o.dev,
        ...(o.onlink ? ['onlink'] : []),
        ...(o.src ? ['src', o.src] : []),
        ...(o.metric !== undefined ? ['metric', String(o.metric)] : []),
        ...(o.table !== undefined ? ['table', String(o.table)] : []),
      );
    }
    case 'rule-add':
    case 'rule-del':
      // `ip rule` assumes IPv4 unless told; batch lines cannot say -6, so IPv6 rules go in
      // a batch of their own run with `ip -6`.
      return {
        tool: o.from.includes(':') ? 'ip6' : 'ip',
        args: [
          'rule',
          o.op === 'rule-add' ? 'add' : 'del',
          'from',
          o.from,
          'lookup',
          String(o.table),
          'priority',
          String(o.priority),
        ],
      };
    case 'fdb-append':
      return {
        tool: 'bridge',
        args: ['fdb', 'append', '00:00:00:00:00:00', 'dev', o.dev, 'dst', o.dst],
      };
    case 'sysctl':
      return { tool: 'sysctl', args: [o.key, o.value] };
  }
}
