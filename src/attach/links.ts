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

/** Creates the link in the pod netns; returns the ops to run there first (e.g. a rename). */
export async function createLink(
  k: Kernel,
  netns: string,
  containerId: string,
  ifname: string,
  net: Network,
  parent: string | undefined,
  rec: InterfaceRecord,
): Promise<Op[]> {
  const s = net.spec;
  switch (s.type) {
    case 'macvlan':
    case 'ipvlan': {
      if (!parent)
        throw new TartanError('ERR_CONFIG', `network ${net.metadata.name} has no parent device`);
      const mode = s.mode ?? (s.type === 'macvlan' ? 'bridge' : 'l2');
      const base = { name: ifname, parent, mode, intoNs: netns };
      await k.apply(HOST, [
        s.type === 'macvlan' ? { op: 'macvlan-add', ...base } : { op: 'ipvlan-add', ...base },
      ]);
      return [];
    }
    case 'bridge': {
      const veth = hostVethName(containerId, ifname);
      rec.hostVeth = veth;
      if (!parent)
        throw new TartanError('ERR_CONFIG', `network ${net.metadata.name} has no bridge`);
      await k.apply(HOST, [
        {
          op: 'veth-add',
          name: veth,
          peer: ifname,
          peerNs: netns,
          ...(s.mtu !== undefined ? { mtu: s.mtu } : {}),
        },
        { op: 'link-set', name: veth, master: parent, up: true },
      ]);
      return [];
    }
    case 'host-device': {
      const dev = s.device!;
      rec.hostDevice = dev;
      await k.apply(HOST, [{ op: 'link-set', name: dev, down: true, intoNs: netns }]);
      return dev === ifname ? [] : [{ op: 'link-set', name: dev, newName: ifname }];
    }
    case 'delegate':
      throw new TartanError('ERR_INTERNAL', 'delegated networks are attached by the delegate');
  }
}

/** Removes what createLink made; every step tolerates its object being gone already. */
export async function destroyLink(
  k: Kernel,
  netns: string | undefined,
  rec: InterfaceRecord,
): Promise<void> {
  const pod = netns === undefined ? undefined : { ns: netns };
  if (pod && rec.rules.length > 0)
    await k.apply(
      pod,
      rec.rules.map((r) => ({ op: 'rule-del' as const, ...r })),
      { bestEffort: true },
    );
  if (rec.spec.type === 'host-device') {
    // A physical NIC must come back to the node, under its own name; if the netns is
    // already gone the kernel has returned it to the initial namespace.
    if (pod && rec.hostDevice) {
      const self = `/proc/${process.pid}/ns/net`;
      await k.apply(
        pod,
        [
          { op: 'link-set', name: rec.ifname, down: true },
          ...(rec.ifname !== rec.hostDevice
            ? [{ op: 'link-set' as const, name: rec.ifname, newName: rec.hostDevice }]
            : []),
          { op: 'link-set', name: rec.hostDevice, intoNs: self },
        ],
        { bestEffort: true },
      );
    }
    return;
  }
  if (pod) await k.apply(pod, [{ op: 'link-del', name: rec.ifname }], { bestEffort: true });
  if (rec.hostVeth)
    await k.apply(HOST, [{ op: 'link-del', name: rec.hostVeth }], { bestEffort: true });
}
