// The meta-plugin: one ADD attaches every interface a pod asked for, in a deterministic
// order, and undoes all of it if any step fails. DEL and CHECK work from the node-local
// attachment record, so they need neither the network definition nor the cluster.
import { TartanError, withContext } from '../cni/errors.js';
import type { InterfaceRequest } from '../cni/config.js';
import { LATEST_VERSION, SUPPORTED_VERSIONS, mergeResults, type CniResult } from '../cni/spec.js';
import type { Ipam } from '../ipam/index.js';
import type { Kernel } from '../kernel/types.js';
import type { Network } from '../network/schema.js';
import { planAddressing } from './addressing.js';
import { delegateAdd, delegateCheck, delegateDel, type DelegateEnv } from './delegate.js';
import type { HostState } from './host-state.js';
import { createLink, destroyLink } from './links.js';
import { acquireParents, planParents, releaseParents } from './parents.js';
import type { AttachmentRecord, InterfaceRecord } from './records.js';
import { checkInterface } from './check.js';

export interface Deps {
  kernel: Kernel;
  ipam: Ipam;
  state: HostState;
  node: string;
  network(name: string): Network | undefined;
}

export interface AttachRequest {
  containerId: string;
  ifname: string; // CNI_IFNAME
  netns: string;
  cniVersion: string;
  cniArgs: string | undefined;
  cniPath: string[];
  runtimeConfig: Record<string, unknown> | undefined;
  defaultNetwork: string | undefined;
  requests: InterfaceRequest[];
  prevResult: CniResult | undefined;
}

export interface PlannedInterface {
  ifname: string;
  net: Network;
  req: InterfaceRequest;
  defaultRoute: boolean;
}

/** Orders the pod's interfaces: the default network first (as CNI_IFNAME), then requests. */
export function planInterfaces(deps: Pick<Deps, 'network'>, r: AttachRequest): PlannedInterface[] {
  const reqs: InterfaceRequest[] = [];
  const prevNames = new Set(
    (r.prevResult?.interfaces ?? []).filter((i) => i.sandbox).map((i) => i.name),
  );
  if (r.defaultNetwork && !prevNames.has(r.ifname))
    reqs.push({ network: r.defaultNetwork, ifname: r.ifname });
  reqs.push(...r.requests);
  if (reqs.length === 0)
    throw new TartanError(
      'ERR_IFACE_REQUEST',
      'no interfaces requested and no defaultNetwork configured',
    );
  const used = new Set<string>(prevNames);
  for (const q of reqs)
    if (q.ifname) {
      if (used.has(q.ifname))
        throw new TartanError('ERR_IFACE_REQUEST', `interface name ${q.ifname} requested twice`);
      used.add(q.ifname);
    }
  let n = 1;
  const nextName = (first: boolean) => {
    if (first && !used.has(r.ifname)) return (used.add(r.ifname), r.ifname);
    while (used.has(`net${n}`)) n++;
    used.add(`net${n}`);
    return `net${n}`;
  };
  const explicitDefault = reqs.some((q) => q.defaultRoute);
  return reqs.map((q, i) => {
    const net = deps.network(q.network);
    if (!net) throw new TartanError('ERR_UNKNOWN_NETWORK', `unknown network ${q.network}`);
    const ifname = q.ifname ?? nextName(i === 0);
    const defaultRoute = explicitDefault
      ? q.defaultRoute === true
      : i === 0 && prevNames.size === 0;
    return { ifname, net, req: q, defaultRoute };
  });
}

const user = (cid: string, ifname: string) => `${cid}/${ifname}`;

export async function add(deps: Deps, r: AttachRequest): Promise<CniResult> {
  const { kernel: k, state } = deps;
  const kind = await k.netnsKind(r.netns);
  if (kind !== 'net')
    throw new TartanError(
      'ERR_NETNS',
      `CNI_NETNS ${r.netns} ${kind === 'missing' ? 'does not exist' : 'is not a network namespace'}`,
    );
  const plan = planInterfaces(deps, r);

  const existing = state.getAttachment(r.containerId, r.ifname);
  if (existing) {
    // A repeated ADD for the same attachment: if everything is still in place it is
    // answered from the record; otherwise the old state is removed and built again.
    if (existing.netns === r.netns && existing.result && sameShape(existing, plan)) {
      try {
        await check(deps, r);
        return existing.result;
      } catch {
        // fall through to a rebuild
      }
    }
    await del(deps, {
      containerId: r.containerId,
      ifname: r.ifname,
      netns: r.netns,
      cniPath: r.cniPath,
      cniArgs: r.cniArgs,
    });
  }

  const rec: AttachmentRecord = {
    containerId: r.containerId,
    ifname: r.ifname,
    netns: r.netns,
    cniVersion: r.cniVersion,
    node: deps.node,
    created: new Date().toISOString(),
    interfaces: [],
  };
  let result: CniResult = r.prevResult ? { ...r.prevResult } : { cniVersion: LATEST_VERSION };
  try {
    for (const [i, p] of plan.entries()) {
      try {
        const one = await attachOne(deps, r, rec, p, i);
        result = mergeResults(result, one);
      } catch (e) {
        throw withContext(e, `interface ${p.ifname} (network ${p.net.metadata.name})`);
      }
    }
    await fillMacs(k, r.netns, result);
    rec.result = result;
    state.putAttachment(rec);
    return result;
  } catch (e) {
    const left = await teardown(deps, rec, r);
    // Keep the record if the undo was incomplete, so a later DEL or GC can finish it.
    if (left.length === 0) state.deleteAttachment(r.containerId, r.ifname);
    else if (e instanceof TartanError) e.message += ` (rollback incomplete: ${left.join('; ')})`;
    // The kernel only says "invalid argument" for a namespace file of the wrong kind.
    if ((await k.netnsKind(r.netns, true)) !== 'net')
      throw new TartanError('ERR_NETNS', `CNI_NETNS ${r.netns} is not a network namespace`, {
        cause: e,
      });
    throw e;
  }
}

