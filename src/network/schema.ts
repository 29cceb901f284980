// Network definitions: the same schema serves files on a host without a cluster and the
// ClusterNetwork / TenantNetwork objects in Kubernetes (spec field).
import * as v from 'valibot';
import { parse4, parse6 } from '../cni/addr.js';
import { isReservedIfname, RESERVED_IFNAME_MESSAGE } from '../cni/config.js';
import { deeperThan, MAX_DEPTH } from '../cni/protocol.js';
import { dict } from '../cni/validation.js';

export const API_VERSION = 'tartan.io/v1alpha1';

const ifaceName = v.pipe(
  v.string(),
  v.regex(/^[A-Za-z0-9_.-]{1,15}$/, 'must be 1-15 characters of letters, digits, "_", "." or "-"'),
  v.check((n) => !isReservedIfname(n), RESERVED_IFNAME_MESSAGE),
);
const int = (min: number, max: number) =>
  v.pipe(v.number(), v.safeInteger(), v.minValue(min), v.maxValue(max));

export const RouteSchema = v.object({
  dst: v.string(),
  gw: v.optional(v.string()),
});

export const PoolSchema = v.object({ start: v.string(), end: v.string() });

export const RangeSchema = v.object({
  /** The subnet of the network, e.g. 10.10.0.0/24 or fd00:10::/64. */
  cidr: v.string(),
  /** Where dynamic and fixed addresses may come from; default: the whole cidr. */
  pools: v.optional(v.array(PoolSchema)),
  /** Addresses or CIDRs never handed out. */
  excludes: v.optional(v.array(v.string())),
  gateway: v.optional(v.string()),
  routes: v.optional(v.array(RouteSchema)),
  /** Prefix length of the node-affine blocks (default /26 for IPv4, /122 for IPv6). */
  blockPrefix: v.optional(int(1, 128)),
});

/** The bytes of a strict IPv4 or IPv6 address (4 or 16), or undefined. */
const ipBytes = (s: string): number[] | undefined => (s.includes(':') ? parse6(s) : parse4(s));
const familyOf = (s: string): 4 | 6 | undefined => {
  const b = ipBytes(s);
  return b && (b.length === 4 ? 4 : 6);
};
/** The address as given if it is one, else quoted (and cut short): text to put in a message. */
const shown = (s: string) => (ipBytes(s) ? s : JSON.stringify(s.slice(0, 64)));

const isMulticast = (b: number[]) => (b.length === 4 ? b[0]! >> 4 === 0xe : b[0] === 0xff);

/**
 * An address another host can be reached at: not multicast (that is `group`), and not
 * unspecified, "this network", loopback or broadcast, which no tunnel peer can have.
 */
const isPeer = (b: number[]) => {
  if (isMulticast(b)) return false;
  if (b.length === 4) return b[0] !== 0 && b[0] !== 127 && !b.every((x) => x === 255);
  const last = b.slice(0, 15).every((x) => x === 0) ? b[15] : undefined;
  return last !== 0 && last !== 1;
};

export const VxlanSchema = v.pipe(
  v.object({
    vni: int(1, 16777215),
    port: v.optional(int(1, 65535), 4789),
    /** Multicast group for BUM traffic; or static remotes. */
    group: v.optional(
      v.pipe(
        v.string(),
        v.check(
          (s) => {
            const b = ipBytes(s);
            return b !== undefined && isMulticast(b);
          },
          (i) => `${shown(i.input)} is not a multicast address (IPv4 224.0.0.0/4 or IPv6 ff00::/8)`,
        ),
      ),
    ),
    /** The other hosts' underlay addresses, each given every BUM frame (head-end replication). */
    remotes: v.optional(
      v.array(
        v.pipe(
          v.string(),
          v.check(
            (s) => {
              const b = ipBytes(s);
              return b !== undefined && isPeer(b);
            },
            (i) => `${shown(i.input)} is not another host's unicast IPv4 or IPv6 address`,
          ),
        ),
      ),
    ),
  }),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const x = dataset.value;
    // One VXLAN device speaks one family: its local address is of the group's family, or
    // else of the first remote's (planParents), and the kernel refuses an FDB entry of the
    // other with nothing but an errno. Group and remotes together are fine: BUM frames go
    // to both.
    const fams = new Set((x.remotes ?? []).map(familyOf).filter((f) => f !== undefined));
    const group = x.group === undefined ? undefined : familyOf(x.group);
    const message =
      group !== undefined && [...fams].some((f) => f !== group)
        ? `must be IPv${group} addresses like the group ${x.group}`
        : fams.size > 1
          ? 'must be all IPv4 or all IPv6 addresses'
          : undefined;
    if (message)
      addIssue({
        message,
        path: [{ type: 'object', origin: 'value', input: x, key: 'remotes', value: x.remotes }],
      });
  }),
);

const IPVLAN_MODES = ['l2', 'l3', 'l3s'];
const MACVLAN_MODES = ['bridge', 'private', 'vepa', 'passthru'];

