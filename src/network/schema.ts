// Network definitions: the same schema serves files on a host without a cluster and the
// ClusterNetwork / TenantNetwork objects in Kubernetes (spec field).
import { z } from 'zod';

export const API_VERSION = 'tartan.io/v1alpha1';

const ifaceName = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,15}$/, 'must be 1-15 characters of letters, digits, "_", "." or "-"');

export const RouteSchema = z.object({
  dst: z.string(),
  gw: z.string().optional(),
});

export const PoolSchema = z.object({ start: z.string(), end: z.string() });

export const RangeSchema = z.object({
  /** The subnet of the network, e.g. 10.10.0.0/24 or fd00:10::/64. */
  cidr: z.string(),
  /** Where dynamic and fixed addresses may come from; default: the whole cidr. */
  pools: z.array(PoolSchema).optional(),
  /** Addresses or CIDRs never handed out. */
  excludes: z.array(z.string()).optional(),
  gateway: z.string().optional(),
  routes: z.array(RouteSchema).optional(),
  /** Prefix length of the node-affine blocks (default /26 for IPv4, /122 for IPv6). */
  blockPrefix: z.number().int().min(1).max(128).optional(),
});

export const VxlanSchema = z.object({
  vni: z.number().int().min(1).max(16777215),
  port: z.number().int().min(1).max(65535).default(4789),
  /** Multicast group for BUM traffic; or static remotes. */
  group: z.string().optional(),
  remotes: z.array(z.string()).optional(),
});

export const NetworkSpecSchema = z
  .object({
    type: z.enum(['ipvlan', 'macvlan', 'bridge', 'host-device', 'delegate']),
    /** Host parent device (NIC, bond, or the lower device of a VLAN/VXLAN parent). */
    device: ifaceName.optional(),
    vlan: z.number().int().min(1).max(4094).optional(),
    vxlan: VxlanSchema.optional(),
    /** ipvlan: l2|l3|l3s; macvlan: bridge|private|vepa|passthru. */
    mode: z.enum(['l2', 'l3', 'l3s', 'bridge', 'private', 'vepa', 'passthru']).optional(),
    /** type bridge: the host bridge name (created if absent). */
    bridge: ifaceName.optional(),
    mtu: z.number().int().min(68).max(65535).optional(),
    ipv4: RangeSchema.optional(),
    ipv6: RangeSchema.optional(),
    /** Per-attachment policy routing: `from <ip> lookup <table>` plus the network's routes in that table. */
    routingTable: z.number().int().min(1).max(4294967295).optional(),
    /** type delegate: a CNI network configuration or configuration list. */
    delegate: z.record(z.string(), z.unknown()).optional(),
    /** Namespaces allowed to use a ClusterNetwork (empty: all). */
    namespaces: z.array(z.string()).optional(),
  })
  .superRefine((s, ctx) => {
    const bad = (message: string, path: string[]) =>
      ctx.addIssue({ code: 'custom', message, path });
    if (s.vlan !== undefined && s.vxlan !== undefined)
      bad('vlan and vxlan are mutually exclusive', ['vxlan']);
    if ((s.type === 'ipvlan' || s.type === 'macvlan' || s.type === 'host-device') && !s.device)
      bad(`type ${s.type} needs a host device`, ['device']);
    if (s.vxlan && !s.device)
      bad('vxlan needs a device to take the local address from', ['device']);
    if (s.type === 'delegate' && !s.delegate)
      bad('type delegate needs a delegate config', ['delegate']);
    if (s.type !== 'delegate' && s.delegate)
      bad('delegate is only valid with type delegate', ['delegate']);
    if (s.type === 'delegate' && (s.ipv4 || s.ipv6))
      bad('a delegated network brings its own IPAM; ipv4/ipv6 are not allowed', ['ipv4']);
    if (s.type === 'host-device' && (s.vlan !== undefined || s.vxlan))
      bad('host-device moves a NIC as it is; vlan/vxlan are not allowed', ['type']);
    const ipvlanModes = ['l2', 'l3', 'l3s'];
    const macvlanModes = ['bridge', 'private', 'vepa', 'passthru'];
    if (s.mode && s.type === 'ipvlan' && !ipvlanModes.includes(s.mode))
      bad(`ipvlan mode must be one of ${ipvlanModes.join(', ')}`, ['mode']);
    if (s.mode && s.type === 'macvlan' && !macvlanModes.includes(s.mode))
      bad(`macvlan mode must be one of ${macvlanModes.join(', ')}`, ['mode']);
    if (s.mode && !['ipvlan', 'macvlan'].includes(s.type))
      bad(`mode is only valid for ipvlan and macvlan`, ['mode']);
  });

export const NetworkSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.enum(['ClusterNetwork', 'TenantNetwork']),
  metadata: z.object({
    name: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a DNS label'),
    namespace: z.string().optional(),
  }),
  spec: NetworkSpecSchema,
});

export type Route = z.infer<typeof RouteSchema>;
export type Range = z.infer<typeof RangeSchema>;
export type NetworkSpec = z.infer<typeof NetworkSpecSchema>;
export type Network = z.infer<typeof NetworkSchema>;
