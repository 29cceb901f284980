// Delegation to any CNI plugin in CNI_PATH (the "cascade" requirement): a conf or a
// conflist is executed plugin by plugin with prevResult chaining, the runtime's
// capabilities passed through, and DEL in reverse order.
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import { isTartanError, TartanError } from '../cni/errors.js';
import {
  compareVersions,
  fromAnyVersion,
  negotiateVersion,
  toVersion,
  type CniResult,
} from '../cni/spec.js';

export interface DelegateEnv {
  containerId: string;
  netns: string;
  ifname: string;
  cniArgs: string | undefined;
  cniPath: string[];
  runtimeConfig: Record<string, unknown> | undefined;
  /** The request's NPWG "cni-args": the configuration's args.cni (NPWG 4.1.2.1.6). */
  cniConfArgs?: Record<string, unknown> | undefined;
  /** Deadline of each plugin call; default TARTAN_DELEGATE_TIMEOUT_S, else DELEGATE_TIMEOUT_S. */
  timeoutMs?: number;
}

type Conf = Record<string, unknown>;
export interface Conflist {
  cniVersion: string;
  name: string;
  plugins: Conf[];
  disableCheck?: boolean;
  disableGC?: boolean;
}
const PLUGIN_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const MAX_OUTPUT = 1 << 20;
/** What of a failed plugin's stderr goes into the error: its end, where the cause usually is. */
const MAX_STDERR = 4096;
/**
 * A hung plugin would hold the pod's ADD (and the runtime's lock on the sandbox) forever;
 * libcni leaves this to the runtime's context, which Tartan, being the plugin, lacks.
 */
export const DELEGATE_TIMEOUT_S = 60;
/** libcni's RawExec retries "text file busy" (a plugin binary being replaced) the same way. */
const ETXTBSY_RETRIES = 5;
const ETXTBSY_DELAY_MS = 200;
/** Spawn errors that will not go away by retrying: the plugin cannot be started at all. */
const CANNOT_START = new Set([
  'ENOENT',
  'EACCES',
  'ENOEXEC',
  'ENOTDIR',
  'EISDIR',
  'ELOOP',
  'EPERM',
]);

/**
 * The plugin never ran: not found, not an executable file, an invalid type, or it cannot
 * be started. DEL and GC have nothing of its to undo (libcni would fail; see delegateDel).
 */
class NotStarted extends TartanError {}

/** libcni accepts true or "true" for disableCheck and disableGC. */
const flag = (v: unknown) => v === true || (typeof v === 'string' && v.toLowerCase() === 'true');

/** Normalises a single conf into a conflist and picks its version. */
export function asConflist(raw: Conf, ourVersions: readonly string[]): Conflist {
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
  // As libcni: the versions the list offers are cniVersions and cniVersion together.
  const versions = [
    ...(Array.isArray(raw.cniVersions) ? (raw.cniVersions as unknown[]).map(String) : []),
    ...(typeof raw.cniVersion === 'string' ? [raw.cniVersion] : []),
  ];
  if (versions.length === 0) versions.push('1.0.0');
  const cniVersion = negotiateVersion(versions, ourVersions);
  const name = typeof raw.name === 'string' ? raw.name : 'delegate';
  // Kept in the record: CHECK and GC read them from there (libcni's CheckNetworkList, GCNetworkList).
  return {
    cniVersion,
    name,
    plugins,
    ...(flag(raw.disableCheck) ? { disableCheck: true } : {}),
    ...(flag(raw.disableGC) ? { disableGC: true } : {}),
  };
}

/** For DEL and GC: a config that cannot be used could never have run, so nothing is left of it. */
function usableConflist(raw: Conf, ourVersions: readonly string[]): Conflist | undefined {
  try {
    return asConflist(raw, ourVersions);
  } catch (e) {
    if (isTartanError(e, 'ERR_CONFIG') || isTartanError(e, 'ERR_VERSION')) return undefined;
    throw e;
  }
}

function findPlugin(type: string, cniPath: string[]): string {
  if (!PLUGIN_RE.test(type))
    throw new NotStarted('ERR_CONFIG', `invalid delegate plugin type ${JSON.stringify(type)}`);
  for (const dir of cniPath) {
    const p = join(dir, type);
    try {
      // Like libcni's FindInPath, only a regular file: a directory of that name is skipped.
      if (!statSync(p).isFile()) continue;
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // try the next directory
    }
  }
  throw new NotStarted(
    'ERR_DELEGATE',
    `delegate plugin ${type} not found in CNI_PATH (${cniPath.join(':') || 'empty'}) as an executable file`,
  );
}

