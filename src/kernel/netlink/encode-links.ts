// Link ops -> the RTM_NEWLINK / RTM_DELLINK request iproute2 sends for the `ip link`
// command ops.ts maps each to: same flags, header and attributes in the same order (checked
// against `strace -e write=` of ip 6.1). Names resolve to ifindexes and netns paths to fds
// through the context, in the namespace the request is sent to.
import * as C from './constants.js';
import { parseIp, parseMac } from './addr.js';
import { ifinfomsg } from './headers.js';
import { attr, encodeMessage, type Attr } from './message.js';
import type { Op } from '../types.js';

export type NetlinkOp = Exclude<Op, { op: 'sysctl' }>;

export interface EncodeContext {
  /** The ifindex of a link in the namespace the request is sent to. */
  ifindex(name: string): number;
  /** An open fd of a netns path, for IFLA_NET_NS_FD. */
  nsFd(path: string): number;
}

export const CREATE = C.NLM_F_REQUEST | C.NLM_F_ACK | C.NLM_F_EXCL | C.NLM_F_CREATE;
export const MODIFY = C.NLM_F_REQUEST | C.NLM_F_ACK;

/** What the kernel's dev_valid_name() accepts. */
export function ifname(name: string): string {
  if (name.length === 0 || name.length > 15 || name === '.' || name === '..' || /[/:\s]/.test(name))
    throw new Error(`invalid interface name ${JSON.stringify(name)}`);
  return name;
}

function mode(table: Record<string, number>, kind: string, m: string): number {
  const v = table[m];
  if (v === undefined) throw new Error(`unknown ${kind} mode ${JSON.stringify(m)}`);
  return v;
}

const mtu = (m: number | undefined): Attr[] => (m === undefined ? [] : [attr.u32(C.IFLA_MTU, m)]);
const intoNs = (ctx: EncodeContext, path: string | undefined): Attr[] =>
  path === undefined ? [] : [attr.u32(C.IFLA_NET_NS_FD, ctx.nsFd(path))];
const linkinfo = (kind: string, data?: Attr[]): Attr =>
  attr.nest(C.IFLA_LINKINFO, [
    attr.chars(C.IFLA_INFO_KIND, kind),
    ...(data ? [attr.nest(C.IFLA_INFO_DATA, data)] : []),
  ]);
const newlink = (attrs: Attr[]): Uint8Array =>
  encodeMessage({ type: C.RTM_NEWLINK, flags: CREATE, head: ifinfomsg({}), attrs });

