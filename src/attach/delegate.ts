// Delegation to any CNI plugin in CNI_PATH (the "cascade" requirement): a conf or a
// conflist is executed plugin by plugin with prevResult chaining, the runtime's
// capabilities passed through, and DEL in reverse order.
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { TartanError } from '../cni/errors.js';
import { fromAnyVersion, negotiateVersion, toVersion, type CniResult } from '../cni/spec.js';

export interface DelegateEnv {
  containerId: string;
  netns: string;
  ifname: string;
  cniArgs: string | undefined;
  cniPath: string[];
  runtimeConfig: Record<string, unknown> | undefined;
}

type Conf = Record<string, unknown>;
const PLUGIN_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const MAX_OUTPUT = 1 << 20;

/** Normalises a single conf into a conflist and picks its version. */
export function asConflist(
  raw: Conf,
  ourVersions: readonly string[],
): { cniVersion: string; name: string; plugins: Conf[] } {
  const plugins = Array.isArray(raw.plugins)
    ? (raw.plugins as Conf[])
    : typeof raw.type === 'string'
      ? [raw]
      : undefined;
  if (
    !plugins ||
    plugins.length === 0 ||
    plugins.some((p) => typeof p !== 'object' || typeof p.type !== 'string')
  )
    throw new TartanError(
      'ERR_CONFIG',
      'delegate must be a CNI conf with "type" or a conflist with "plugins"',
    );
  const versions = Array.isArray(raw.cniVersions)
    ? (raw.cniVersions as unknown[]).map(String)
    : [typeof raw.cniVersion === 'string' ? raw.cniVersion : '1.0.0'];
  const cniVersion = negotiateVersion(versions, ourVersions);
  const name = typeof raw.name === 'string' ? raw.name : 'delegate';
  return { cniVersion, name, plugins };
}

async function findPlugin(type: string, cniPath: string[]): Promise<string> {
  if (!PLUGIN_RE.test(type))
    throw new TartanError('ERR_CONFIG', `invalid delegate plugin type ${JSON.stringify(type)}`);
  for (const dir of cniPath) {
    const p = join(dir, type);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // try the next directory
    }
  }
  throw new TartanError(
    'ERR_DELEGATE',
    `delegate plugin ${type} not found in CNI_PATH (${cniPath.join(':') || 'empty'})`,
  );
}

function pluginConf(
  list: { cniVersion: string; name: string },
  p: Conf,
  env: DelegateEnv,
  prev: CniResult | undefined,
): Conf {
  const conf: Conf = { ...p, cniVersion: list.cniVersion, name: list.name };
  const caps = (p.capabilities ?? {}) as Record<string, boolean>;
  const rc: Conf = {};
  for (const [k, v] of Object.entries(env.runtimeConfig ?? {})) if (caps[k]) rc[k] = v;
  delete conf.capabilities;
  if (Object.keys(rc).length > 0) conf.runtimeConfig = rc;
  if (prev) conf.prevResult = toVersion(prev, list.cniVersion);
  return conf;
}

async function run(command: string, path: string, conf: Conf, env: DelegateEnv): Promise<string> {
  // Loaded here: evaluating node:child_process costs every CNI process ~0.5 ms at start.
  const { spawn } = await import('node:child_process');
  const child = spawn(path, [], {
    env: {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: env.containerId,
      CNI_NETNS: env.netns,
      CNI_IFNAME: env.ifname,
      CNI_PATH: env.cniPath.join(':'),
      ...(env.cniArgs !== undefined ? { CNI_ARGS: env.cniArgs } : {}),
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let size = 0;
  child.stdout.on('data', (d: Buffer) => {
    size += d.length;
    if (size <= MAX_OUTPUT) out.push(d);
  });
  child.stderr.on('data', (d: Buffer) => err.push(d));
  child.stdin.on('error', () => {});
  child.stdin.end(JSON.stringify(conf));
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c) => resolve(c ?? 1));
  });
  const stdout = Buffer.concat(out).toString('utf8');
  if (code !== 0) {
    let msg = Buffer.concat(err).toString('utf8').trim() || stdout.trim();
    let cniCode: number | undefined;
    try {
      const e = JSON.parse(stdout) as { code?: number; msg?: string; details?: string };
      if (typeof e.code === 'number') cniCode = e.code;
      if (e.msg) msg = e.details ? `${e.msg}: ${e.details}` : e.msg;
    } catch {
      // not a CNI error object; keep the raw output
    }
    throw new TartanError(
      'ERR_DELEGATE',
      `${conf.type} ${command} failed: ${msg}`,
      cniCode === undefined ? {} : { cniCode },
    );
  }
  return stdout;
}

export async function delegateAdd(
  raw: Conf,
  env: DelegateEnv,
  ourVersions: readonly string[],
): Promise<{ conflist: Conf; result: CniResult }> {
  const list = asConflist(raw, ourVersions);
  let prev: CniResult | undefined;
  for (const p of list.plugins) {
    const out = await run(
      'ADD',
      await findPlugin(String(p.type), env.cniPath),
      pluginConf(list, p, env, prev),
      env,
    );
    let parsed: unknown;
    try {
      parsed = JSON.parse(out);
    } catch (e) {
      throw new TartanError('ERR_DELEGATE', `${String(p.type)} ADD printed no JSON result`, {
        cause: e,
      });
    }
    try {
      prev = fromAnyVersion(parsed, `${String(p.type)} ADD result`);
    } catch (e) {
      throw new TartanError('ERR_DELEGATE', (e as Error).message, { cause: e });
    }
  }
  return { conflist: { ...list }, result: prev ?? { cniVersion: list.cniVersion } };
}

/** DEL in reverse order; a missing plugin binary is the only failure that is not fatal. */
export async function delegateDel(
  conflist: Conf,
  prev: CniResult | undefined,
  env: DelegateEnv,
  ourVersions: readonly string[],
): Promise<void> {
  const list = asConflist(conflist, ourVersions);
  for (const p of [...list.plugins].reverse()) {
    await run(
      'DEL',
      await findPlugin(String(p.type), env.cniPath),
      pluginConf(list, p, env, prev),
      env,
    );
  }
}

export async function delegateCheck(
  conflist: Conf,
  prev: CniResult,
  env: DelegateEnv,
  ourVersions: readonly string[],
): Promise<void> {
  const list = asConflist(conflist, ourVersions);
  for (const p of list.plugins) {
    await run(
      'CHECK',
      await findPlugin(String(p.type), env.cniPath),
      pluginConf(list, p, env, prev),
      env,
    );
  }
}