function pluginConf(list: Conflist, p: Conf, env: DelegateEnv, prev: CniResult | undefined): Conf {
  const conf: Conf = { ...p, cniVersion: list.cniVersion, name: list.name };
  const caps = (p.capabilities ?? {}) as Record<string, boolean>;
  const rc: Conf = {};
  for (const [k, v] of Object.entries(env.runtimeConfig ?? {})) if (caps[k]) rc[k] = v;
  delete conf.capabilities;
  if (Object.keys(rc).length > 0) conf.runtimeConfig = rc;
  if (env.cniConfArgs) {
    const args = (typeof p.args === 'object' && p.args !== null ? p.args : {}) as Conf;
    const cni = (typeof args.cni === 'object' && args.cni !== null ? args.cni : {}) as Conf;
    conf.args = { ...args, cni: { ...cni, ...env.cniConfArgs } };
  }
  if (prev) conf.prevResult = toVersion(prev, list.cniVersion);
  return conf;
}

function deadlineMs(env: DelegateEnv): number {
  const fromEnv = Number(process.env.TARTAN_DELEGATE_TIMEOUT_S);
  return env.timeoutMs ?? (fromEnv > 0 ? fromEnv * 1000 : DELEGATE_TIMEOUT_S * 1000);
}

const bounded = (s: string, max: number) => (s.length > max ? `...${s.slice(s.length - max)}` : s);

