// The meta-plugin: one ADD attaches every interface a pod asked for, in a deterministic
// order, and undoes all of it if any step fails. DEL and CHECK work from the node-local
// attachment record, so they need neither the network definition nor the cluster.
import { statSync } from 'node:fs';
import { isTartanError, TartanError, withContext } from '../cni/errors.js';
import { mark } from '../cni/trace.js';
import type { Network } from '../network/schema.js';
import {
  LATEST_VERSION,
  SUPPORTED_VERSIONS,
  mergeResults,
  type CniInterface,
  type CniResult,
} from '../cni/spec.js';
import {
  HOST,
  runPosition,
  type Kernel,
  type Op,
  type RunPosition,
  type Step,
  type Target,
} from '../kernel/types.js';
import { canonicalCidr, planAddressing, podDefaults } from './addressing.js';
import {
  asConflist,
  delegateAdd,
  delegateCheck,
  delegateDel,
  type DelegateEnv,
} from './delegate.js';
import {
  destroyLink,
  explainLinkFailure,
  linkOps,
  mtuProblem,
  sysfsMac,
  sysfsMtu,
} from './links.js';
import { acquireParents, planParents, releaseParents, type ParentPlan } from './parents.js';
import type { AttachmentRecord, InterfaceRecord } from './records.js';
import { checkInterface } from './check.js';
import { planInterfaces, type AttachRequest, type Deps, type PlannedInterface } from './plan.js';

export type { AttachRequest, Deps, PlannedInterface } from './plan.js';

const user = (cid: string, ifname: string) => `${cid}/${ifname}`;

/**
 * Whether two netns paths are one namespace: the same path, or two names of one nsfs file
 * (/var/run/netns/x and /run/netns/x). Paths that cannot be read are not the same.
 */
