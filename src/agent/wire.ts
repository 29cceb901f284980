// The shim <-> agent protocol over the unix socket: one connection per CNI call, the shim
// writes one JSON request and half-closes, the agent answers with one JSON response and
// closes. Nothing here imports anything: the shim loads this on every pod ADD.

/** Wire format version; the agent refuses a request of another version (code 11). */
export const WIRE_VERSION = 1;

/** Upper bound for a request: stdin (1 MiB, see MAX_STDIN) plus the environment. */
export const MAX_REQUEST = (1 << 20) + (64 << 10);

export const DEFAULT_SOCKET = '/run/tartan/agent.sock';
export const DEFAULT_STATE_DIR = '/var/lib/tartan';

/** The CNI_* variables the runtime gave the shim, and stdin exactly as read. */
export interface WireRequest {
  v: number;
  env: Record<string, string>;
  stdin: string;
}

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

export function isWireResponse(v: unknown): v is WireResponse {
  const r = v as WireResponse | null;
  return (
    typeof r === 'object' && r !== null && Number.isInteger(r.code) && typeof r.stdout === 'string'
  );
}
