// One CNI call from its raw inputs (environment, stdin text) to what the executable prints
// and its exit status. The `tartan` executable runs it in-process and the node agent runs
// it for the shim, so a result or an error object is the same bytes on either path.
import { runCni, type Overrides } from '../attach/plugin.js';
import { isTartanError } from '../cni/errors.js';
import { errorResponse, parseStdin, readEnv, type CniEnv } from '../cni/protocol.js';
import type { WireResponse } from './wire.js';

export interface CniInput {
  text: string;
  /** Reading stdin failed (or it was larger than MAX_STDIN): reported like any error. */
  readError?: unknown;
}

export interface Execution extends WireResponse {
  /** The failure behind a non-zero code, for logs (never printed on stdout). */
  error?: unknown;
  env?: CniEnv;
  raw?: Record<string, unknown>;
}

export async function executeCni(
  vars: NodeJS.ProcessEnv,
  input: CniInput,
  o: Overrides = {},
): Promise<Execution> {
  let version: unknown;
  let env: CniEnv | undefined;
  let raw: Record<string, unknown> | undefined;
  try {
    env = readEnv(vars);
    let text = input.text;
    if (input.readError !== undefined) {
      // VERSION tolerates an unreadable stdin (runtimes may pass none), not an oversized one.
      if (env.command !== 'VERSION' || isTartanError(input.readError, 'ERR_DECODE'))
        throw input.readError;
      text = '';
    }
    raw = env.command === 'VERSION' && text.trim() === '' ? {} : parseStdin(text);
    version = raw.cniVersion;
    const out = await runCni(env, raw, o);
    return { code: 0, stdout: out === undefined ? '' : JSON.stringify(out) + '\n', env, raw };
  } catch (e) {
    // The error object speaks the configuration's version, also when what failed came
    // before the configuration was read (the environment).
    if (raw === undefined && input.readError === undefined) version = declaredVersion(input.text);
    return {
      code: 1,
      stdout: JSON.stringify(errorResponse(e, version)) + '\n',
      error: e,
      ...(env ? { env } : {}),
      ...(raw ? { raw } : {}),
    };
  }
}

function declaredVersion(text: string): unknown {
  try {
    return (JSON.parse(text) as { cniVersion?: unknown } | null)?.cniVersion;
  } catch {
    return undefined;
  }
}