function sameNetns(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    const x = statSync(a);
    const y = statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/** Which of a record's interfaces are in its pod now (by name). */
async function inPod(k: Kernel, rec: AttachmentRecord): Promise<string[]> {
  const names = new Set(rec.interfaces.map((i) => i.ifname));
  if (names.size === 0) return [];
  const links = await k.links({ ns: rec.netns });
  return links.map((l) => l.ifname).filter((n) => names.has(n));
}

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
    // A second ADD for the same attachment. The SPEC: "If an interface of the requested name
    // already exists in the container, the CNI plugin MUST return with an error" (a runtime
    // DELs first). A record none of whose interfaces is in the pod is what an ADD killed
    // before its kernel work, or a pod whose links went, left: it is undone and built again.
    // In another namespace it is a stale attachment of the container: undone where it was.
    const present = sameNetns(existing.netns, r.netns) ? await inPod(k, existing) : [];
    if (present.length > 0)
      throw new TartanError(
        'ERR_ATTACHED',
        `container ${r.containerId} already has ${present.join(', ')} in ${r.netns} from an ` +
          `ADD at ${existing.created}; a second ADD for ${r.ifname} needs a DEL first`,
      );
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
    ...(r.cniNetwork !== undefined ? { cniNetwork: r.cniNetwork } : {}),
    cniVersion: r.cniVersion,
    node: deps.node,
    created: new Date().toISOString(),
    interfaces: [],
  };
  let result: CniResult = r.prevResult ? { ...r.prevResult } : { cniVersion: LATEST_VERSION };
  // What of the pod's links this ADD made, for the undo: a name taken already in the pod
  // (another plugin's interface) makes the creating op fail, and that link is not ours.
  let made: Made = { links: new Set(), unrenamed: new Set() };
  try {
    const pending: Prepared[] = [];
    for (const [i, p] of plan.entries()) {
      try {
        const one = await prepareOne(deps, r, rec, p, i);
        result = mergeResults(result, one.res);
        if (one.kernel) pending.push(one.kernel);
      } catch (e) {
        throw withContext(e, `interface ${p.ifname} (network ${p.net.metadata.name})`);
      }
    }
    clashingRoutes(rec, state);
    mark('ipam and plan');
    if (pending.length > 0) {
      for (const x of pending) {
        try {
          await acquireParents(k, state, x.parents, user(r.containerId, x.ir.ifname));
        } catch (e) {
          throw withContext(e, x.label);
        }
        // ipvlan shares its parent's MAC, known once the parent exists.
        if (!x.ir.mac && x.parent) x.ir.mac = sysfsMac(x.parent);
        // What bounds the pod's MTU: a macvlan's or ipvlan's parent, a bridge's uplink (the
        // VLAN or VXLAN device made for it, else its NIC).
        const bridged = x.net.spec.type === 'bridge';
        const under = bridged ? (x.parents.at(-1)?.lower ?? x.net.spec.device) : x.parent;
        const problem = under ? mtuProblem(x.net, under) : undefined;
        if (problem) throw withContext(new TartanError('ERR_CONFIG', problem), x.label);
        // A bridge network without an MTU of its own gives its pods the uplink's (a VXLAN
        // device's is 50 bytes less than its NIC's): larger frames would be dropped at the
        // bridge, a path MTU black hole. A macvlan or ipvlan link inherits its parent's.
        if (bridged && x.net.spec.mtu === undefined && under) inheritMtu(x, sysfsMtu(under));
      }
      mark('parents');
      // One process for all of the pod's kernel work: defaults, links, addresses, routes, rules.
      const run: Step[] = [{ t: { ns: r.netns }, ops: podDefaults() }];
      const at = pending.map((x) => run.push(...x.steps) - x.steps.length);
      try {
        await k.run(run);
      } catch (e) {
        made = madeBefore(pending, at, runPosition(e));
        throw explainLinkFailure(e, run);
      }
      made = madeBefore(pending, at, undefined);
      mark('kernel');
      for (const x of pending) x.ir.state = 'ready';
    }
    const macs = new Map(rec.interfaces.filter((i) => i.mac).map((i) => [i.ifname, i.mac!]));
    const mtus = new Map(rec.interfaces.filter((i) => i.mtu).map((i) => [i.ifname, i.mtu!]));
    for (const i of result.interfaces ?? []) {
      if (i.sandbox !== r.netns) continue;
      if (!i.mac && macs.has(i.name)) i.mac = macs.get(i.name)!;
      if (i.mtu === undefined && mtus.has(i.name)) i.mtu = mtus.get(i.name)!;
    }
    rec.result = result;
    state.putAttachment(rec);
    return result;
  } catch (e) {
    const left = await teardown(deps, rec, r, made);
    // Keep the record if the undo was incomplete, so a later DEL or GC can finish it.
    if (left.length === 0) {
      try {
        state.deleteAttachment(r.containerId, r.ifname);
      } catch (d) {
        // The node state failing (read-only, full) is likely what failed the ADD too: the
        // first error, with the interface it names, is the one to report.
        if (!(e instanceof TartanError)) throw d;
        e.message += ` (its record could not be removed either: ${(d as Error).message})`;
      }
    } else if (e instanceof TartanError)
      e.message += ` (rollback incomplete: ${left.map(undoneText).join('; ')})`;
    // The kernel only says "invalid argument" for a namespace file of the wrong kind; only
    // a kernel failure is worth the process that tells the kinds apart.
    if (isTartanError(e, 'ERR_KERNEL') && (await k.netnsKind(r.netns, true)) !== 'net')
      throw new TartanError('ERR_NETNS', `CNI_NETNS ${r.netns} is not a network namespace`, {
        cause: e,
      });
    throw e;
  }
}

/**
 * Two of the pod's routes to one destination in one table: the kernel keeps only the last
 * (routes are written with replace), so one interface's default or network route would be
 * taken over by another's without a word.
 */
