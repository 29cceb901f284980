// Host parent interfaces (VLAN sub-interfaces, VXLAN devices, bridges), shared by every pod
// on a network: created on first use, repaired if someone deleted them, removed after the
// last user. Reference counts live in the node state under its lock, and kernel changes
// happen under it too, so two ADDs or an ADD and a DEL never race. A reference is committed
// before its link is made and dropped only once the link is gone: a process killed at any
// point leaves a record that says what to remove, never a link that nobody owns.
import { TartanError } from '../cni/errors.js';
import { API_VERSION, type Network } from '../network/schema.js';
import { HOST, runPosition, type Kernel, type Op } from '../kernel/types.js';
import type { HostState } from './host-state.js';
import { sha256, sysfsMaster, sysfsMtu } from './links.js';
import type { InterfaceRecord, ParentRecord } from './records.js';

export interface ParentPlan {
  name: string;
  kind: ParentRecord['kind'];
  /** Builds the ops that create it (some need kernel facts such as the local address). */
  create: (k: Kernel) => Promise<Op[]>;
  /** A bridge's lower link when Tartan makes it (VLAN, VXLAN): it must be in the bridge. */
  lower?: string;
  /**
   * What networks sharing the link must agree on, where its name does not say it all: a
   * VXLAN device's VNI names it, but two networks of one VNI with another port or device
   * would share whichever was made first; a bridge named by two networks with different
   * lower links would join their segments.
   */
  settings?: string;
}

/**
 * What must hold of a parent that already exists: a bridge's lower link is in it. A lower
 * link re-created under an existing bridge (deleted by someone, or an operator's bridge
 * named by the network) is otherwise left outside, and the bridge's pods cut off. Only
 * lower links Tartan makes: their records (settings) tie each to one bridge, so two bridges
 * never take one in turns. A host NIC is put in the bridge when the bridge is made, and
 * never again (an operator may have had reasons to take it out).
 */
export const ensureOps = (p: ParentPlan): Op[] =>
  p.lower ? [{ op: 'link-set', name: p.lower, master: p.name, up: true }] : [];

export function vlanName(device: string, vid: number): string {
  const n = `${device}.${vid}`;
  if (n.length > 15)
    throw new TartanError('ERR_CONFIG', `VLAN interface name ${n} is longer than 15 characters`);
  return n;
}

export const vxlanName = (vni: number) => `tvx${vni}`;
/**
 * The host bridge of a bridge network without an explicit `bridge`: tbr-<name> when that is
 * a valid, whole link name, else tbr- and a hash of the name. Cut short, two networks
 * sharing 11 leading characters (or two tenants' networks of one name: in a cluster the
 * name is "<namespace>/<name>", with a "/" no link name may hold) would share a bridge.
 */
export const bridgeName = (net: Network): string => {
  if (net.spec.bridge) return net.spec.bridge;
  const name = net.metadata.name;
  return /^[a-z0-9-]{1,11}$/.test(name)
    ? `tbr-${name}`
    : `tbr-${sha256(name).toString('hex').slice(0, 11)}`;
};

