// The `tartan` executable in shim mode (the plugin config names an `agentSocket`): it
// forwards the CNI call to the node agent and prints the agent's answer, so codes and
// results are the agent's. Only the agent-down paths are decided here: ADD fails fast with
// "try again later" (the runtime retries; waiting here would hold kubelet's sandbox worker),
// DEL is queued on disk and succeeds (a failing DEL blocks pod deletion until the agent is
// back). This module and its imports are all the shim evaluates: no validation schemas, yaml or SQLite.
// node:net and the DEL queue (node:crypto) are imported where used: each builtin costs
// the Bun binary ~1 ms of start-up, and VERSION needs neither.
import { CniCode, TartanError } from '../cni/errors.js';
import { errorResponse, parseStdin, versionResponse } from '../cni/protocol.js';
import {
  DEFAULT_STATE_DIR,
  MAX_REQUEST,
  WIRE_VERSION,
  isWireResponse,
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

export async function runShim(
  conf: ShimConfig,
  vars: Record<string, string>,
  stdin: string,
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
  const req: WireRequest = { v: WIRE_VERSION, env: vars, stdin };
  const timeout =
    typeof conf.agentTimeoutSeconds === 'number' && conf.agentTimeoutSeconds > 0
      ? conf.agentTimeoutSeconds
      : DEFAULT_TIMEOUT_S;
  const r = await call(conf.agentSocket, req, timeout * 1000);
  if ('response' in r) return r.response;

  const why = `the Tartan node agent at ${conf.agentSocket} ${r.sent ? 'dropped the request' : 'is not reachable'} (${r.error})`;
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

function fail(e: unknown, cniVersion: unknown): WireResponse {
  return { code: 1, stdout: JSON.stringify(errorResponse(e, cniVersion)) + '\n' };
}

type CallResult = { response: WireResponse } | { error: string; sent: boolean };

/** One request, one response; never rejects. */
async function call(path: string, req: WireRequest, timeoutMs: number): Promise<CallResult> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    let sent = false;
    let done = false;
    const chunks: Buffer[] = [];
    let size = 0;
    const sock = connect(path);
    const finish = (r: CallResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(
      () => finish({ error: `no answer within ${timeoutMs / 1000} s`, sent }),
      timeoutMs,
    );
    sock.on('connect', () => {
      sent = true;
      sock.end(JSON.stringify(req));
    });
    sock.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_REQUEST) return finish({ error: 'answer too large', sent });
      chunks.push(d);
    });
    sock.on('end', () => {
      let v: unknown;
      try {
        v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return finish({ error: 'connection closed before an answer', sent });
      }
      finish(isWireResponse(v) ? { response: v } : { error: 'malformed answer', sent });
    });
    sock.on('error', (e: NodeJS.ErrnoException) => finish({ error: e.code ?? e.message, sent }));
  });
}