function clashingRoutes(rec: AttachmentRecord, state: Deps['state']): void {
  const seen = new Map<string, string>();
  // The container's other attachments (another CNI_IFNAME, another network configuration)
  // share its routing tables: a table taken there is taken.
  const tables = new Map<number, string>();
  for (const other of state.listAttachments(rec.containerId))
    if (other.ifname !== rec.ifname)
      for (const ir of other.interfaces)
        for (const rule of ir.rules) tables.set(rule.table, `${ir.ifname} (network ${ir.network})`);
  for (const ir of rec.interfaces)
    for (const rule of ir.rules) {
      const other = tables.get(rule.table);
      if (other)
        throw new TartanError(
          'ERR_IFACE_REQUEST',
          `${ir.ifname} (network ${ir.network}) would share routing table ${rule.table} with ${other}, attached to this container before`,
        );
    }
  for (const ir of rec.interfaces)
    for (const rt of ir.routes) {
      const key = `${rt.table ?? 'main'} ${rt.dst}`;
      const who = `${ir.ifname} (network ${ir.network})`;
      const other = seen.get(key);
      // Twice from one interface is the network's doing (its routes beside its gateway's
      // default route): a configuration error, not the pod's.
      if (other)
        throw new TartanError(
          other === who ? 'ERR_CONFIG' : 'ERR_IFACE_REQUEST',
          `${other === who ? `${who} routes ${rt.dst} twice` : `${other} and ${who} both route ${rt.dst}`}` +
            `${rt.table === undefined ? '' : ` in table ${rt.table}`}: the kernel keeps one of them`,
        );
      seen.set(key, who);
    }
}

/** Gives a bridge network's veth pair the MTU of the bridge's uplink, if it is known. */
function inheritMtu(x: Prepared, mtu: number | undefined): void {
  if (mtu === undefined) return;
  for (const s of x.steps)
    for (const o of s.ops) if (o.op === 'veth-add' && o.mtu === undefined) o.mtu = mtu;
  x.ir.mtu = mtu;
}

/** Interfaces whose pod link exists because of this ADD (see madeBefore). */
interface Made {
  links: Set<InterfaceRecord>;
  /** A host device moved into the pod that still has its own name (its rename failed). */
  unrenamed: Set<InterfaceRecord>;
}

/**
 * Which pod links the kernel run made, from where it stopped: an interface's link is made by
 * the first op of its first step (steps[0] starts at index at[i] of the run); a host
 * device is renamed by the first op of its second step. Without a position (the run
 * succeeded, or the driver could not tell) every link counts as made.
 */
function madeBefore(pending: Prepared[], at: number[], stop: RunPosition | undefined): Made {
  const made: Made = { links: new Set(), unrenamed: new Set() };
  const before = (step: number, op: number) =>
    !stop || stop.step > step || (stop.step === step && stop.op > op);
  for (const [i, x] of pending.entries()) {
    if (!before(at[i]!, 0)) continue;
    made.links.add(x.ir);
    if (x.ir.hostDevice && x.ir.hostDevice !== x.ir.ifname && !before(at[i]! + 1, 0))
      made.unrenamed.add(x.ir);
  }
  return made;
}

interface Prepared {
  ir: InterfaceRecord;
  net: Network;
  label: string;
  parents: ParentPlan[];
  parent: string | undefined;
  steps: Array<{ t: Target; ops: Op[]; label: string }>;
}

/**
 * Everything for one interface short of kernel work: addresses from the IPAM, names and
 * ops planned, and the record written ahead. Delegates run here, in order.
 */
