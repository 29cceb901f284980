// The CNI execution protocol: environment and stdin in, result or error JSON out. The
// conversion of any failure to the spec's error object happens here and nowhere else.
import { TartanError } from './errors.js';
import { LATEST_VERSION, SUPPORTED_VERSIONS, isSupportedVersion } from './spec.js';

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION'] as const;
export type Command = (typeof COMMANDS)[number];

export interface CniEnv {
  command: Command;
  containerId: string;
  netns: string;
  ifname: string;
  args: string | undefined;
  path: string[];
}

/** Upper bound for stdin: a conflist entry with a prevResult is a few KiB. */
export const MAX_STDIN = 1 << 20;

const CONTAINER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
// libcni's own rule (at most 15 characters, no "/", ":" or white space). Tartan's is
// stricter, for ADD and CHECK; a DEL of a name only libcni takes must not fail, or the
// runtime retries it for ever: no ADD of that name ever got through.
const LIBCNI_IFNAME_RE = /^[^/:\s]{1,15}$/u;

export function readEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND;
  if (!command) throw new TartanError('ERR_ENV', 'CNI_COMMAND is not set');
  if (!(COMMANDS as readonly string[]).includes(command))
    throw new TartanError('ERR_ENV', `unknown CNI_COMMAND ${JSON.stringify(command.slice(0, 32))}`);
  const c = command as Command;
  const needsAttachment = c === 'ADD' || c === 'DEL' || c === 'CHECK';
  const containerId = env.CNI_CONTAINERID ?? '';
  const ifname = env.CNI_IFNAME ?? '';
  const netns = env.CNI_NETNS ?? '';
  if (needsAttachment) {
    if (!CONTAINER_ID_RE.test(containerId) || containerId.length > 1024)
      throw new TartanError(
        'ERR_ENV',
        'CNI_CONTAINERID must be set and contain only letters, digits, "_", "." and "-"',
      );
    const nameOk = c === 'DEL' ? LIBCNI_IFNAME_RE.test(ifname) : IFNAME_RE.test(ifname);
    if (!nameOk || ifname === '.' || ifname === '..')
      throw new TartanError(
        'ERR_ENV',
        c === 'DEL'
          ? `CNI_IFNAME ${JSON.stringify(ifname.slice(0, 32))} is not a valid interface name (1-15 characters, no "/", ":" or white space)`
          : `CNI_IFNAME ${JSON.stringify(ifname.slice(0, 32))} is not a valid interface name (1-15 of letters, digits, "_", "." or "-")`,
      );
    // The kernel keeps these for /proc/sys/net/*/conf (isReservedIfname in config.ts, not
    // imported: the shim reads the environment too). DEL of such a name has nothing to undo.
    if (c !== 'DEL' && (ifname === 'all' || ifname === 'default'))
      throw new TartanError(
        'ERR_ENV',
        `CNI_IFNAME ${ifname} is a name the kernel keeps for itself, no interface can have it`,
      );
    if ((c === 'ADD' || c === 'CHECK') && netns === '')
      throw new TartanError('ERR_ENV', 'CNI_NETNS is not set');
    if (netns !== '' && !netns.startsWith('/'))
      throw new TartanError('ERR_ENV', 'CNI_NETNS must be an absolute path');
  }
  return {
    command: c,
    containerId,
    netns,
    ifname,
    args: env.CNI_ARGS,
    path: (env.CNI_PATH ?? '').split(':').filter((p) => p !== ''),
  };
}

export function parseStdin(raw: string): Record<string, unknown> {
  if (raw.length > MAX_STDIN)
    throw new TartanError('ERR_DECODE', `network configuration is larger than ${MAX_STDIN} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (e) {
    throw new TartanError(
      'ERR_DECODE',
      `network configuration is not valid JSON: ${(e as Error).message}`,
    );
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new TartanError('ERR_DECODE', 'network configuration must be a JSON object');
  if (deeperThan(v, MAX_DEPTH))
    throw new TartanError(
      'ERR_DECODE',
      `network configuration is nested deeper than ${MAX_DEPTH} levels`,
    );
  return v as Record<string, unknown>;
}

/**
 * How deep JSON from outside may nest (a CNI configuration nests a few levels; a pod's
 * cni-args or a delegate configuration are CNI JSON too): code that walks it recursively
 * (merging, copying, printing) would otherwise run out of stack, an internal error.
 */
export const MAX_DEPTH = 32;

/** Whether a parsed JSON value nests objects or arrays deeper than `max` (iteratively). */
export function deeperThan(v: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[v, 1]];
  while (stack.length > 0) {
    const [x, d] = stack.pop()!;
    if (typeof x !== 'object' || x === null) continue;
    if (d > max) return true;
    for (const y of Object.values(x)) stack.push([y, d + 1]);
  }
  return false;
}

export function versionResponse(stdinVersion: unknown): Record<string, unknown> {
  const v =
    typeof stdinVersion === 'string' && isSupportedVersion(stdinVersion)
      ? stdinVersion
      : LATEST_VERSION;
  return { cniVersion: v, supportedVersions: [...SUPPORTED_VERSIONS] };
}

/** The spec's error object; the message names the cause, details carry the chain. */
export function errorResponse(e: unknown, cniVersion: unknown): Record<string, unknown> {
  const v =
    typeof cniVersion === 'string' && isSupportedVersion(cniVersion) ? cniVersion : LATEST_VERSION;
  if (e instanceof TartanError) {
    const out: Record<string, unknown> = { cniVersion: v, code: e.cniCode, msg: e.message };
    out.details = e.details ?? e.code;
    return out;
  }
  const msg = e instanceof Error ? e.message : String(e);
  return { cniVersion: v, code: 100, msg: `internal error: ${msg}`, details: 'ERR_INTERNAL' };
}