/** The request for a link op, or undefined for any other op. */
export function encodeLinkOp(o: NetlinkOp, ctx: EncodeContext): Uint8Array | undefined {
  switch (o.op) {
    case 'macvlan-add':
    case 'ipvlan-add': {
      const data =
        o.op === 'macvlan-add'
          ? [attr.u32(C.IFLA_MACVLAN_MODE, mode(C.MACVLAN_MODES, 'macvlan', o.mode))]
          : [
              attr.u16(C.IFLA_IPVLAN_MODE, mode(C.IPVLAN_MODES, 'ipvlan', o.mode)),
              attr.u16(C.IFLA_IPVLAN_FLAGS, 0),
            ];
      return newlink([
        ...intoNs(ctx, o.intoNs),
        ...mtu(o.mtu),
        ...(o.op === 'macvlan-add' && o.mac ? [attr.bytes(C.IFLA_ADDRESS, parseMac(o.mac))] : []),
        attr.u32(C.IFLA_LINK, ctx.ifindex(o.parent)),
        attr.str(C.IFLA_IFNAME, ifname(o.name)),
        linkinfo(o.op === 'macvlan-add' ? 'macvlan' : 'ipvlan', data),
      ]);
    }
    case 'veth-add': {
      // The peer is a whole link description: its own ifinfomsg, then its attributes.
      const peer = attr.nest(
        C.VETH_INFO_PEER,
        [
          ...intoNs(ctx, o.peerNs),
          ...mtu(o.mtu),
          ...(o.peerMac ? [attr.bytes(C.IFLA_ADDRESS, parseMac(o.peerMac))] : []),
          attr.str(C.IFLA_IFNAME, ifname(o.peer)),
        ],
        ifinfomsg({}),
      );
      return newlink([
        ...mtu(o.mtu),
        attr.str(C.IFLA_IFNAME, ifname(o.name)),
        linkinfo('veth', [peer]),
      ]);
    }
    case 'vlan-add':
      return newlink([
        ...mtu(o.mtu),
        attr.u32(C.IFLA_LINK, ctx.ifindex(o.parent)),
        attr.str(C.IFLA_IFNAME, ifname(o.name)),
        linkinfo('vlan', [attr.u16(C.IFLA_VLAN_ID, o.id)]),
      ]);
    case 'vxlan-add': {
      const local = parseIp(o.local);
      const six = local.family === C.AF_INET6;
      const group = o.group === undefined ? undefined : parseIp(o.group);
      return newlink([
        ...mtu(o.mtu),
        attr.str(C.IFLA_IFNAME, ifname(o.name)),
        linkinfo('vxlan', [
          attr.u32(C.IFLA_VXLAN_LINK, ctx.ifindex(o.dev)),
          attr.u32(C.IFLA_VXLAN_ID, o.vni),
          attr.bytes(six ? C.IFLA_VXLAN_LOCAL6 : C.IFLA_VXLAN_LOCAL, local.bytes),
          ...(group
            ? [attr.bytes(six ? C.IFLA_VXLAN_GROUP6 : C.IFLA_VXLAN_GROUP, group.bytes)]
            : []),
          // Without a group, remotes come from static fdb entries: `nolearning`.
          attr.u8(C.IFLA_VXLAN_LEARNING, group ? 1 : 0),
          attr.be16(C.IFLA_VXLAN_PORT, o.port),
        ]),
      ]);
    }
    case 'bridge-add':
      return newlink([...mtu(o.mtu), attr.str(C.IFLA_IFNAME, ifname(o.name)), linkinfo('bridge')]);
    case 'link-set':
      return linkSet(o, ctx);
    case 'link-del':
      return encodeMessage({
        type: C.RTM_DELLINK,
        flags: MODIFY,
        head: ifinfomsg({ index: ctx.ifindex(o.name) }),
      });
    default:
      return undefined;
  }
}

function linkSet(o: Extract<Op, { op: 'link-set' }>, ctx: EncodeContext): Uint8Array {
  const index = ctx.ifindex(o.name);
  // One message, as `ip link set` sends; the kernel applies a netns move first, then
  // address, mtu, name and master, and the up/down flag last. `up` wins over `down`.
  const change = o.up || o.down ? C.IFF_UP : 0;
  const flags = o.up ? C.IFF_UP : 0;
  return encodeMessage({
    type: C.RTM_NEWLINK,
    flags: MODIFY,
    head: ifinfomsg({ index, flags, change }),
    attrs: [
      ...(o.mac ? [attr.bytes(C.IFLA_ADDRESS, parseMac(o.mac))] : []),
      ...mtu(o.mtu),
      ...(o.master ? [attr.u32(C.IFLA_MASTER, ctx.ifindex(o.master))] : []),
      ...intoNs(ctx, o.intoNs),
      ...(o.newName ? [attr.str(C.IFLA_IFNAME, ifname(o.newName))] : []),
    ],
  });
}

/**
 * RTM_GETLINK by name, without stats and without the VF list (iproute2 asks for VFs with
 * RTEXT_FILTER_VF; only the index is needed here, and a NIC with a few hundred SR-IOV VFs
 * answers with more than a 64 KiB read).
 */
export function getLinkByName(name: string): Uint8Array {
  return encodeMessage({
    type: C.RTM_GETLINK,
    flags: C.NLM_F_REQUEST,
    head: ifinfomsg({}),
    attrs: [
      attr.u32(C.IFLA_EXT_MASK, C.RTEXT_FILTER_SKIP_STATS),
      attr.str(C.IFLA_IFNAME, ifname(name)),
    ],
  });
}