async function prepareOne(
  deps: Deps,
  r: AttachRequest,
  rec: AttachmentRecord,
  p: PlannedInterface,
  position: number,
): Promise<{ res: CniResult; kernel?: Prepared }> {
  const { state, ipam } = deps;
  // Before the interface is recorded: a refused request leaves nothing to undo.
  for (const key of ['portMappings', 'bandwidth'] as const)
    if (p.req[key] && p.net.spec.type !== 'delegate')
      throw new TartanError(
        'ERR_IFACE_REQUEST',
        `interface ${p.ifname} asks for ${key}, which network ${p.net.metadata.name} (${p.net.spec.type}) does not provide`,
      );
  const rc =
    p.net.spec.type === 'delegate'
      ? delegateRuntimeConfig(p, position === 0 ? r.runtimeConfig : undefined)
      : undefined;
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
    ...(rc ? { runtimeConfig: rc } : {}),
    ...(p.net.spec.type === 'delegate' && p.req.cniArgs ? { cniConfArgs: p.req.cniArgs } : {}),
  };
  rec.interfaces.push(ir);

  if (p.net.spec.type === 'delegate') {
    // Write ahead: the delegate may leave state of its own that only its DEL removes.
    state.putAttachment(rec);
    const env = delegateEnv(
      { ...r, runtimeConfig: ir.runtimeConfig, cniConfArgs: ir.cniConfArgs },
      p.ifname,
    );
    const out = await delegateAdd(p.net.spec.delegate!, env, SUPPORTED_VERSIONS);
    ir.delegate = out;
    ir.state = 'ready';
    state.putAttachment(rec);
    return { res: out.result };
  }

  const spec = p.net.spec;
  if (spec.ipv4 || spec.ipv6) {
    // Write ahead: a process killed once the IPAM has committed must leave a record that
    // names this interface, or no DEL would ever release its address (teardown releases an
    // interface recorded without allocations by its handle).
    state.putAttachment(rec);
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
  } else if ((p.req.ip && p.req.ip !== 'none') || (p.req.ip6 && p.req.ip6 !== 'none')) {
    throw new TartanError(
      'ERR_IFACE_REQUEST',
      `network ${ir.network} has no address ranges; ip/ip6 must be none`,
    );
  }

  // Everything this interface will create is named before any of it exists, and recorded:
  // a crash from here on leaves a record that DEL and GC can undo (undo tolerates absence).
  const parents = planParents(p.net);
  ir.parents = parents.map((x) => x.name);
  const parent = ir.parents.at(-1) ?? spec.device;
  const link = linkOps(r.netns, r.containerId, p.ifname, p.net, parent, ir, p.req.mac);
  const a = planAddressing(p.ifname, p.net, p.req, ir.allocations, position, p.defaultRoute);
  ir.rules = a.rules;
  ir.routes = a.routes;
  state.putAttachment(rec);

  const label = `interface ${p.ifname} (network ${ir.network})`;
  const res: CniResult = {
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
  return {
    res,
    kernel: {
      ir,
      net: p.net,
      label,
      parents,
      parent,
      steps: [
        { t: HOST, ops: link.host, label },
        { t: { ns: r.netns }, ops: [...link.pod, ...a.ops], label },
      ],
    },
  };
}

function delegateEnv(
  r: {
    containerId: string;
    netns: string;
    cniArgs: string | undefined;
    cniPath: string[];
    runtimeConfig?: Record<string, unknown> | undefined;
    cniConfArgs?: Record<string, unknown> | undefined;
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
    ...(r.cniConfArgs ? { cniConfArgs: r.cniConfArgs } : {}),
  };
}

/**
 * A delegated interface's runtimeConfig: the runtime's own (port mappings, bandwidth, ips,
 * mac), for the pod's first interface only (a secondary network must not apply it too,
 * NPWG 7.5), overlaid with what this interface's request asks for. Each of the request's
 * keys needs a plugin that declares that capability, else the request fails (NPWG
 * 4.1.2.1.3): a fixed address or MAC silently dropped is worse than a refusal.
 */
function delegateRuntimeConfig(
  p: PlannedInterface,
  runtime: Record<string, unknown> | undefined,
): Record<string, unknown> | undefined {
  const own: Record<string, unknown> = {};
  const fixed = [p.req.ip, p.req.ip6].filter(
    (a): a is string => a !== undefined && a !== 'dynamic' && a !== 'none',
  );
  if (fixed.length > 0) own.ips = fixed;
  if (p.req.mac) own.mac = p.req.mac;
  if (p.req.portMappings) own.portMappings = p.req.portMappings;
  if (p.req.bandwidth) own.bandwidth = p.req.bandwidth;
  if (Object.keys(own).length > 0) {
    const list = asConflist(p.net.spec.delegate!, SUPPORTED_VERSIONS);
    for (const key of Object.keys(own))
      if (!list.plugins.some((x) => (x.capabilities as Record<string, unknown>)?.[key] === true))
        throw new TartanError(
          'ERR_IFACE_REQUEST',
          `interface ${p.ifname} asks for ${key}, but no plugin of network ${p.net.metadata.name} declares the "${key}" capability`,
        );
  }
  const rc = { ...runtime, ...own };
  return Object.keys(rc).length > 0 ? rc : undefined;
}