/** Parents a network needs, lowest first; the last is what pod interfaces attach to. */
export function planParents(net: Network): ParentPlan[] {
  const s = net.spec;
  const plans: ParentPlan[] = [];
  if (s.vlan !== undefined && s.device) {
    const name = vlanName(s.device, s.vlan);
    const device = s.device;
    const vlan = s.vlan;
    plans.push({
      name,
      kind: 'vlan',
      settings: `VLAN ${vlan} on ${device}`,
      create: async () => [
        { op: 'vlan-add', name, parent: device, id: vlan },
        { op: 'link-set', name, up: true },
      ],
    });
  }
  if (s.vxlan && s.device) {
    const name = vxlanName(s.vxlan.vni);
    const { vni, port, group, remotes } = s.vxlan;
    const device = s.device;
    plans.push({
      name,
      kind: 'vxlan',
      settings: `VXLAN ${vni} over ${device}, UDP port ${port}${group ? `, group ${group}` : ''}`,
      create: async (k) => {
        const local = await localAddress(k, device, group ?? remotes?.[0]);
        if (s.mtu !== undefined) vxlanMtuCheck(s.mtu, name, device, local);
        const ops: Op[] = [
          { op: 'vxlan-add', name, vni, port, local, dev: device, ...(group ? { group } : {}) },
          ...(s.mtu !== undefined ? [{ op: 'link-set' as const, name, mtu: s.mtu }] : []),
        ];
        // One network definition serves every node: skip the remote that is this node.
        for (const dst of remotes ?? [])
          if (dst !== local) ops.push({ op: 'fdb-append', dev: name, dst });
        ops.push({ op: 'link-set', name, up: true });
        return ops;
      },
    });
  }
  if (s.type === 'bridge') {
    const name = bridgeName(net);
    const made = plans.at(-1);
    // The lower link Tartan makes belongs to this bridge alone: a second network that wants
    // it as a port of another bridge (or of none) is refused, not given it in turns.
    if (made) made.settings = `${made.settings}, a port of bridge ${name}`;
    const uplink = made?.name ?? s.device;
    plans.push({
      name,
      kind: 'bridge',
      ...(made ? { lower: made.name } : {}),
      settings: uplink ? `a bridge with ${uplink} in it` : 'a bridge without an uplink',
      create: async () => {
        // A NIC in another bridge already carries that bridge's segment: taking it would cut
        // that bridge off, and DEL could not give it back.
        const master = uplink && !made ? sysfsMaster(uplink) : undefined;
        if (master && master !== name)
          throw new TartanError(
            'ERR_CONFIG',
            `host device ${uplink} is a port of ${master}; bridge ${name} needs it to itself`,
          );
        return [
          { op: 'bridge-add', name, ...(s.mtu !== undefined ? { mtu: s.mtu } : {}) },
          ...(uplink ? [{ op: 'link-set' as const, name: uplink, master: name, up: true }] : []),
          { op: 'link-set', name, up: true },
        ];
      },
    });
  }
  return plans;
}

/**
 * The settings of a parent whose record predates them, from the networks of the recorded
 * interfaces on it; undefined if they do not all agree (or none is recorded).
 */
export function recordedSettings(state: HostState, name: string): string | undefined {
  const seen = new Set<string | undefined>();
  for (const rec of state.listAttachments())
    for (const ir of rec.interfaces)
      if (ir.parents.includes(name))
        seen.add(recordedPlans(ir).find((x) => x.name === name)?.settings);
  return seen.size === 1 ? [...seen][0] : undefined;
}

/**
 * The parents a recorded interface was planned with, from the copy of its network's spec
 * it carries (so this works after the network is changed or deleted). A spec that cannot
 * be planned now (e.g. a name over 15 characters) never got a parent either: none.
 */
export function recordedPlans(ir: InterfaceRecord): ParentPlan[] {
  const net: Network = {
    apiVersion: API_VERSION,
    kind: 'ClusterNetwork',
    metadata: { name: ir.network },
    spec: ir.spec,
  };
  try {
    return planParents(net);
  } catch {
    return [];
  }
}

async function localAddress(k: Kernel, device: string, peer: string | undefined): Promise<string> {
  const fam = peer?.includes(':') ? 6 : 4;
  const addrs = (await k.addresses(HOST)).filter(
    (a) => a.dev === device && a.family === fam && !a.cidr.startsWith('fe80:'),
  );
  const first = addrs[0];
  if (!first)
    throw new TartanError(
      'ERR_CONFIG',
      `VXLAN needs an IPv${fam} address on host device ${device}, found none`,
    );
  return first.cidr.split('/')[0]!;
}

/**
 * A VXLAN device carries at most its lower device's MTU less the headers it adds (VXLAN,
 * UDP, outer IP and Ethernet: 50 bytes over IPv4, 70 over IPv6); the kernel refuses more
 * with nothing but EINVAL. A lower device whose MTU cannot be read is left to the kernel.
 */
function vxlanMtuCheck(mtu: number, name: string, device: string, local: string): void {
  const lower = sysfsMtu(device);
  const headers = local.includes(':') ? 70 : 50;
  if (lower === undefined || mtu <= lower - headers) return;
  throw new TartanError(
    'ERR_CONFIG',
    `the network's MTU ${mtu} is above the ${lower - headers} that VXLAN device ` +
      `${name} can carry over ${device} (MTU ${lower}, less ${headers} bytes of VXLAN ` +
      `over IPv${headers === 50 ? 4 : 6})`,
  );
}