export const NetworkSpecSchema = v.pipe(
  v.object({
    type: v.picklist(['ipvlan', 'macvlan', 'bridge', 'host-device', 'delegate']),
    /** Host parent device (NIC, bond, or the lower device of a VLAN/VXLAN parent). */
    device: v.optional(ifaceName),
    vlan: v.optional(int(1, 4094)),
    vxlan: v.optional(VxlanSchema),
    /** ipvlan: l2|l3|l3s; macvlan: bridge|private|vepa|passthru. */
    mode: v.optional(v.picklist(['l2', 'l3', 'l3s', 'bridge', 'private', 'vepa', 'passthru'])),
    /** type bridge: the host bridge name (created if absent). */
    bridge: v.optional(ifaceName),
    mtu: v.optional(int(68, 65535)),
    ipv4: v.optional(RangeSchema),
    ipv6: v.optional(RangeSchema),
    /** Per-attachment policy routing: `from <ip> lookup <table>` plus the network's routes in that table. */
    routingTable: v.optional(
      v.pipe(
        int(0, 4294967295),
        // The kernel's own tables: the attachment's routes would land among the pod's (in 254,
        // main, over its default route), and 0 is no table at all.
        v.notValues(
          [0, 253, 254, 255],
          'must not be a reserved table: 0 (unspec), 253 (default), 254 (main) or 255 (local)',
        ),
      ),
    ),
    /** type delegate: a CNI network configuration or configuration list. */
    delegate: v.optional(dict(v.string(), v.unknown())),
    /** Namespaces allowed to use a ClusterNetwork (empty: all). */
    namespaces: v.optional(v.array(v.string())),
  }),
  v.rawCheck(({ dataset, addIssue }) => {
    // Only a spec whose fields have their types; a value merely out of range or not matching
    // its pattern still gets these checks, so every problem is reported at once.
    if (!dataset.typed) return;
    const s = dataset.value;
    const bad = (message: string, key: keyof typeof s) =>
      addIssue({
        message,
        path: [{ type: 'object', origin: 'value', input: s, key, value: s[key] }],
      });
    if (s.vlan !== undefined && s.vxlan !== undefined)
      bad('vlan and vxlan are mutually exclusive', 'vxlan');
    if ((s.type === 'ipvlan' || s.type === 'macvlan' || s.type === 'host-device') && !s.device)
      bad(`type ${s.type} needs a host device`, 'device');
    if (s.vxlan && !s.device) bad('vxlan needs a device to take the local address from', 'device');
    if (s.vlan !== undefined && !s.device) bad('vlan needs a device to tag on', 'device');
    // A delegated network is its plugins' alone: Tartan would ignore these.
    if (s.type === 'delegate')
      for (const key of ['device', 'vlan', 'vxlan', 'bridge', 'mode', 'mtu'] as const)
        if (s[key] !== undefined) bad(`${key} is not used by a delegated network`, key);
    if (s.delegate && deeperThan(s.delegate, MAX_DEPTH))
      bad(`nested deeper than ${MAX_DEPTH} levels`, 'delegate');
    for (const fam of ['ipv4', 'ipv6'] as const) {
      const dsts = (s[fam]?.routes ?? []).map((r) => r.dst);
      const twice = dsts.find((d, i) => dsts.indexOf(d) !== i);
      if (twice) bad(`routes: ${twice} is routed twice`, fam);
    }
    if (s.type === 'delegate' && !s.delegate)
      bad('type delegate needs a delegate config', 'delegate');
    if (s.type !== 'delegate' && s.delegate)
      bad('delegate is only valid with type delegate', 'delegate');
    if (s.type === 'delegate' && (s.ipv4 || s.ipv6))
      bad('a delegated network brings its own IPAM; ipv4/ipv6 are not allowed', 'ipv4');
    if (s.type === 'host-device' && (s.vlan !== undefined || s.vxlan))
      bad('host-device moves a NIC as it is; vlan/vxlan are not allowed', 'type');
    if (s.mode && s.type === 'ipvlan' && !IPVLAN_MODES.includes(s.mode))
      bad(`ipvlan mode must be one of ${IPVLAN_MODES.join(', ')}`, 'mode');
    if (s.mode && s.type === 'macvlan' && !MACVLAN_MODES.includes(s.mode))
      bad(`macvlan mode must be one of ${MACVLAN_MODES.join(', ')}`, 'mode');
    if (s.mode && !['ipvlan', 'macvlan'].includes(s.type))
      bad(`mode is only valid for ipvlan and macvlan`, 'mode');
    if (s.type === 'bridge' && s.bridge !== undefined && s.bridge === s.device)
      bad(`must not be the device ${s.device}: a bridge cannot be its own port`, 'bridge');
    // The kernel takes no IPv6 address on a link under the IPv6 minimum MTU (EINVAL).
    if (s.ipv6 && s.mtu !== undefined && s.mtu < 1280)
      bad('must be at least 1280 on a network with ipv6 (the IPv6 minimum)', 'mtu');
  }),
);

export const NetworkSchema = v.object({
  apiVersion: v.literal(API_VERSION),
  kind: v.picklist(['ClusterNetwork', 'TenantNetwork']),
  metadata: v.object({
    name: v.pipe(
      v.string(),
      v.regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a DNS label'),
    ),
    namespace: v.optional(v.string()),
  }),
  spec: NetworkSpecSchema,
});

export type Route = v.InferOutput<typeof RouteSchema>;
export type Range = v.InferOutput<typeof RangeSchema>;
export type NetworkSpec = v.InferOutput<typeof NetworkSpecSchema>;
export type Network = v.InferOutput<typeof NetworkSchema>;
