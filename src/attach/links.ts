// Per-type creation and removal of a pod interface. Each backend creates the link directly
// inside the pod's netns under its final name (IFLA_NET_NS_FD), so no temporary host name
// can collide and nothing of the pod's is ever visible on the host.
import { readFileSync, readlinkSync } from 'node:fs';
import { isUnicastMac } from '../cni/config.js';
import { isTartanError, TartanError } from '../cni/errors.js';
import { HOST, runPosition, type Kernel, type Op, type Step } from '../kernel/types.js';
import type { Network } from '../network/schema.js';
import type { InterfaceRecord } from './records.js';

type BunHasher = { update(s: string): BunHasher; digest(): Uint8Array };
const bunHasher = (globalThis as { Bun?: { CryptoHasher: new (alg: string) => BunHasher } }).Bun
  ?.CryptoHasher;

/**
 * SHA-256 of a string. Under Bun its native hasher: evaluating node:crypto costs the CNI
 * executable ~2.5 ms of start-up. Same bytes either way (the agent runs under Node).
 */
export function sha256(s: string): Buffer {
  if (bunHasher) return Buffer.from(new bunHasher('sha256').update(s).digest());
  return process.getBuiltinModule('node:crypto').createHash('sha256').update(s).digest();
}

/** Host end of a pod's veth: "tt" + 10 hex of (containerId, ifname), stable and unique. */
export function hostVethName(containerId: string, ifname: string): string {
  return 'tt' + sha256(`${containerId}/${ifname}`).toString('hex').slice(0, 10);
}

/**
 * A stable, locally administered unicast MAC for (containerId, ifname): the same pod
 * interface keeps its MAC across a repeated ADD, and the result needs no read-back.
 */
