// The `tartan` executable in shim mode (the plugin config names an `agentSocket`): it
// forwards the CNI call to the node agent and prints the agent's answer, so codes and
// results are the agent's. Only the agent-down paths are decided here: ADD fails fast with
// "try again later" (the runtime retries; waiting here would hold kubelet's sandbox worker),
// DEL is queued on disk and succeeds (a failing DEL blocks pod deletion until the agent is
// back). An agent without netlink of its own (koffi could not load) hands this call's
// kernel steps back to the shim, which applies them over netlink (peer-kernel.ts). This
// module and its imports are all the shim evaluates: no validation schemas, yaml or SQLite.
// The socket (shim-socket.ts), the DEL queue (node:crypto) and the netlink driver are
// imported where used: each costs the Bun binary start-up, and VERSION needs none of them.
import { CniCode, isTartanError, TartanError } from '../cni/errors.js';
import { errorResponse, parseStdin, versionResponse } from '../cni/protocol.js';
import { mark } from '../cni/trace.js';
import { runPosition, type Kernel, type Step } from '../kernel/types.js';
import { localSteps } from './peer-kernel.js';
import type { Conn } from './shim-socket.js';
import {
  DEFAULT_STATE_DIR,
  WIRE_VERSION,
  isWireResponse,
  lineReader,
  type KernelCall,
  type KernelReply,
  type WireRequest,
  type WireResponse,
} from './wire.js';

export interface ShimConfig {
  agentSocket: string;
  cniVersion?: unknown;
  stateDir?: unknown;
  /** Seconds to wait for the agent's answer (an ADD includes kernel and datastore work). */
  agentTimeoutSeconds?: unknown;
}

const DEFAULT_TIMEOUT_S = 240;
const MAX_TIMEOUT_S = 2_147_483;

function versionRefused(r: WireResponse): boolean {
  try {
    return (
      r.code !== 0 &&
      (JSON.parse(r.stdout) as { details?: unknown }).details === 'ERR_AGENT_VERSION'
    );
  } catch {
    return false;
  }
}

export async function runShim(
  conf: ShimConfig,
  vars: Record<string, string>,
  stdin: string,
  /** Tests: a shim of another version. */
  wireVersion = WIRE_VERSION,
): Promise<WireResponse> {
  const command = vars.CNI_COMMAND;
  // VERSION must answer without the agent (runtimes probe it before anything else).
  if (command === 'VERSION') {
    try {
      const raw = stdin.trim() === '' ? {} : parseStdin(stdin);
      return { code: 0, stdout: JSON.stringify(versionResponse(raw.cniVersion)) + '\n' };
    } catch (e) {
      return fail(e, conf.cniVersion);
    }
  }
  // As the configuration schema has it (src/cni/config.ts): the runtime's working directory
  // must not decide which agent, or which queue, a call goes to.
  for (const k of ['agentSocket', 'stateDir'] as const)
    if (typeof conf[k] === 'string' && !conf[k].startsWith('/'))
      return fail(
        new TartanError(
          'ERR_CONFIG',
          `invalid network configuration: ${k}: must be an absolute path`,
        ),
        conf.cniVersion,
      );
  const req: WireRequest = { v: wireVersion, env: vars, stdin };
  // A timer holds at most 2^31-1 ms (~24.8 days): above that it fires at once.
  const timeout =
    typeof conf.agentTimeoutSeconds === 'number' && conf.agentTimeoutSeconds > 0
      ? Math.min(conf.agentTimeoutSeconds, MAX_TIMEOUT_S)
      : DEFAULT_TIMEOUT_S;
  const r = await call(conf.agentSocket, req, timeout * 1000);
  // An agent of another wire version could not take the DEL: queued as if it were down,
  // for the agent that replaces it (a failed DEL would hold the pod until versions match).
  if ('response' in r && !(command === 'DEL' && versionRefused(r.response))) return r.response;

  const why =
    'response' in r
      ? `the Tartan node agent at ${conf.agentSocket} speaks another wire version`
      : `the Tartan node agent at ${conf.agentSocket} ${r.sent ? 'dropped the request' : 'is not reachable'} (${r.error})`;
  if (command === 'DEL') {
    const stateDir = typeof conf.stateDir === 'string' ? conf.stateDir : DEFAULT_STATE_DIR;
    try {
      const { pendingDir, queueDel } = await import('./pending.js');
      await queueDel(pendingDir(stateDir), req);
      return { code: 0, stdout: '' };
    } catch (e) {
      return fail(
        new TartanError(
          'ERR_INTERNAL',
          `${why}, and queueing the DEL failed: ${(e as Error).message}`,
          {
            cniCode: CniCode.TryAgainLater,
            details: 'ERR_AGENT_UNAVAILABLE',
          },
        ),
        conf.cniVersion,
      );
    }
  }
  return fail(
    new TartanError('ERR_INTERNAL', `${why}; try again later`, {
      // STATUS has its own code for "not available" (CNI spec 1.1).
      cniCode: command === 'STATUS' ? CniCode.PluginNotReady : CniCode.TryAgainLater,
      details: 'ERR_AGENT_UNAVAILABLE',
    }),
    conf.cniVersion,
  );
}