/** What an undo could not do, per interface. */
interface Undone {
  ifname: string;
  error: unknown;
}
const undoneText = (u: Undone) => `${u.ifname}: ${(u.error as Error).message}`;

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
  /** From a failed ADD: only these links are this attachment's (DEL: all of them). */
  made?: Made,
): Promise<Undone[]> {
  const { kernel: k, state, ipam } = deps;
  const netnsAlive =
    r.netns !== undefined && (await k.netnsKind(r.netns)) === 'net' ? r.netns : undefined;
  const errors: Undone[] = [];
  for (const ir of [...rec.interfaces].reverse()) {
    try {
      if (ir.delegate || ir.spec.type === 'delegate') {
        // Delegates get DEL even without a netns: they may hold IPAM state of their own.
        // Also when their ADD never answered (it failed, or the process running it was
        // killed while the plugin went on and allocated): DEL without a prevResult.
        await delegateDel(
          ir.delegate?.conflist ?? ir.spec.delegate!,
          ir.delegate?.result,
          delegateEnv(
            {
              ...r,
              netns: netnsAlive ?? '',
              runtimeConfig: ir.runtimeConfig,
              cniConfArgs: ir.cniConfArgs,
            },
            ir.ifname,
          ),
          SUPPORTED_VERSIONS,
        );
        continue;
      }
      if (!made || made.links.has(ir))
        // A host device that kept its own name in the pod goes home under that name.
        await destroyLink(
          k,
          netnsAlive,
          made?.unrenamed.has(ir) ? { ...ir, ifname: ir.hostDevice! } : ir,
        );
      await releaseParents(k, state, ir.parents, user(rec.containerId, ir.ifname));
      if (ir.spec.ipv4 || ir.spec.ipv6)
        await ipam.release({
          network: ir.network,
          spec: ir.spec,
          containerId: rec.containerId,
          ifname: ir.ifname,
          // None recorded: the ADD may have stopped after the IPAM committed (see
          // prepareOne), so whatever the handle holds on the node goes.
          ...(ir.allocations.length > 0 ? { allocations: ir.allocations } : { node: rec.node }),
        });
    } catch (e) {
      errors.push({ ifname: ir.ifname, error: e });
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
  // Where ADD made the links, whatever CNI_NETNS says now: another path may name another
  // pod's namespace, whose links share the names.
  const left = await teardown(deps, rec, { ...r, netns: rec.netns });
  if (left.length > 0) {
    // The first failure's own code: a delegate's "try again later" (11) or a datastore
    // error is what the runtime should see, not a kernel failure.
    const first = left[0]!.error;
    throw new TartanError(
      isTartanError(first) ? first.code : 'ERR_KERNEL',
      `DEL left work undone (will be retried): ${left.map(undoneText).join('; ')}`,
      isTartanError(first) ? { cniCode: first.cniCode, cause: first } : { cause: first },
    );
  }
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
    /**
     * The runtime's prevResult (the ADD's result): the interfaces and addresses CHECK must
     * find, and the chain's final word on MACs and MTUs. Required, as the spec says.
     */
    prevResult?: CniResult | undefined;
  },
): Promise<void> {
  // SPEC (CHECK): "The plugin must consult the prevResult to determine the expected
  // interfaces and addresses"; the reference plugins refuse a CHECK without one.
  const prev = r.prevResult;
  if (!prev)
    throw new TartanError(
      'ERR_CONFIG',
      "required prevResult missing: CHECK needs the ADD's result, which the runtime passes as prevResult",
    );
  const rec = deps.state.getAttachment(r.containerId, r.ifname);
  if (!rec)
    throw new TartanError(
      'ERR_CHECK',
      `no attachment recorded for container ${r.containerId} interface ${r.ifname}`,
    );
  if ((await deps.kernel.netnsKind(r.netns)) !== 'net')
    throw new TartanError('ERR_NETNS', `CNI_NETNS ${r.netns} is not a network namespace`);
  if (!sameNetns(rec.netns, r.netns))
    throw new TartanError(
      'ERR_CHECK',
      `container ${r.containerId} interface ${r.ifname} was attached in ${rec.netns}, not ${r.netns}`,
    );
  for (const ir of rec.interfaces) {
    if (ir.delegate) {
      await delegateCheck(
        ir.delegate.conflist,
        ir.delegate.result,
        delegateEnv(
          { ...r, runtimeConfig: ir.runtimeConfig, cniConfArgs: ir.cniConfArgs },
          ir.ifname,
        ),
        SUPPORTED_VERSIONS,
      );
      continue;
    }
    const said = expectedInPrevResult(prev, ir, r.netns);
    await checkInterface(deps.kernel, r.netns, ir, {
      ...(said.mac ? { mac: said.mac } : {}),
      ...(said.mtu !== undefined ? { mtu: said.mtu } : {}),
    });
    if (ir.allocations.length > 0) {
      // The addresses must still be held for this pod in the IPAM, not only on the link.
      const held = await deps.ipam.find(ir.network, ir.spec, r.containerId, ir.ifname, rec.node);
      for (const a of ir.allocations)
        if (!held.some((h) => h.address === a.address))
          throw new TartanError(
            'ERR_CHECK',
            `interface ${ir.ifname} (network ${ir.network}): address ${a.address} is no longer allocated to this pod in the IPAM`,
          );
    }
  }
}

/**
 * What the prevResult says of an interface Tartan made: it must list it (by name, in the
 * pod's sandbox) with exactly the addresses Tartan recorded for it (ERR_CHECK otherwise).
 * Returns its entry, for the MAC and MTU the chain left it with.
 */
function expectedInPrevResult(prev: CniResult, ir: InterfaceRecord, netns: string): CniInterface {
  const bad = (what: string): never => {
    throw new TartanError('ERR_CHECK', `interface ${ir.ifname} (network ${ir.network}): ${what}`);
  };
  const at = new Set<number>();
  for (const [n, i] of (prev.interfaces ?? []).entries())
    if (i.name === ir.ifname && i.sandbox === netns) at.add(n);
  if (at.size === 0) bad(`the prevResult lists no interface ${ir.ifname} in sandbox ${netns}`);
  const said = new Set(
    (prev.ips ?? [])
      .filter((ip) => ip.interface !== undefined && at.has(ip.interface))
      .map((ip) => canonicalCidr(ip.address)),
  );
  const recorded = new Set(
    ir.allocations.map((a) => canonicalCidr(`${a.address}/${a.prefixLength}`)),
  );
  const missing = [...recorded].filter((c) => !said.has(c));
  const extra = [...said].filter((c) => !recorded.has(c));
  const diffs = [
    ...(missing.length > 0 ? [`lacks ${missing.join(', ')}, which Tartan recorded`] : []),
    ...(extra.length > 0 ? [`has ${extra.join(', ')}, which Tartan did not record`] : []),
  ];
  if (diffs.length > 0) bad(`the prevResult's addresses differ: it ${diffs.join('; it ')}`);
  return prev.interfaces![[...at][0]!]!;
}

/**
 * CNI GC: removes every attachment of this node, made through the runtime's network
 * configuration `cniNetwork`, that the runtime no longer lists (another configuration's are
 * not in its list). Goes on past an attachment it cannot remove (the spec: remove as much
 * as possible, then report). Records from before configurations were recorded count as
 * this one's.
 */
export async function gc(
  deps: Deps,
  valid: { containerId: string; ifname: string }[],
  cniPath: string[],
  cniNetwork?: string,
): Promise<{ removed: number; errors: string[] }> {
  const keep = new Set(valid.map((v) => user(v.containerId, v.ifname)));
  let removed = 0;
  const errors: string[] = [];
  for (const rec of deps.state.listAttachments()) {
    if (keep.has(user(rec.containerId, rec.ifname))) continue;
    if (cniNetwork !== undefined && rec.cniNetwork !== undefined && rec.cniNetwork !== cniNetwork)
      continue;
    try {
      await del(deps, {
        containerId: rec.containerId,
        ifname: rec.ifname,
        netns: rec.netns,
        cniPath,
        cniArgs: undefined,
      });
      removed++;
    } catch (e) {
      errors.push(`${user(rec.containerId, rec.ifname)}: ${(e as Error).message}`);
    }
  }
  return { removed, errors };
}