export function stableMac(containerId: string, ifname: string): string {
  const h = sha256(`mac/${containerId}/${ifname}`);
  const b = [...h.subarray(0, 6)];
  b[0] = (b[0]! & 0xfc) | 0x02;
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** The MAC of a link in this process's namespace, from sysfs (no process spawn). */
export function sysfsMac(name: string): string | undefined {
  try {
    return readFileSync(`/sys/class/net/${name}/address`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The link a link in this process's namespace is enslaved to (a bridge, a bond), if any. */
export function sysfsMaster(name: string): string | undefined {
  try {
    return readlinkSync(`/sys/class/net/${name}/master`).split('/').pop();
  } catch {
    return undefined;
  }
}

/** The MTU of a link in this process's namespace, from sysfs; undefined if unknown. */
export function sysfsMtu(name: string): number | undefined {
  try {
    const n = Number(readFileSync(`/sys/class/net/${name}/mtu`, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Why the network's MTU cannot be had over `under` (a macvlan or ipvlan link's parent, a
 * bridge's uplink), if it cannot: the kernel refuses a macvlan or ipvlan above its parent's
 * MTU with nothing but EINVAL, and a bridge drops, without a word, frames its uplink cannot
 * carry.
 */
export function mtuProblem(net: Network, under: string): string | undefined {
  const s = net.spec;
  if (s.mtu === undefined || !['macvlan', 'ipvlan', 'bridge'].includes(s.type)) return undefined;
  const max = sysfsMtu(under);
  if (max === undefined || s.mtu <= max) return undefined;
  return s.type === 'bridge'
    ? `the network's MTU ${s.mtu} is above the MTU ${max} of its bridge's uplink ${under}: ` +
        `larger frames would be dropped on the way out`
    : `the network's MTU ${s.mtu} is above the MTU ${max} of its parent ${under}: ` +
        `a ${s.type} link cannot be larger than its parent`;
}

/**
 * Ops that create the link in the pod netns: host-side ops, then pod-side ones. Sets
 * rec.mac where it is known up front (ipvlan shares its parent's, learnt later).
 */
export function linkOps(
  netns: string,
  containerId: string,
  ifname: string,
  net: Network,
  parent: string | undefined,
  rec: InterfaceRecord,
  mac: string | undefined,
): { host: Op[]; pod: Op[] } {
  const s = net.spec;
  switch (s.type) {
    case 'macvlan':
    case 'ipvlan': {
      if (!parent)
        throw new TartanError('ERR_CONFIG', `network ${net.metadata.name} has no parent device`);
      const mode = s.mode ?? (s.type === 'macvlan' ? 'bridge' : 'l2');
      const base = { name: ifname, parent, mode, intoNs: netns };
      if (s.type === 'ipvlan') return { host: [{ op: 'ipvlan-add', ...base }], pod: [] };
      // passthru hands the parent's own MAC to the pod.
      if (mode !== 'passthru') rec.mac = mac ?? stableMac(containerId, ifname);
      return {
        host: [{ op: 'macvlan-add', ...base, ...(rec.mac ? { mac: rec.mac } : {}) }],
        pod: [],
      };
    }
    case 'bridge': {
      if (!parent)
        throw new TartanError('ERR_CONFIG', `network ${net.metadata.name} has no bridge`);
      const veth = hostVethName(containerId, ifname);
      rec.hostVeth = veth;
      rec.mac = mac ?? stableMac(containerId, ifname);
      return {
        host: [
          {
            op: 'veth-add',
            name: veth,
            peer: ifname,
            peerNs: netns,
            peerMac: rec.mac,
            ...(s.mtu !== undefined ? { mtu: s.mtu } : {}),
          },
          { op: 'link-set', name: veth, master: parent, up: true },
        ],
        pod: [],
      };
    }
    case 'host-device': {
      const dev = s.device!;
      rec.hostDevice = dev;
      const own = sysfsMac(dev);
      if (own) rec.hostMac = own;
      rec.mac = mac ?? own;
      const pod: Op[] = dev === ifname ? [] : [{ op: 'link-set', name: dev, newName: ifname }];
      if (mac && mac !== own) pod.push({ op: 'link-set', name: ifname, mac });
      return { host: [{ op: 'link-set', name: dev, down: true, intoNs: netns }], pod };
    }
    case 'delegate':
      throw new TartanError('ERR_INTERNAL', 'delegated networks are attached by the delegate');
  }
}

/**
 * A macvlan the kernel refused with nothing but EINVAL, explained: a passthru macvlan takes
 * its parent alone, so it and any other macvlan on that parent exclude each other (another
 * pod on the network, a network of another mode on the same NIC, another plugin's link).
 * The error itself is returned, with its position and cause, the message extended.
 */
export function explainLinkFailure(e: unknown, steps: Step[]): unknown {
  const at = runPosition(e);
  const o = at && steps[at.step]?.ops[at.op];
  if (o?.op !== 'macvlan-add' || !isTartanError(e, 'ERR_KERNEL')) return e;
  if (!/EINVAL|Invalid argument/.test(e.message)) return e;
  e.message +=
    o.mode === 'passthru'
      ? ` (a passthru macvlan needs ${o.parent} to itself, and ${o.parent} has a macvlan already)`
      : ` (if ${o.parent} is held by a passthru macvlan, it takes no other)`;
  return e;
}

/** Ops that give a host device named `now` its own MAC and name again. */
function giveBack(rec: InterfaceRecord, now: string): Op[] {
  const ops: Op[] = [];
  if (rec.hostMac && rec.mac !== rec.hostMac)
    ops.push({ op: 'link-set', name: now, mac: rec.hostMac });
  if (now !== rec.hostDevice) ops.push({ op: 'link-set', name: now, newName: rec.hostDevice! });
  return ops;
}

/**
 * A pod's host device that its netns's end returned to this namespace: a plain device
 * (no virtual kind) with the MAC it had in the pod, under the pod's name or the kernel's
 * "dev<N>". Nothing when the MAC is unknown or not unicast (VFs may all be 00:00:...), or
 * when the device's own name is back already.
 */
async function returnedNic(k: Kernel, rec: InterfaceRecord): Promise<string | undefined> {
  const mac = rec.mac?.toLowerCase();
  if (!mac || !isUnicastMac(mac) || (await k.linkExists(rec.hostDevice!))) return undefined;
  const found = (await k.links(HOST)).filter(
    (l) =>
      !l.kind &&
      l.address?.toLowerCase() === mac &&
      (l.ifname === rec.ifname || /^dev\d+$/.test(l.ifname)),
  );
  return found.length === 1 ? found[0]!.ifname : undefined;
}

/** Removes what linkOps made, in one process; every step tolerates its object being gone. */
export async function destroyLink(
  k: Kernel,
  netns: string | undefined,
  rec: InterfaceRecord,
): Promise<void> {
  const pod = netns === undefined ? undefined : { ns: netns };
  const podOps: Op[] = rec.rules.map((r) => ({ op: 'rule-del' as const, ...r }));
  const hostOps: Op[] = [];
  if (rec.spec.type === 'host-device') {
    // A physical NIC must come back to the node as it came: its own MAC and name.
    if (rec.hostDevice && pod) {
      podOps.push({ op: 'link-set', name: rec.ifname, down: true });
      podOps.push(...giveBack(rec, rec.ifname));
      podOps.push({ op: 'link-set', name: rec.hostDevice, intoNs: `/proc/${process.pid}/ns/net` });
    } else if (rec.hostDevice) {
      // The netns is gone: the kernel has moved the NIC to the initial namespace itself,
      // under its pod name (or "dev<N>" if that name was taken) and with the pod's MAC.
      // Left so, the node's NIC stays renamed and the next pod asking for it fails.
      const back = await returnedNic(k, rec);
      if (back) hostOps.push({ op: 'link-set', name: back, down: true }, ...giveBack(rec, back));
    }
  } else {
    podOps.push({ op: 'link-del', name: rec.ifname });
  }
  if (rec.hostVeth) hostOps.push({ op: 'link-del', name: rec.hostVeth });
  await k.run([...(pod ? [{ t: pod, ops: podOps }] : []), { t: HOST, ops: hostOps }], {
    bestEffort: true,
  });
}