function sameShape(rec: AttachmentRecord, plan: PlannedInterface[]): boolean {
  return (
    rec.interfaces.length === plan.length &&
    rec.interfaces.every(
      (x, i) => x.ifname === plan[i]!.ifname && x.network === plan[i]!.net.metadata.name,
    )
  );
}

async function attachOne(
  deps: Deps,
  r: AttachRequest,
  rec: AttachmentRecord,
  p: PlannedInterface,
  position: number,
): Promise<CniResult> {
  const { kernel: k, state, ipam } = deps;
  const ir: InterfaceRecord = {
    ifname: p.ifname,
    network: p.net.metadata.name,
    spec: p.net.spec,
    state: 'adding',
    parents: [],
    allocations: [],
    rules: [],
    routes: [],
    ...(p.req.claim ? { claim: p.req.claim } : {}),
  };
  rec.interfaces.push(ir);
  // Write ahead: from here on, a crash leaves a record that DEL and GC can undo.
  state.putAttachment(rec);

  if (p.net.spec.type === 'delegate') {
    const env = delegateEnv(r, p.ifname);
    const out = await delegateAdd(p.net.spec.delegate!, env, SUPPORTED_VERSIONS);
    ir.delegate = out;
    ir.state = 'ready';
    state.putAttachment(rec);
    return out.result;
  }

  const spec = p.net.spec;
  if (spec.ipv4 || spec.ipv6) {
    ir.allocations = await ipam.allocate({
      network: ir.network,
      spec,
      node: deps.node,
      containerId: r.containerId,
      ifname: p.ifname,
      ...(p.req.ip !== undefined ? { ip: p.req.ip } : {}),
      ...(p.req.ip6 !== undefined ? { ip6: p.req.ip6 } : {}),
      ...(p.req.claim !== undefined ? { claim: p.req.claim } : {}),
    });
    state.putAttachment(rec);
  } else if ((p.req.ip && p.req.ip !== 'none') || (p.req.ip6 && p.req.ip6 !== 'none')) {
    throw new TartanError(
      'ERR_IFACE_REQUEST',
      `network ${ir.network} has no address ranges; ip/ip6 must be none`,
    );
  }

  const parents = planParents(p.net);
  ir.parents = await acquireParents(k, state, parents, user(r.containerId, p.ifname));
  state.putAttachment(rec);
  const parent = ir.parents.at(-1) ?? spec.device;

  const pre = await createLink(k, r.netns, r.containerId, p.ifname, p.net, parent, ir);
  state.putAttachment(rec);

  const a = planAddressing(p.ifname, p.net, p.req, ir.allocations, position, p.defaultRoute);
  ir.rules = a.rules;
  ir.routes = a.routes;
  const pod = { ns: r.netns };
  if (pre.length > 0) await k.apply(pod, pre);
  await k.apply(pod, a.sysctls);
  await k.apply(pod, a.ops);
  ir.state = 'ready';
  state.putAttachment(rec);

  return {
    cniVersion: LATEST_VERSION,
    interfaces: [
      ...(ir.hostVeth ? [{ name: ir.hostVeth }] : []),
      { name: p.ifname, sandbox: r.netns, ...(spec.mtu !== undefined ? { mtu: spec.mtu } : {}) },
    ],
    ips: ir.allocations.map((al) => ({
      address: `${al.address}/${al.prefixLength}`,
      ...(al.gateway ? { gateway: al.gateway } : {}),
      interface: ir.hostVeth ? 1 : 0,
    })),
    routes: a.routes.map((rt) => ({
      dst: rt.dst,
      ...(rt.gw ? { gw: rt.gw } : {}),
      ...(rt.table !== undefined ? { table: rt.table } : {}),
    })),
  };
}