interface Exit {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

type Spawn = (typeof import('node:child_process'))['spawn'];

/** One run of the plugin; rejects with the spawn error itself, or ERR_DELEGATE on the deadline. */
function execOnce(
  spawn: Spawn,
  path: string,
  vars: NodeJS.ProcessEnv,
  input: string,
  ms: number,
  what: string,
): Promise<Exit> {
  return new Promise((resolve, reject) => {
    // Its own process group: on the deadline, whatever the plugin started is killed with it.
    const child = spawn(path, [], { env: vars, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outSize = 0;
    let errSize = 0;
    child.stdout.on('data', (d: Buffer) => {
      outSize += d.length;
      if (outSize <= MAX_OUTPUT) out.push(d);
    });
    child.stderr.on('data', (d: Buffer) => {
      errSize += d.length;
      if (errSize <= MAX_OUTPUT) err.push(d);
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input);
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      // A descendant that left the group may hold the pipes open: stop waiting for them.
      child.stdout.destroy();
      child.stderr.destroy();
      reject(new TartanError('ERR_DELEGATE', `${what} did not finish within ${ms / 1000} s`));
    }, ms);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });
}

async function run(command: string, path: string, conf: Conf, env: DelegateEnv): Promise<string> {
  // Loaded here: evaluating node:child_process costs every CNI process ~0.5 ms at start.
  const { spawn } = await import('node:child_process');
  const what = `${String(conf.type)} ${command}`;
  const vars = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: env.containerId,
    CNI_NETNS: env.netns,
    CNI_IFNAME: env.ifname,
    CNI_PATH: env.cniPath.join(':'),
    ...(env.cniArgs !== undefined ? { CNI_ARGS: env.cniArgs } : {}),
  };
  let r: Exit;
  for (let attempt = 0; ; attempt++) {
    try {
      r = await execOnce(spawn, path, vars, JSON.stringify(conf), deadlineMs(env), what);
      break;
    } catch (e) {
      if (e instanceof TartanError) throw e;
      const errno = (e as NodeJS.ErrnoException).code ?? '';
      if (errno === 'ETXTBSY' && attempt < ETXTBSY_RETRIES) {
        await new Promise((res) => setTimeout(res, ETXTBSY_DELAY_MS));
        continue;
      }
      const Err = CANNOT_START.has(errno) ? NotStarted : TartanError;
      throw new Err('ERR_DELEGATE', `${what}: cannot start ${path}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }
  if (r.code === 0) return r.stdout;
  const stderr = bounded(r.stderr.trim(), MAX_STDERR);
  let msg =
    stderr ||
    bounded(r.stdout.trim(), MAX_STDERR) ||
    (r.signal ? `killed by ${r.signal}` : `exit status ${r.code}`);
  let cniCode: number | undefined;
  try {
    const e = JSON.parse(r.stdout) as { code?: number; msg?: string; details?: string };
    if (typeof e.code === 'number') cniCode = e.code;
    if (e.msg) msg = e.details ? `${e.msg}: ${e.details}` : e.msg;
  } catch {
    // not a CNI error object; keep the raw output
  }
  throw new TartanError('ERR_DELEGATE', `${what} failed: ${msg}`, {
    ...(cniCode === undefined ? {} : { cniCode }),
    // With an error object the message is the plugin's; its stderr often says why.
    ...(stderr && msg !== stderr ? { details: stderr } : {}),
  });
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
      findPlugin(String(p.type), env.cniPath),
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

/**
 * DEL in reverse order. A plugin that cannot be found or started, or a config that could
 * never have run, has nothing to undo: failing would fail the pod's DEL forever, as the
 * runtime retries it. A plugin that ran and failed stays fatal (it is retried).
 */
export async function delegateDel(
  conflist: Conf,
  prev: CniResult | undefined,
  env: DelegateEnv,
  ourVersions: readonly string[],
): Promise<void> {
  const list = usableConflist(conflist, ourVersions);
  if (!list) return;
  for (const p of [...list.plugins].reverse()) {
    try {
      await run(
        'DEL',
        findPlugin(String(p.type), env.cniPath),
        pluginConf(list, p, env, prev),
        env,
      );
    } catch (e) {
      if (!(e instanceof NotStarted)) throw e;
    }
  }
}

/** libcni's CheckNetworkList: CHECK exists from 0.4.0 on, and disableCheck turns it off. */
export async function delegateCheck(
  conflist: Conf,
  prev: CniResult,
  env: DelegateEnv,
  ourVersions: readonly string[],
): Promise<void> {
  const list = asConflist(conflist, ourVersions);
  if (list.disableCheck || compareVersions(list.cniVersion, '0.4.0') < 0) return;
  for (const p of list.plugins) {
    await run(
      'CHECK',
      findPlugin(String(p.type), env.cniPath),
      pluginConf(list, p, env, prev),
      env,
    );
  }
}

/** GC and STATUS concern no attachment: libcni sends them without container, netns or args. */
const noAttachment = (env: DelegateEnv): DelegateEnv => ({
  ...env,
  containerId: '',
  netns: '',
  ifname: '',
  cniArgs: undefined,
  runtimeConfig: undefined,
});

/**
 * CNI GC of a delegate (the plugin half of libcni's GCNetworkList; stale attachments are
 * DELeted from Tartan's own records): from 1.1.0 on, unless disableGC. Every plugin gets
 * its turn even when one fails; a plugin that is not there has nothing to collect.
 */
export async function delegateGc(
  conflist: Conf,
  validAttachments: { containerID: string; ifname: string }[],
  env: DelegateEnv,
  ourVersions: readonly string[],
): Promise<void> {
  const list = usableConflist(conflist, ourVersions);
  if (!list || list.disableGC || compareVersions(list.cniVersion, '1.1.0') < 0) return;
  const bare = noAttachment(env);
  const valid = validAttachments.map((a) => ({ containerID: a.containerID, ifname: a.ifname }));
  const errors: string[] = [];
  for (const p of list.plugins) {
    try {
      const conf = {
        ...pluginConf(list, p, bare, undefined),
        'cni.dev/valid-attachments': valid,
        // libcni sends both: the 1.1.0 spec text named the key this way (cni#1101).
        'cni.dev/attachments': valid,
      };
      await run('GC', findPlugin(String(p.type), env.cniPath), conf, bare);
    } catch (e) {
      if (e instanceof NotStarted) continue;
      errors.push((e as Error).message);
    }
  }
  if (errors.length > 0)
    throw new TartanError('ERR_DELEGATE', `delegate ${list.name} GC: ${errors.join('; ')}`);
}

/** CNI STATUS of a delegate (libcni's GetStatusNetworkList): from 1.1.0 on, first failure wins. */
export async function delegateStatus(
  conflist: Conf,
  env: DelegateEnv,
  ourVersions: readonly string[],
): Promise<void> {
  const list = asConflist(conflist, ourVersions);
  if (compareVersions(list.cniVersion, '1.1.0') < 0) return;
  const bare = noAttachment(env);
  for (const p of list.plugins)
    await run(
      'STATUS',
      findPlugin(String(p.type), env.cniPath),
      pluginConf(list, p, bare, undefined),
      bare,
    );
}
