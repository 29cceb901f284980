// Per-type creation and removal of a pod interface. Each backend creates the link directly
// inside the pod's netns under its final name (IFLA_NET_NS_FD), so no temporary host name
// can collide and nothing of the pod's is ever visible on the host.
import { createHash } from 'node:crypto';
import { TartanError } from '../cni/errors.js';
import { HOST, type Kernel, type Op } from '../kernel/types.js';
import type { Network } from '../network/schema.js';
import type { InterfaceRecord } from './records.js';

/** Host end of a pod's veth: "tt" + 10 hex of (containerId, ifname), stable and unique. */
export function hostVethName(containerId: string, ifname: string): string {
  return 'tt' + createHash('sha256').update(`${containerId}/${ifname}`).digest('hex').slice(0, 10);
}

/** Ops that create the link in the pod netns: host-side ops, then pod-side ones. */
export function linkOps(
  netns: string,
  containerId: string,
  ifname: string,
  net: Network,
  parent: string | undefined,
  rec: InterfaceRecord,
): { host: Op[]; pod: Op[] } {
  const s = net.spec;
  switch (s.type) {
    case 'macvlan':
    case 'ipvlan': {
      if (!parent)
        throw new TartanError('ERR_CONFIG', `network ${net.metadata.name} has no parent device`);
      const mode = s.mode ?? (s.type === 'macvlan' ? 'bridge' : 'l2');
      const base = { name: ifname, parent, mode, intoNs: netns };
      return {
        host: [
          s.type === 'macvlan' ? { op: 'macvlan-add', ...base } : { op: 'ipvlan-add', ...base },
        ],
        pod: [],
      };
    }
    case 'bridge': {
      if (!parent)
        throw new TartanError('ERR_CONFIG', `network ${net.metadata.name} has no bridge`);
      const veth = hostVethName(containerId, ifname);
      rec.hostVeth = veth;
      return {
        host: [
          {
            op: 'veth-add',
            name: veth,
            peer: ifname,
            peerNs: netns,
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
      return {
        host: [{ op: 'link-set', name: dev, down: true, intoNs: netns }],
        pod: dev === ifname ? [] : [{ op: 'link-set', name: dev, newName: ifname }],
      };
    }
    case 'delegate':
      throw new TartanError('ERR_INTERNAL', 'delegated networks are attached by the delegate');
  }
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
    // A physical NIC must come back to the node, under its own name; if the netns is
    // already gone the kernel has returned it to the initial namespace.
    if (rec.hostDevice) {
      podOps.push({ op: 'link-set', name: rec.ifname, down: true });
      if (rec.ifname !== rec.hostDevice)
        podOps.push({ op: 'link-set', name: rec.ifname, newName: rec.hostDevice });
      podOps.push({ op: 'link-set', name: rec.hostDevice, intoNs: `/proc/${process.pid}/ns/net` });
    }
  } else {
    podOps.push({ op: 'link-del', name: rec.ifname });
  }
  if (rec.hostVeth) hostOps.push({ op: 'link-del', name: rec.hostVeth });
  await k.run([...(pod ? [{ t: pod, ops: podOps }] : []), { t: HOST, ops: hostOps }], {
    bestEffort: true,
  });
}
