// Kernel driver that speaks rtnetlink from the process itself (bun:ffi), for the Bun-built
// CNI executable: no iproute2 process per attachment. Ops mean exactly what the iproute2
// driver makes of them (ops.ts gives the command, encode-ops.ts sends that command's
// request). Reads other than addresses stay on iproute2: they are not on the ADD path.
import { TartanError } from '../../cni/errors.js';
import { createKernel, netnsKind } from '../iproute.js';
import { SYSCTL_KEY_RE, opToArgs } from '../ops.js';
import { atPosition, type Kernel, type Op, type Step, type Target } from '../types.js';
import { readAddresses } from './read.js';
import { encodeOp } from './encode-ops.js';
import { isStranded, loadLibc, type Libc } from './ffi.js';
import { Session } from './session.js';

const where = (t: Target): string => (t.ns === undefined ? 'host' : `netns ${t.ns}`);

/** The op as the iproute2 command it stands for, so both drivers' errors read alike. */
function describe(o: Op): string {
  if (o.op === 'sysctl') return `sysctl ${o.key}=${o.value}`;
  const { tool, args } = opToArgs(o);
  return `${tool === 'ip6' ? 'ip -6' : tool} ${args.join(' ')}`;
}

/**
 * Ops that take a device out of a namespace (deletion, a move to another netns): the kernel
 * answers them only after an RCU grace period, 10-50 ms.
 */
const slow = (o: Op): boolean => o.op === 'link-del' || (o.op === 'link-set' && !!o.intoNs);

async function applyOp(s: Session, t: Target, o: Op): Promise<void> {
  // Host ops need no switch, but the thread they would run on is no longer in the host.
  if (isStranded()) throw new Error('the thread could not return to its own netns');
  if (o.op === 'sysctl') return s.sysctl(t, o.key, o.value);
  const conn = s.conn(t);
  try {
    const msg = encodeOp(o, { ifindex: (n) => conn.ifindex(n), nsFd: (p) => s.nsFd(p) });
    if (slow(o)) await conn.sock.transactSlow(msg, 'ack');
    else conn.sock.transact(msg, 'ack');
  } finally {
    if (o.op === 'link-del' || (o.op === 'link-set' && (o.newName || o.intoNs)))
      conn.forget(o.name);
  }
}

/** Runs one step; a failure records its position (step index given, op index here). */
async function runStep(
  s: Session,
  { t, ops, label }: Step,
  bestEffort: boolean,
  index: number,
): Promise<void> {
  s.prepare(t, ops);
  for (const [i, o] of ops.entries()) {
    try {
      await applyOp(s, t, o);
    } catch (e) {
      // `ip -force -batch`: go on. Never after a failed switch back to our netns.
      if (bestEffort && !isStranded()) continue;
      const reason = e instanceof Error ? e.message : String(e);
      const pre = label ? `${label}: ` : '';
      const msg = `${pre}${describe(o)} in ${where(t)} failed: ${reason}`;
      throw atPosition(new TartanError('ERR_KERNEL', msg, { cause: e }), { step: index, op: i });
    }
  }
}

async function libc(): Promise<Libc> {
  try {
    return await loadLibc();
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new TartanError('ERR_KERNEL', `netlink driver unavailable: ${msg}`, { cause: e });
  }
}

export function createNetlinkKernel(): Kernel {
  const ip = createKernel();

  async function run(steps: Step[], opts: { bestEffort?: boolean } = {}): Promise<void> {
    if (!steps.some((s) => s.ops.length > 0)) return;
    // Like the iproute2 driver's script builder: a bad key refuses the whole run up front.
    for (const { ops } of steps)
      for (const o of ops)
        if (o.op === 'sysctl' && !SYSCTL_KEY_RE.test(o.key))
          throw new TartanError('ERR_KERNEL', `bad sysctl key ${o.key}`);
    const s = new Session(await libc());
    try {
      for (const [i, step] of steps.entries())
        if (step.ops.length > 0) await runStep(s, step, opts.bestEffort === true, i);
    } finally {
      s.close();
    }
  }

  return {
    driver: 'netlink',
    apply: (t, ops, opts = {}) => run([{ t, ops }], opts),
    run: (steps, opts = {}) => run(steps, opts),
    links: (t) => ip.links(t),
    linkExists: (name) => ip.linkExists(name),
    linkKind: (name) => ip.linkKind(name),
    async addresses(t) {
      const s = new Session(await libc());
      try {
        const conn = s.conn(t);
        return readAddresses((req) => conn.sock.transact(req, 'dump'));
      } catch (e) {
        const reason = e instanceof Error ? e.message : String(e);
        throw new TartanError('ERR_KERNEL', `ip addr show in ${where(t)} failed: ${reason}`, {
          cause: e,
        });
      } finally {
        s.close();
      }
    },
    routes: (t, table) => ip.routes(t, table),
    rules: (t) => ip.rules(t),
    netnsKind,
  };
}
