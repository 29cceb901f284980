// Kernel driver over iproute2. Ops for one target are sent as a single `ip -batch`, so a
// whole attachment costs one or two processes. Work in a pod netns runs in `ip -n <name>`
// when the netns is a named one (ip switches itself), else under `nsenter --net=<path>`.
import { existsSync, readFileSync, statfsSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { TartanError } from '../cni/errors.js';
import { exec } from './exec.js';
import { NAMED_NS_DIRS, opToArgs } from './ops.js';
import { batchFailure, buildScript, failedStep, type Step } from './script.js';
import {
  atPosition,
  type AddrInfo,
  type Kernel,
  type LinkInfo,
  type NetnsKind,
  type RouteInfo,
  type RuleInfo,
  type Target,
} from './types.js';

const IP = 'ip';

/** argv prefix that runs a command in the target namespace. */
function inTarget(t: Target, tool: string): [string, string[]] {
  if (t.ns === undefined) return [tool, []];
  if (tool === IP && NAMED_NS_DIRS.has(dirname(t.ns))) return [IP, ['-n', basename(t.ns)]];
  return ['nsenter', [`--net=${t.ns}`, '--', tool]];
}

function failure(t: Target, what: string, stderr: string): TartanError {
  const where = t.ns === undefined ? 'host' : `netns ${t.ns}`;
  return new TartanError(
    'ERR_KERNEL',
    `${what} in ${where} failed: ${stderr.trim().split('\n').slice(0, 3).join(' | ')}`,
  );
}

function fail(t: Target, what: string, stderr: string): never {
  throw failure(t, what, stderr);
}

function parseLinks(stdout: string): LinkInfo[] {
  type Raw = {
    ifindex: number;
    ifname: string;
    flags: string[];
    mtu: number;
    address?: string;
    operstate?: string;
    link?: string;
    master?: string;
    linkinfo?: { info_kind?: string; info_data?: { mode?: string; id?: number } };
  };
  const raw = (stdout.trim() === '' ? [] : JSON.parse(stdout)) as Raw[];
  return raw.map((l): LinkInfo => {
    const info: LinkInfo = { ifindex: l.ifindex, ifname: l.ifname, flags: l.flags, mtu: l.mtu };
    if (l.address !== undefined) info.address = l.address;
    if (l.operstate !== undefined) info.operstate = l.operstate;
    if (l.link !== undefined) info.link = l.link;
    if (l.master !== undefined) info.master = l.master;
    const kind = l.linkinfo?.info_kind;
    if (kind !== undefined) info.kind = kind;
    const d = l.linkinfo?.info_data;
    if (d?.mode !== undefined) info.mode = d.mode.toLowerCase();
    if (kind === 'vlan' && d?.id !== undefined) info.vlanId = d.id;
    if (kind === 'vxlan' && d?.id !== undefined) info.vni = d.id;
    return info;
  });
}

export function createKernel(): Kernel {
  async function query<T>(t: Target, args: string[]): Promise<T> {
    const [file, pre] = inTarget(t, IP);
    const r = await exec(file, [...pre, '-j', ...args]);
    if (r.code !== 0) fail(t, `ip ${args.join(' ')}`, r.stderr);
    return (r.stdout.trim() === '' ? [] : JSON.parse(r.stdout)) as T;
  }

  async function run(steps: Step[], opts: { bestEffort?: boolean } = {}): Promise<void> {
    const nonEmpty = steps.filter((s) => s.ops.length > 0);
    if (nonEmpty.length === 0) return;
    const only = nonEmpty[0];
    if (nonEmpty.length === 1 && only) {
      const tools = new Set(only.ops.map((o) => opToArgs(o).tool));
      // A single plain batch needs no shell around it.
      if (tools.size === 1 && tools.has('ip')) {
        const [file, pre] = inTarget(only.t, IP);
        const input = only.ops.map((o) => opToArgs(o).args.join(' ')).join('\n') + '\n';
        const force = opts.bestEffort ? ['-force'] : [];
        const r = await exec(file, [...pre, ...force, '-batch', '-'], input);
        if (r.code !== 0 && !opts.bestEffort) {
          const e = failure(
            only.t,
            `ip ${only.ops.map((o) => opToArgs(o).args.slice(0, 3).join(' ')).join('; ')}`,
            r.stderr,
          );
          const line = batchFailure(r.stderr);
          throw line === undefined ? e : atPosition(e, { step: steps.indexOf(only), op: line });
        }
        return;
      }
    }
    const { script, labels } = buildScript(steps, { bestEffort: opts.bestEffort === true });
    const r = await exec('sh', ['-s'], script);
    if (r.code !== 0 && !opts.bestEffort) {
      const f = failedStep(r.stderr, labels);
      const e = new TartanError('ERR_KERNEL', `${f.label} failed: ${f.message}`);
      throw f.at ? atPosition(e, f.at) : e;
    }
  }

  return {
    driver: 'iproute2',
    async apply(t, ops, opts = {}) {
      await run([{ t, ops }], opts);
    },
    async run(steps, opts = {}) {
      return run(steps, opts);
    },
    async links(t) {
      const [file, pre] = inTarget(t, IP);
      const r = await exec(file, [...pre, '-j', '-d', 'link', 'show']);
      if (r.code !== 0) fail(t, 'ip link show', r.stderr);
      return parseLinks(r.stdout);
    },
    async linkExists(name) {
      // sysfs shows the links of the netns it was mounted in: the process's own, also under
      // `ip netns exec`, which remounts it. No process spawn for the common check.
      return existsSync(`/sys/class/net/${name}`);
    },
    async linkKind(name) {
      let uevent: string;
      try {
        uevent = readFileSync(`/sys/class/net/${name}/uevent`, 'utf8');
      } catch {
        return undefined;
      }
      return /^DEVTYPE=(.*)$/m.exec(uevent)?.[1] ?? '';
    },
    async addresses(t) {
      type Raw = {
        ifname: string;
        addr_info?: {
          family: string;
          local: string;
          prefixlen: number;
          tentative?: boolean;
          dadfailed?: boolean;
          nodad?: boolean;
        }[];
      };
      const raw = await query<Raw[]>(t, ['addr', 'show']);
      return raw.flatMap((l) =>
        (l.addr_info ?? []).map((a): AddrInfo => ({
          dev: l.ifname,
          family: a.family === 'inet6' ? 6 : 4,
          cidr: `${a.local}/${a.prefixlen}`,
          flags: [
            a.tentative ? 'tentative' : '',
            a.dadfailed ? 'dadfailed' : '',
            a.nodad ? 'nodad' : '',
          ].filter(Boolean),
        })),
      );
    },
    async routes(t, table) {
      type Raw = {
        dst: string;
        gateway?: string;
        dev?: string;
        table?: string;
        protocol?: string;
        scope?: string;
      };
      const tbl = ['table', table === undefined ? 'main' : String(table)];
      const [v4, v6] = await Promise.all([
        query<Raw[]>(t, ['-4', 'route', 'show', ...tbl]),
        query<Raw[]>(t, ['-6', 'route', 'show', ...tbl]),
      ]);
      return [...v4, ...v6].map((r): RouteInfo => {
        const o: RouteInfo = { dst: r.dst };
        if (r.gateway !== undefined) o.gw = r.gateway;
        if (r.dev !== undefined) o.dev = r.dev;
        if (r.table !== undefined) o.table = r.table;
        if (r.protocol !== undefined) o.protocol = r.protocol;
        if (r.scope !== undefined) o.scope = r.scope;
        return o;
      });
    },
    async rules(t) {
      type Raw = { priority: number; src?: string; srclen?: number; table: string };
      const [v4, v6] = await Promise.all([
        query<Raw[]>(t, ['-4', 'rule', 'show']),
        query<Raw[]>(t, ['-6', 'rule', 'show']),
      ]);
      const map =
        (fam: 4 | 6) =>
        (r: Raw): RuleInfo => {
          const o: RuleInfo = { priority: r.priority, table: r.table, family: fam };
          if (r.src !== undefined) o.src = r.src;
          if (r.srclen !== undefined) o.srclen = r.srclen;
          return o;
        };
      return [...v4.map(map(4)), ...v6.map(map(6))];
    },
    netnsKind,
  };
}

const NSFS_MAGIC = 0x6e736673;

/**
 * A netns path must name a namespace file (nsfs), not a regular file or a directory. Which
 * kind of namespace it is can only be learnt by entering it, so that costs a process and
 * is done only when `precise` is asked for (e.g. after the kernel refused the path).
 */
export async function netnsKind(path: string, precise = false): Promise<NetnsKind> {
  if (/^\/proc\/[^/]+\/ns\/(?!net$)/.test(path)) return 'not-netns';
  try {
    if (statfsSync(path).type !== NSFS_MAGIC) return 'not-netns';
  } catch {
    return 'missing';
  }
  if (!precise) return 'net';
  const r = await exec('nsenter', [`--net=${path}`, 'true']);
  return r.code === 0 ? 'net' : 'not-netns';
}