/** Takes a reference on each parent, creating (or re-creating) what is missing. */
export async function acquireParents(
  k: Kernel,
  state: HostState,
  plans: ParentPlan[],
  user: string,
): Promise<string[]> {
  const taken: string[] = [];
  for (const p of plans) {
    // First the reference, committed: if the process dies while the link is being made,
    // the record names the link and its user, whose DEL removes it. (Made first, a dead
    // process would leave a link that the next call takes for an operator's.)
    const step = await state.withLock(async () => {
      const present = await k.linkExists(p.name);
      const known = state.getParent(p.name);
      // A link present without a record was made by someone else: never ours to remove, and
      // used only if it is what the network needs (pods on a veth named like the bridge
      // would otherwise fail later with "operation not supported").
      if (present && !known) {
        const kind = await k.linkKind(p.name);
        if (kind !== undefined && kind !== p.kind)
          throw new TartanError(
            'ERR_CONFIG',
            `host link ${p.name} exists and is ${kind ? `a ${kind}` : 'a plain device'}, ` +
              `not the ${p.kind} this network needs`,
          );
      }
      // A record from before settings were kept: what its users' networks made it for, if
      // they agree (else it stays unknown: neither checked nor changed, as before).
      const settings = known ? (known.settings ?? recordedSettings(state, p.name)) : p.settings;
      if (settings && p.settings && settings !== p.settings)
        throw new TartanError(
          'ERR_CONFIG',
          `host link ${p.name} is in use as ${settings} (by ${known!.users.join(', ')}); ` +
            `this network needs ${p.settings}`,
        );
      const rec: ParentRecord = known
        ? { ...known, ...(settings ? { settings } : {}) }
        : {
            name: p.name,
            kind: p.kind,
            external: present,
            users: [],
            ...(p.settings ? { settings: p.settings } : {}),
          };
      if (!rec.users.includes(user)) rec.users.push(user);
      if (!present) rec.external = false;
      state.putParent(rec);
      return { create: !present, known: rec.settings === p.settings };
    });
    taken.push(p.name);
    if (!step.create) {
      const ensure = ensureOps(p);
      if (ensure.length && step.known)
        await state.withLock(async () => {
          if ((await k.linkExists(p.name)) && (await k.linkExists(p.lower!)))
            await k.apply(HOST, ensure);
        });
      continue;
    }
    let madeNothing = false;
    try {
      await state.withLock(async () => {
        if (await k.linkExists(p.name)) return; // made meanwhile by another user's call
        try {
          await k.apply(HOST, await p.create(k));
        } catch (e) {
          // Half made (the link, not its FDB or MTU): no half parent is left for others.
          const at = runPosition(e);
          if (!at || at.op > 0)
            await k.apply(HOST, [{ op: 'link-del', name: p.name }], { bestEffort: true });
          else madeNothing = true;
          throw e;
        }
      });
    } catch (e) {
      // The creating op itself failed: a link under the name now (one that appeared since
      // the look above) is someone else's, and the undo must leave it.
      if (madeNothing)
        await state.withLock(async () => {
          const rec = state.getParent(p.name);
          if (rec && !rec.external && (await k.linkExists(p.name)))
            state.putParent({ ...rec, external: true });
        });
      throw e;
    }
  }
  return taken;
}

/** Drops a reference on each parent and removes those no longer used (never external ones). */
export async function releaseParents(
  k: Kernel,
  state: HostState,
  names: string[],
  user: string,
): Promise<void> {
  if (names.length === 0) return;
  await state.withLock(async () => {
    for (const name of [...names].reverse()) {
      const rec = state.getParent(name);
      if (!rec) continue;
      rec.users = rec.users.filter((u) => u !== user);
      if (rec.users.length > 0) {
        state.putParent(rec);
        continue;
      }
      if (!rec.external) {
        await k.apply(HOST, [{ op: 'link-del', name }], { bestEffort: true });
        // Still there: keep the reference (the transaction rolls back) so a retried DEL or
        // GC removes it, rather than forget a link nobody would remove.
        if (await k.linkExists(name))
          throw new TartanError('ERR_KERNEL', `host parent ${name} could not be removed`);
      }
      state.deleteParent(name);
    }
  });
}
