// CHECK: the kernel state ADD built must still be there, read back from the kernel.
import { TartanError } from '../cni/errors.js';
import { HOST, type Kernel } from '../kernel/types.js';
import type { InterfaceRecord } from './records.js';

const kindOf: Record<string, string | undefined> = {
  macvlan: 'macvlan',
  ipvlan: 'ipvlan',
  bridge: 'veth',
};

const normDst = (d: string) =>
  d === '0.0.0.0/0' || d === '::/0' ? 'default' : d.replace(/\/(32|128)$/, '');

/**
 * What the runtime's prevResult says of this interface: a later plugin of the chain (tuning,
 * say) may have changed its MAC or MTU on ADD, and CHECK must expect that, not ADD's value.
 */
export interface Expected {
  mac?: string;
  mtu?: number;
}

export async function checkInterface(
  k: Kernel,
  netns: string,
  ir: InterfaceRecord,
  expected: Expected = {},
): Promise<void> {
  const pod = { ns: netns };
  const bad = (what: string) => {
    throw new TartanError('ERR_CHECK', `interface ${ir.ifname} (network ${ir.network}): ${what}`);
  };
  const [links, addrs, rules] = await Promise.all([
    k.links(pod),
    k.addresses(pod),
    ir.rules.length ? k.rules(pod) : [],
  ]);
  const link = links.find((l) => l.ifname === ir.ifname);
  if (!link) return bad('link is missing');
  const want = kindOf[ir.spec.type];
  if (want && link.kind !== want) bad(`link is a ${link.kind ?? 'plain device'}, expected ${want}`);
  if (!link.flags.includes('UP')) bad('link is down');
  // The MAC Tartan gave the link (as the reference plugins' CHECK does): another MAC means
  // another link under this name, or one changed behind Tartan's back. An ipvlan link has
  // its parent's, which is not Tartan's to keep.
  const mac = expected.mac ?? ir.mac;
  if (mac && ir.spec.type !== 'ipvlan' && link.address?.toLowerCase() !== mac.toLowerCase())
    bad(`MAC is ${link.address ?? 'unknown'}, expected ${mac}`);
  const mtu = expected.mtu ?? ir.spec.mtu ?? ir.mtu;
  if (mtu !== undefined && link.mtu !== mtu) bad(`MTU is ${link.mtu}, expected ${mtu}`);
  for (const a of ir.allocations) {
    const cidr = `${a.address}/${a.prefixLength}`;
    if (!addrs.some((x) => x.dev === ir.ifname && x.cidr === cidr))
      bad(`address ${cidr} is missing`);
  }
  for (const r of ir.rules) {
    const [src, len] = r.from.split('/');
    if (
      !rules.some(
        (x) =>
          x.priority === r.priority &&
          x.src === src &&
          String(x.srclen ?? len) === len &&
          x.table === String(r.table),
      )
    )
      bad(`policy rule from ${r.from} lookup ${r.table} is missing`);
  }
  const tables = [...new Set(ir.routes.map((r) => r.table))];
  for (const t of tables) {
    const have = await k.routes(pod, t);
    for (const r of ir.routes.filter((x) => x.table === t)) {
      if (
        !have.some(
          (h) =>
            h.dst === normDst(r.dst) &&
            h.dev === ir.ifname &&
            (r.gw === undefined || h.gw === r.gw),
        )
      )
        bad(
          `route ${r.dst}${r.gw ? ` via ${r.gw}` : ''}${t !== undefined ? ` table ${t}` : ''} is missing`,
        );
    }
  }
  if (ir.parents.length > 0 || ir.hostVeth) {
    const host = await k.links(HOST);
    for (const p of ir.parents)
      if (!host.some((l) => l.ifname === p)) bad(`host parent ${p} is missing`);
    if (ir.hostVeth) {
      const v = host.find((l) => l.ifname === ir.hostVeth);
      if (!v) bad(`host veth ${ir.hostVeth} is missing`);
      else if (ir.parents.length && v.master !== ir.parents.at(-1))
        bad(`host veth ${ir.hostVeth} is not on bridge ${ir.parents.at(-1)}`);
    }
  }
}
