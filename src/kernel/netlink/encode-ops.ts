// Address, route, rule and fdb ops -> the request iproute2 sends for the command ops.ts maps
// each to (`ip addr`, `ip route replace`, `ip rule`, `bridge fdb append`): same flags, header
// and attributes in the same order, checked against `strace -e write=` of ip 6.1.
import * as C from './constants.js';
import { isAnyKeyword, parseIp, parsePrefix, type IpBytes } from './addr.js';
import {
  encodeLinkOp,
  CREATE,
  MODIFY,
  type EncodeContext,
  type NetlinkOp,
} from './encode-links.js';
import { fibRuleHdr, ifaddrmsg, ndmsg, rtmsg } from './headers.js';
import { attr, encodeMessage, type Attr } from './message.js';
import type { Op } from '../types.js';

export type { EncodeContext, NetlinkOp } from './encode-links.js';

function addr(o: Extract<Op, { op: 'addr-add' | 'addr-del' }>, ctx: EncodeContext): Uint8Array {
  const p = parsePrefix(o.cidr);
  const add = o.op === 'addr-add';
  // ops.ts asks for nodad on IPv6 only; IPv4 has no DAD.
  const flags = add && o.nodad && p.family === C.AF_INET6 ? C.IFA_F_NODAD : 0;
  // iproute2's default_scope(): 127/8 is host scope.
  const scope = add && p.family === C.AF_INET && p.bytes[0] === 127 ? 254 : 0;
  const index = ctx.ifindex(o.dev);
  const attrs = [attr.bytes(C.IFA_LOCAL, p.bytes)];
  // A bare IPv4 address to delete matches by local address alone, as in iproute2.
  if (add || p.explicit || p.family === C.AF_INET6) attrs.push(attr.bytes(C.IFA_ADDRESS, p.bytes));
  if (flags) attrs.push(attr.u32(C.IFA_FLAGS, flags));
  return encodeMessage({
    type: add ? C.RTM_NEWADDR : C.RTM_DELADDR,
    flags: add ? CREATE : MODIFY,
    head: ifaddrmsg({ family: p.family, prefixlen: p.len, flags, scope, index }),
    attrs,
  });
}

/** Tables above 255 do not fit the header's u8: header RT_TABLE_UNSPEC plus an attribute. */
const table = (t: number) =>
  t < 256 ? { head: t, attrs: [] } : { head: C.RT_TABLE_UNSPEC, attrs: [t] };

function route(o: Extract<Op, { op: 'route-add' }>, ctx: EncodeContext): Uint8Array {
  const gw: IpBytes | undefined = o.gw ? parseIp(o.gw) : undefined;
  const dst = isAnyKeyword(o.dst) ? undefined : parsePrefix(o.dst);
  const family = dst?.family ?? gw?.family ?? (o.src ? parseIp(o.src).family : C.AF_INET);
  const t = table(o.table ?? C.RT_TABLE_MAIN);
  const attrs: Attr[] = [];
  if (dst) attrs.push(attr.bytes(C.RTA_DST, dst.bytes));
  if (gw && gw.family !== family)
    throw new Error(`gateway ${o.gw} is not of the family of ${o.dst}`);
  if (gw) attrs.push(attr.bytes(C.RTA_GATEWAY, gw.bytes));
  if (o.src) attrs.push(attr.bytes(C.RTA_PREFSRC, parseIp(o.src).bytes));
  if (o.metric !== undefined) attrs.push(attr.u32(C.RTA_PRIORITY, o.metric));
  for (const id of t.attrs) attrs.push(attr.u32(C.RTA_TABLE, id));
  attrs.push(attr.u32(C.RTA_OIF, ctx.ifindex(o.dev)));
  // iproute2: IPv6 routes are always universe scope; IPv4 ones without gateway link scope.
  const scope = family === C.AF_INET && !gw ? C.RT_SCOPE_LINK : C.RT_SCOPE_UNIVERSE;
  return encodeMessage({
    type: C.RTM_NEWROUTE,
    // `ip route replace`: create or overwrite.
    flags: C.NLM_F_REQUEST | C.NLM_F_ACK | C.NLM_F_CREATE | C.NLM_F_REPLACE,
    head: rtmsg({
      family,
      dstLen: dst?.len ?? 0,
      table: t.head,
      protocol: C.RTPROT_BOOT,
      scope,
      type: C.RTN_UNICAST,
      flags: o.onlink ? C.RTNH_F_ONLINK : 0,
    }),
    attrs,
  });
}

function rule(o: Extract<Op, { op: 'rule-add' | 'rule-del' }>): Uint8Array {
  const add = o.op === 'rule-add';
  const src = isAnyKeyword(o.from) ? undefined : parsePrefix(o.from);
  const t = table(o.table);
  return encodeMessage({
    type: add ? C.RTM_NEWRULE : C.RTM_DELRULE,
    flags: add ? CREATE : MODIFY,
    head: fibRuleHdr({
      family: src?.family ?? C.AF_INET,
      srcLen: src?.len ?? 0,
      table: t.head,
      // Deleting matches any action, as `ip rule del` does.
      action: add ? C.FR_ACT_TO_TBL : C.FR_ACT_UNSPEC,
    }),
    attrs: [
      // `from all` goes out as an empty FRA_SRC, as iproute2 sends it.
      attr.bytes(C.FRA_SRC, src?.bytes ?? new Uint8Array(0)),
      ...t.attrs.map((id) => attr.u32(C.FRA_TABLE, id)),
      attr.u32(C.FRA_PRIORITY, o.priority),
    ],
  });
}

/** The request for one op; sequence number 0 (the socket stamps its own). */
export function encodeOp(o: NetlinkOp, ctx: EncodeContext): Uint8Array {
  const link = encodeLinkOp(o, ctx);
  if (link) return link;
  switch (o.op) {
    case 'addr-add':
    case 'addr-del':
      return addr(o, ctx);
    case 'route-add':
      return route(o, ctx);
    case 'rule-add':
    case 'rule-del':
      return rule(o);
    case 'fdb-append':
      // `bridge fdb append 00:00:00:00:00:00 dev <vxlan> dst <ip>`: flood to that remote.
      return encodeMessage({
        type: C.RTM_NEWNEIGH,
        flags: C.NLM_F_REQUEST | C.NLM_F_ACK | C.NLM_F_CREATE | C.NLM_F_APPEND,
        head: ndmsg({
          family: C.AF_BRIDGE,
          ifindex: ctx.ifindex(o.dev),
          state: C.NUD_NOARP | C.NUD_PERMANENT,
          flags: C.NTF_SELF,
        }),
        attrs: [
          attr.bytes(C.NDA_LLADDR, new Uint8Array(6)),
          attr.bytes(C.NDA_DST, parseIp(o.dst).bytes),
        ],
      });
    default:
      throw new Error(`op ${o.op} has no netlink encoding`);
  }
}
