// Kernel work of one CNI call done by the shim that made it, for an agent without netlink
// of its own (koffi could not load, or --kernel-driver iproute2; ADR 0010). The shim is the
// Bun-built `tartan` binary and speaks rtnetlink itself (src/kernel/netlink); such an agent's
// only way is an iproute2 process per namespace (~8 ms of every ADD). Reads
// (CHECK, parents) stay in the agent. When the shim cannot help (no FFI) or is gone (killed
// by the runtime's timeout) the agent's own driver takes over for the rest of the call: an
// interrupted run is then repeated locally, which the pipeline's undo tolerates.
import { TartanError, type TartanCode } from '../cni/errors.js';
import { atPosition, runPosition, type Kernel, type Step } from '../kernel/types.js';
import { SELF_NETNS, type KernelCall, type KernelReply } from './wire.js';

/** The shim's end of the connection, as the agent sees it. */
export interface ShimPeer {
  /** Sends a frame; false if the connection is gone. */
  send(frame: KernelCall): boolean;
  /** The next reply, or undefined once the connection is gone. */
  reply(id: number): Promise<KernelReply | undefined>;
}

/** This process's own netns, as ops name it (links.ts: a host device's way home). */
const ownNetns = () => `/proc/${process.pid}/ns/net`;

/** The steps with one netns path (a link's destination) named another way. */
function renameNetns(steps: Step[], from: string, to: string): Step[] {
  return steps.map((s) => ({
    ...s,
    ops: s.ops.map((o) => (o.op === 'link-set' && o.intoNs === from ? { ...o, intoNs: to } : o)),
  }));
}

export function peerKernel(peer: ShimPeer, local: Kernel): Kernel & { remote(): number } {
  let next = 1;
  let remote = 0;
  let gone = false;
  async function run(steps: Step[], opts: { bestEffort?: boolean } = {}): Promise<void> {
    if (!gone) {
      const id = next++;
      const frame = {
        // The agent's own netns means the shim's (both live in the host's).
        kernel: {
          id,
          steps: renameNetns(steps, ownNetns(), SELF_NETNS),
          bestEffort: opts.bestEffort === true,
        },
      };
      const sent = peer.send(frame);
      const r = sent ? await peer.reply(id) : undefined;
      if (r?.ok) {
        remote++;
        return;
      }
      if (r?.error) {
        const e = new TartanError(r.error.code as TartanCode, r.error.message);
        const at = runPosition({ runPosition: r.error.at });
        throw at ? atPosition(e, at) : e;
      }
      gone = true; // unavailable, or the shim went away: the agent carries on alone
      if (sent && !r) return replay(steps, opts);
    }
    return local.run(steps, opts);
  }
  /**
   * This run again, after the shim went away in the middle of it: what the replay finds
   * made (EEXIST at a creating op) may be the shim's work, not someone else's, so its error
   * says nothing of where it stopped and the undo removes by name (ADR 0011). With the
   * position, a parent the shim made was recorded as an operator's and never removed.
   */
  async function replay(steps: Step[], opts: { bestEffort?: boolean }): Promise<void> {
    try {
      await local.run(steps, opts);
    } catch (e) {
      if (runPosition(e)) delete (e as { runPosition?: unknown }).runPosition;
      throw e;
    }
  }
  return {
    apply: (t, ops, opts) => run([{ t, ops }], opts),
    run,
    links: (t) => local.links(t),
    linkExists: (name) => local.linkExists(name),
    linkKind: (name) => local.linkKind(name),
    addresses: (t) => local.addresses(t),
    routes: (t, table) => local.routes(t, table),
    rules: (t) => local.rules(t),
    netnsKind: (path, precise) => local.netnsKind(path, precise),
    /** How many runs the shim did (logged per call). */
    remote: () => remote,
  };
}

/** The shim side: ops as the agent sent them, with its own netns named for this process. */
export const localSteps = (steps: Step[]): Step[] => renameNetns(steps, SELF_NETNS, ownNetns());
