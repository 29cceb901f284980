// Kernel.addresses() over netlink: a link dump for the names and an address dump, shaped
// as the iproute2 driver shapes `ip -j addr show` (links in kernel order, then within a
// link IPv4 before IPv6, each in the order the kernel lists them).
import * as C from './constants.js';
import { formatBytes } from '../../cni/addr.js';
import { ifaddrmsg, ifinfomsg } from './headers.js';
import { attr, attrMap, encodeMessage, readStr, readU32 } from './message.js';
import type { NlMessage } from './message.js';
import type { AddrInfo } from '../types.js';

const DUMP = C.NLM_F_REQUEST | C.NLM_F_DUMP;

export function linkDumpRequest(): Uint8Array {
  return encodeMessage({
    type: C.RTM_GETLINK,
    flags: DUMP,
    head: ifinfomsg({}),
    // No VF lists (see getLinkByName): names, indexes and kinds are all that is read.
    attrs: [attr.u32(C.IFLA_EXT_MASK, C.RTEXT_FILTER_SKIP_STATS)],
  });
}

export function addrDumpRequest(): Uint8Array {
  return encodeMessage({
    type: C.RTM_GETADDR,
    flags: DUMP,
    head: ifaddrmsg({ family: C.AF_UNSPEC, prefixlen: 0, index: 0 }),
  });
}

/** ifindex -> name, in the order of the dump. */
export function decodeLinks(msgs: NlMessage[]): Map<number, string> {
  const out = new Map<number, string>();
  for (const m of msgs) {
    if (m.type !== C.RTM_NEWLINK || m.body.length < 16) continue;
    const name = attrMap(m.body.subarray(16)).get(C.IFLA_IFNAME);
    if (name) out.set(readU32(m.body, 4), readStr(name));
  }
  return out;
}

export interface RawAddr {
  index: number;
  family: 4 | 6;
  cidr: string;
  flags: number;
}

export function decodeAddrs(msgs: NlMessage[]): RawAddr[] {
  const out: RawAddr[] = [];
  for (const m of msgs) {
    if (m.type !== C.RTM_NEWADDR || m.body.length < 8) continue;
    const family = m.body[0];
    if (family !== C.AF_INET && family !== C.AF_INET6) continue;
    const a = attrMap(m.body.subarray(8));
    // iproute2 shows IFA_LOCAL as "local", falling back to IFA_ADDRESS (IPv6 has only that).
    const local = a.get(C.IFA_LOCAL) ?? a.get(C.IFA_ADDRESS);
    if (!local) continue;
    const wide = a.get(C.IFA_FLAGS);
    out.push({
      index: readU32(m.body, 4),
      family: family === C.AF_INET ? 4 : 6,
      cidr: `${formatBytes(local)}/${m.body[1] ?? 0}`,
      flags: wide && wide.length >= 4 ? readU32(wide) : (m.body[2] ?? 0),
    });
  }
  return out;
}

export function addrInfos(links: Map<number, string>, addrs: RawAddr[]): AddrInfo[] {
  const out: AddrInfo[] = [];
  for (const [index, dev] of links)
    for (const fam of [4, 6] as const)
      for (const a of addrs)
        if (a.index === index && a.family === fam)
          out.push({
            dev,
            family: fam,
            cidr: a.cidr,
            flags: [
              a.flags & C.IFA_F_TENTATIVE ? 'tentative' : '',
              a.flags & C.IFA_F_DADFAILED ? 'dadfailed' : '',
              a.flags & C.IFA_F_NODAD ? 'nodad' : '',
            ].filter(Boolean),
          });
  return out;
}

export function readAddresses(dump: (req: Uint8Array) => NlMessage[]): AddrInfo[] {
  const links = decodeLinks(dump(linkDumpRequest()));
  return addrInfos(links, decodeAddrs(dump(addrDumpRequest())));
}