/**
 * The shim-only build (dist/tartan-shim, what the DaemonSet installs) given a configuration
 * without agentSocket: VERSION is answered (runtimes probe it with any configuration);
 * anything else is refused, since this build carries no core to run the call itself.
 */
export function withoutAgent(
  vars: Record<string, string>,
  stdin: string,
  readError: unknown,
): WireResponse {
  const version = vars.CNI_COMMAND === 'VERSION';
  let raw: { cniVersion?: unknown } = {};
  try {
    // As in-process: VERSION tolerates an unreadable stdin, not an oversized one.
    if (readError !== undefined && (!version || isTartanError(readError, 'ERR_DECODE')))
      throw readError;
    const text = readError === undefined ? stdin : '';
    raw = text.trim() === '' ? {} : parseStdin(text);
    if (version) return { code: 0, stdout: JSON.stringify(versionResponse(raw.cniVersion)) + '\n' };
    throw new TartanError(
      'ERR_CONFIG',
      "this tartan is the node agent's shim (the DaemonSet installs it): its plugin config " +
        'must name agentSocket; the full build (dist/tartan) runs calls without an agent',
    );
  } catch (e) {
    return fail(e, raw.cniVersion);
  }
}

function fail(e: unknown, cniVersion: unknown): WireResponse {
  return { code: 1, stdout: JSON.stringify(errorResponse(e, cniVersion)) + '\n' };
}

type CallResult = { response: WireResponse } | { error: string; sent: boolean };

/**
 * The netlink driver, or why this process cannot have it (then the agent does the work).
 * Loaded on the first kernel call only: an agent with netlink of its own sends none, and
 * loading it (~1 ms of CPU) would compete with the agent for the node's cores.
 */
let driver: Promise<Kernel | string> | undefined;
const netlinkDriver = async () => (await import('../kernel/index.js')).netlinkKernel();

/** Applies the kernel steps the agent sent for this call (wire.ts). */
async function applyKernel(call: KernelCall['kernel']): Promise<KernelReply> {
  driver ??= netlinkDriver();
  const k = await driver;
  if (typeof k === 'string') return { id: call.id, unavailable: k };
  try {
    await k.run(localSteps(call.steps as Step[]), { bestEffort: call.bestEffort });
    return { id: call.id, ok: true };
  } catch (e) {
    const err = isTartanError(e) ? e : new TartanError('ERR_KERNEL', (e as Error).message);
    const at = runPosition(e);
    return { id: call.id, error: { code: err.code, message: err.message, ...(at ? { at } : {}) } };
  }
}

/** One request, kernel calls answered on the way, one response; never rejects. */
async function call(path: string, req: WireRequest, timeoutMs: number): Promise<CallResult> {
  const { connectUnix } = await import('./shim-socket.js');
  return new Promise((resolve) => {
    let sent = false;
    let done = false;
    let work = Promise.resolve();
    let conn: Conn | undefined;
    // Answers false: no further line is read.
    const finish = (r: CallResult) => {
      if (done) return false;
      done = true;
      clearTimeout(timer);
      conn?.destroy();
      resolve(r);
      return false;
    };
    const timer = setTimeout(
      () => finish({ error: `no answer within ${timeoutMs / 1000} s`, sent }),
      timeoutMs,
    );
    const onLine = (line: string): boolean => {
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch {
        return finish({ error: 'malformed answer', sent });
      }
      const k = (v as Partial<KernelCall> | null)?.kernel;
      if (k && Number.isInteger(k.id) && Array.isArray(k.steps)) {
        // In order, one at a time: the agent waits for each answer anyway.
        work = work.then(async () => {
          mark('shim: kernel call');
          const reply = await applyKernel(k);
          mark('shim: kernel done');
          if (!done) conn?.write(JSON.stringify(reply) + '\n');
        });
        return true;
      }
      return finish(isWireResponse(v) ? { response: v } : { error: 'malformed answer', sent });
    };
    const lines = lineReader(onLine);
    void connectUnix(path, {
      open(c) {
        mark('shim: connected');
        conn = c;
        sent = true;
        c.write(JSON.stringify(req) + '\n');
      },
      data(d) {
        if (!done && !lines.push(d)) finish({ error: 'answer too large', sent });
      },
      end() {
        const text = lines.rest();
        if (text.trim() !== '' && !done) onLine(text);
        finish({ error: 'connection closed before an answer', sent });
      },
      error: (code) => finish({ error: code, sent }),
    }).then((c) => {
      conn ??= c;
      if (done) c.destroy();
    });
  });
}
