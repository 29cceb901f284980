// The shim <-> agent protocol over the unix socket: one connection per CNI call, frames of
// one JSON object per line (JSON.stringify never emits a raw newline). The shim writes its
// request; an agent without netlink of its own (koffi unavailable) may then ask the shim to
// apply kernel steps (the shim speaks netlink through bun:ffi; the agent would spawn
// iproute2: ~8 ms per ADD), the shim answers each; the agent ends with the response and
// closes. Version 1 shims wrote the request and half-closed, and are still served (kernel
// work then stays in the agent).
// Nothing here imports anything: the shim loads this on every pod ADD.

/** Wire format version of this shim; the agent serves these and refuses others (code 11). */
export const WIRE_VERSION = 2;
export const WIRE_VERSIONS: readonly number[] = [1, 2];

/**
 * Upper bound for a request: stdin (1 MiB, see MAX_STDIN) as a JSON string, which escaping
 * can double (every quote and backslash of a configuration gains a backslash), plus the
 * environment.
 */
export const MAX_REQUEST = 2 * (1 << 20) + (64 << 10);

export const DEFAULT_SOCKET = '/run/tartan/agent.sock';
export const DEFAULT_STATE_DIR = '/var/lib/tartan';

/** The CNI_* variables the runtime gave the shim, and stdin exactly as read. */
export interface WireRequest {
  v: number;
  env: Record<string, string>;
  stdin: string;
}

/** Agent -> shim: apply these kernel steps (src/kernel/types.ts Kernel.run) and answer. */
export interface KernelCall {
  kernel: { id: number; steps: unknown[]; bestEffort: boolean };
}

/**
 * Shim -> agent: the outcome of a KernelCall. `unavailable`: the shim cannot do kernel
 * work (no FFI), the agent does it itself.
 */
export interface KernelReply {
  id: number;
  ok?: true;
  /** `at`: where the run stopped, when the driver knows (kernel/types.ts RunPosition). */
  error?: { code: string; message: string; at?: { step: number; op: number } };
  unavailable?: string;
}

/** The agent's own netns in an op ("/proc/<agent pid>/ns/net") as the shim must read it. */
export const SELF_NETNS = '@self';

/** What the shim prints on stdout and its exit status. */
export interface WireResponse {
  code: number;
  stdout: string;
}

/** The environment the core reads (src/cni/protocol.ts readEnv) plus the debug switch. */
export function cniVars(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env))
    if (v !== undefined && (k.startsWith('CNI_') || k === 'TARTAN_DEBUG')) out[k] = v;
  return out;
}

/** A request as the shim sends it: anything else (a foreign or garbled client) is refused. */
export function isWireRequest(v: unknown): v is WireRequest {
  const r = v as WireRequest | null;
  return (
    typeof r === 'object' &&
    r !== null &&
    Number.isInteger(r.v) &&
    typeof r.stdin === 'string' &&
    typeof r.env === 'object' &&
    r.env !== null &&
    !Array.isArray(r.env) &&
    Object.values(r.env).every((x) => typeof x === 'string')
  );
}

export function isWireResponse(v: unknown): v is WireResponse {
  const r = v as WireResponse | null;
  return (
    typeof r === 'object' && r !== null && Number.isInteger(r.code) && typeof r.stdout === 'string'
  );
}

/**
 * Cuts a byte stream into lines (the frames above). push() hands each complete line to
 * onLine until that returns false, and answers false once a line is over `max` bytes;
 * rest() is what came after the last newline.
 */
export function lineReader(onLine: (line: string) => boolean, max = MAX_REQUEST) {
  let pending: Uint8Array[] = [];
  let size = 0;
  const take = (last: Uint8Array) => {
    const text = Buffer.concat([...pending, last]).toString('utf8');
    pending = [];
    size = 0;
    return text;
  };
  return {
    push(d: Uint8Array): boolean {
      let rest = d;
      for (let at = rest.indexOf(0x0a); at >= 0; at = rest.indexOf(0x0a)) {
        if (size + at > max) return false;
        const line = take(rest.subarray(0, at));
        rest = rest.subarray(at + 1);
        if (!onLine(line)) return true;
      }
      if (rest.length > 0) {
        pending.push(rest);
        size += rest.length;
      }
      return size <= max;
    },
    rest: () => take(new Uint8Array(0)),
  };
}