async function fillMacs(k: Kernel, netns: string, result: CniResult): Promise<void> {
  const needPod = result.interfaces?.some((i) => i.sandbox === netns && !i.mac);
  const needHost = result.interfaces?.some((i) => !i.sandbox && !i.mac);
  const [pod, host] = await Promise.all([
    needPod ? k.links({ ns: netns }) : Promise.resolve([]),
    needHost ? k.links({}) : Promise.resolve([]),
  ]);
  for (const i of result.interfaces ?? []) {
    if (i.mac) continue;
    const l = (i.sandbox === netns ? pod : i.sandbox ? [] : host).find((x) => x.ifname === i.name);
    if (l?.address) i.mac = l.address;
  }
}

function delegateEnv(
  r: {
    containerId: string;
    netns: string;
    cniArgs: string | undefined;
    cniPath: string[];
    runtimeConfig?: Record<string, unknown> | undefined;
  },
  ifname: string,
): DelegateEnv {
  return {
    containerId: r.containerId,
    netns: r.netns,
    ifname,
    cniArgs: r.cniArgs,
    cniPath: r.cniPath,
    runtimeConfig: r.runtimeConfig,
  };
}

/** Undoes a (possibly partial) attachment in reverse order; never throws for missing objects. */
async function teardown(
  deps: Deps,
  rec: AttachmentRecord,
  r: {
    containerId: string;
    netns: string | undefined;
    cniPath: string[];
    cniArgs: string | undefined;
  },
): Promise<string[]> {
  const { kernel: k, state, ipam } = deps;
  const netnsAlive =
    r.netns !== undefined && (await k.netnsKind(r.netns)) === 'net' ? r.netns : undefined;
  const errors: string[] = [];
  for (const ir of [...rec.interfaces].reverse()) {
    try {
      if (ir.delegate) {
        // Delegates get DEL even without a netns: they may hold IPAM state of their own.
        await delegateDel(
          ir.delegate.conflist,
          ir.delegate.result,
          delegateEnv({ ...r, netns: netnsAlive ?? '' }, ir.ifname),
          SUPPORTED_VERSIONS,
        );
        continue;
      }
      await destroyLink(k, netnsAlive, ir);
      await releaseParents(k, state, ir.parents, user(rec.containerId, ir.ifname));
      if (ir.spec.ipv4 || ir.spec.ipv6)
        await ipam.release({
          network: ir.network,
          spec: ir.spec,
          containerId: rec.containerId,
          ifname: ir.ifname,
          allocations: ir.allocations,
        });
    } catch (e) {
      errors.push(`${ir.ifname}: ${(e as Error).message}`);
    }
  }
  return errors;
}

export interface DelRequest {
  containerId: string;
  ifname: string;
  netns: string | undefined;
  cniPath: string[];
  cniArgs: string | undefined;
}

/** Idempotent: a missing record, netns, link or allocation is success. */
export async function del(deps: Deps, r: DelRequest): Promise<void> {
  const rec = deps.state.getAttachment(r.containerId, r.ifname);
  if (!rec) return;
  const errors = await teardown(deps, rec, { ...r, netns: r.netns || rec.netns });
  if (errors.length > 0)
    throw new TartanError(
      'ERR_KERNEL',
      `DEL left work undone (will be retried): ${errors.join('; ')}`,
    );
  deps.state.deleteAttachment(r.containerId, r.ifname);
}

export async function check(
  deps: Deps,
  r: {
    containerId: string;
    ifname: string;
    netns: string;
    cniPath: string[];
    cniArgs: string | undefined;
  },
): Promise<void> {
  const rec = deps.state.getAttachment(r.containerId, r.ifname);
  if (!rec)
    throw new TartanError(
      'ERR_CHECK',
      `no attachment recorded for container ${r.containerId} interface ${r.ifname}`,
    );
  if ((await deps.kernel.netnsKind(r.netns)) !== 'net')
    throw new TartanError('ERR_NETNS', `CNI_NETNS ${r.netns} is not a network namespace`);
  for (const ir of rec.interfaces) {
    if (ir.delegate) {
      await delegateCheck(
        ir.delegate.conflist,
        ir.delegate.result,
        delegateEnv(r, ir.ifname),
        SUPPORTED_VERSIONS,
      );
      continue;
    }
    await checkInterface(deps.kernel, r.netns, ir);
  }
}

/** CNI GC: removes every attachment of this node that the runtime no longer lists. */
export async function gc(
  deps: Deps,
  valid: { containerId: string; ifname: string }[],
  cniPath: string[],
): Promise<number> {
  const keep = new Set(valid.map((v) => user(v.containerId, v.ifname)));
  let removed = 0;
  for (const rec of deps.state.listAttachments()) {
    if (keep.has(user(rec.containerId, rec.ifname))) continue;
    await del(deps, {
      containerId: rec.containerId,
      ifname: rec.ifname,
      netns: rec.netns,
      cniPath,
      cniArgs: undefined,
    });
    removed++;
  }
  return removed;
}
