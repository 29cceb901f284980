// Shared helpers for the "real clients" test tier (libcni, containerd CRI, podman).
// Everything here runs real processes; a missing prerequisite is an error, never a skip.
import { execFile, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  rmdirSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const CACHE_DIR = join(REPO_ROOT, '.cache');
export const CACHE_BIN = join(CACHE_DIR, 'bin');
export const REF_CNI_DIR = '/usr/lib/cni';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  input?: string;
  cwd?: string;
  timeoutMs?: number;
}

/** Runs a command; never throws for a non-zero exit (see `sh` for that). */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const t0 = performance.now();
  return new Promise((resolvePromise, reject) => {
    const child = execFile(
      cmd,
      args,
      {
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        timeout: opts.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        const ms = performance.now() - t0;
        if (err && typeof err.code !== 'number') {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT')
            return reject(new Error(`command not found: ${cmd}`));
          if (err.killed)
            return resolvePromise({
              code: -1,
              stdout,
              stderr: `${stderr}\n(killed: ${err.signal})`,
              ms,
            });
          return reject(err);
        }
        resolvePromise({ code: err ? (err.code as number) : 0, stdout, stderr, ms });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

export class CommandError extends Error {
  constructor(
    readonly cmd: string,
    readonly result: RunResult,
  ) {
    super(
      `\`${cmd}\` exited ${result.code}\n--- stdout ---\n${result.stdout.trim()}\n--- stderr ---\n${result.stderr.trim()}`,
    );
  }
}

/** Runs a command and throws (with its full output) unless it exits 0. */
export async function sh(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new CommandError([cmd, ...args].join(' '), r);
  return r;
}

export function shSync(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  if (r.status !== 0)
    throw new Error(`\`${cmd} ${args.join(' ')}\` exited ${r.status}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Throws a clear error naming every missing command (the tier must fail, not skip). */
export function requireCommands(...cmds: string[]): void {
  const missing = cmds.filter((c) => spawnSync('sh', ['-c', `command -v "${c}"`]).status !== 0);
  if (missing.length)
    throw new Error(
      `prerequisite missing: ${missing.join(', ')} (run .ci/install-deps.sh and scripts/build-go-tools.sh)`,
    );
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('the clients test tier must run as root');
}

export function mkTmp(prefix: string): string {
  if (!prefix.startsWith('tartan-'))
    throw new Error(`temp dirs must start with tartan-: ${prefix}`);
  return mkdtempSync(join(tmpdir(), prefix));
}

export type GoTool = 'cnitool' | 'crictl';

/**
 * Builds Go tools into .cache/bin with scripts/build-go-tools.sh (idempotent) and returns
 * the path of the first. crictl's first build on a fresh machine takes minutes: give the
 * calling hook a long timeout (GO_TOOLS_TIMEOUT_MS).
 */
export async function buildGoTool(...tools: [GoTool, ...GoTool[]]): Promise<string> {
  if (spawnSync('sh', ['-c', 'command -v go']).status !== 0 && !existsSync('/usr/local/go/bin/go'))
    requireCommands('go');
  const r = await run('bash', [join(REPO_ROOT, 'scripts/build-go-tools.sh'), ...tools], {
    timeoutMs: GO_TOOLS_TIMEOUT_MS - 10_000,
  });
  if (r.code !== 0)
    throw new Error(
      `scripts/build-go-tools.sh ${tools.join(' ')} failed (${r.code}):\n${r.stdout}${r.stderr}`,
    );
  for (const t of tools) if (!existsSync(join(CACHE_BIN, t))) throw new Error(`${t} was not built`);
  return join(CACHE_BIN, tools[0]);
}

export const GO_TOOLS_TIMEOUT_MS = 600_000;

// ---------------------------------------------------------------- Tartan binary

export const TARTAN_BIN = join(REPO_ROOT, 'dist/tartan');

/**
 * Returns the path of the Tartan CNI executable: the full build, or the shim-only build the
 * DaemonSet installs. TARTAN_BIN (TARTAN_SHIM_BIN) names a prebuilt one; otherwise
 * dist/tartan (dist/tartan-shim), (re)built by scripts/build.mjs (incremental: it skips an
 * up-to-date binary), so the tests never run a stale build. Throws when it cannot be had.
 */
export function tartanBinary(build: 'full' | 'shim' = 'full'): string {
  const given = build === 'full' ? process.env.TARTAN_BIN : process.env.TARTAN_SHIM_BIN;
  const bin = given ?? (build === 'full' ? TARTAN_BIN : `${TARTAN_BIN}-shim`);
  if (!given && existsSync(join(REPO_ROOT, 'scripts/build.mjs'))) {
    const r = spawnSync('node', ['scripts/build.mjs'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      timeout: 170_000,
    });
    if (r.status !== 0)
      throw new Error(
        `node scripts/build.mjs failed (${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`,
      );
  }
  if (!existsSync(bin)) throw new Error(`the Tartan CNI executable ${bin} does not exist`);
  if (!(statSync(bin).mode & 0o111)) throw new Error(`${bin} is not executable`);
  return bin;
}

// ---------------------------------------------------------------- namespaces and links

export async function netnsAdd(name: string): Promise<string> {
  if (!name.startsWith('tt-cli-')) throw new Error(`netns names must start with tt-cli-: ${name}`);
  await sh('ip', ['netns', 'add', name]);
  return `/run/netns/${name}`;
}

export async function netnsDel(name: string): Promise<void> {
  if (existsSync(`/run/netns/${name}`)) await run('ip', ['netns', 'del', name]);
}

export async function linkDel(name: string): Promise<void> {
  await run('ip', ['link', 'del', name]);
}

export function linkExists(name: string): boolean {
  return spawnSync('ip', ['link', 'show', 'dev', name], { stdio: 'ignore' }).status === 0;
}

export interface IpAddrInfo {
  ifname: string;
  link_type?: string;
  operstate?: string;
  address?: string;
  linkinfo?: { info_kind?: string };
  addr_info: { family: string; local: string; prefixlen: number; scope?: string }[];
}

/** `ip -j addr` inside a network namespace given by path (any path, not only /run/netns). */
export async function addrsIn(netnsPath: string): Promise<IpAddrInfo[]> {
  const r = await sh('nsenter', [`--net=${netnsPath}`, 'ip', '-d', '-j', 'addr']);
  return JSON.parse(r.stdout) as IpAddrInfo[];
}

export function ipv4Of(addrs: IpAddrInfo[], ifname: string): string[] {
  const a = addrs.find((x) => x.ifname === ifname);
  return (a?.addr_info ?? [])
    .filter((i) => i.family === 'inet')
    .map((i) => `${i.local}/${i.prefixlen}`);
}

export async function pingFrom(netnsPath: string, dst: string, count = 2): Promise<RunResult> {
  return run('nsenter', [
    `--net=${netnsPath}`,
    'ping',
    '-c',
    String(count),
    '-W',
    '2',
    '-i',
    '0.2',
    dst,
  ]);
}

// ---------------------------------------------------------------- mounts and processes

/** Mount points at or below `dir`, deepest first (so they can be unmounted in order). */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (!mp) continue;
    const path = mp.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (path === dir || path.startsWith(prefix)) out.push(path);
  }
  return out.sort((a, b) => b.length - a.length);
}

export async function unmountUnder(dir: string): Promise<void> {
  for (let pass = 0; pass < 5; pass++) {
    const mps = mountsUnder(dir);
    if (!mps.length) return;
    for (const mp of mps) {
      const r = await run('umount', [mp]);
      if (r.code !== 0) await run('umount', ['-l', mp]);
    }
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL. Only for processes the harness started. */
export async function stopPid(pid: number, graceMs = 10_000): Promise<void> {
  if (!pidAlive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!pidAlive(pid) || isZombie(pid)) return;
    await sleep(20);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

function isZombie(pid: number): boolean {
  try {
    return / Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\)/, ' '));
  } catch {
    return true;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await sleep(20);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Appends a timing line to the console and to .cache/clients-timings.log for the report. */
export function reportTiming(label: string, samplesMs: number[]): void {
  const line = `[timing] ${label}: median ${median(samplesMs).toFixed(1)} ms over ${samplesMs.length} (${samplesMs
    .map((x) => x.toFixed(0))
    .join(', ')})`;
  console.log(line);
  try {
    spawnSync(
      'sh',
      ['-c', `mkdir -p "${CACHE_DIR}" && cat >> "${CACHE_DIR}/clients-timings.log"`],
      {
        input: `${new Date().toISOString()} ${line}\n`,
      },
    );
  } catch {
    /* best effort */
  }
}

// ---------------------------------------------------------------- cgroups

function cgroupRoots(): string[] {
  const base = '/sys/fs/cgroup';
  if (existsSync(join(base, 'cgroup.controllers'))) return [base];
  return readdirSync(base)
    .map((h) => join(base, h))
    .filter((d) => existsSync(join(d, 'cgroup.procs')));
}

/**
 * Removes the cgroup tree `/<name>` (a parent the harness chose for its pods) from every
 * hierarchy, deepest first. Dirs that still hold processes stay; returns their paths.
 */
export async function removeCgroupTree(name: string, waitMs = 10_000): Promise<string[]> {
  // Processes (conmon, shims) leave their cgroups a moment after the container is gone.
  const deadline = Date.now() + waitMs;
  for (;;) {
    const left = removeCgroupTreeOnce(name);
    if (!left.length || Date.now() > deadline) return left;
    await sleep(50);
  }
}

function removeCgroupTreeOnce(name: string): string[] {
  if (!name.startsWith('tartan-')) throw new Error(`refusing to remove cgroup ${name}`);
  const left: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }))
      if (e.isDirectory()) walk(join(d, e.name));
    try {
      rmdirSync(d);
    } catch {
      left.push(d);
    }
  };
  for (const r of cgroupRoots()) {
    const d = join(r, name);
    if (existsSync(d)) walk(d);
  }
  return left;
}

/**
 * A veth pair in the root netns to serve as a macvlan parent (`p0`); its peer `p1` may be
 * moved into `peerNetns` and given `peerAddr` (CIDR) to reach the pods from outside.
 */
export async function makeVethParent(
  p0: string,
  p1: string,
  peerNetns?: string,
  peerAddr?: string,
): Promise<void> {
  if (!p0.startsWith('tt-cli-') || !p1.startsWith('tt-cli-'))
    throw new Error('links must start with tt-cli-');
  await linkDel(p0);
  await sh('ip', ['link', 'add', p0, 'type', 'veth', 'peer', 'name', p1]);
  await sh('ip', ['link', 'set', p0, 'up']);
  if (peerNetns) {
    await sh('ip', ['link', 'set', p1, 'netns', peerNetns]);
    await sh('ip', ['-n', peerNetns, 'link', 'set', p1, 'up']);
    await sh('ip', ['-n', peerNetns, 'link', 'set', 'lo', 'up']);
    if (peerAddr) await sh('ip', ['-n', peerNetns, 'addr', 'add', peerAddr, 'dev', p1]);
  } else {
    await sh('ip', ['link', 'set', p1, 'up']);
  }
}

/** Names of the interfaces in a netns other than lo. */
export async function nonLoLinks(netnsPath: string): Promise<string[]> {
  return (await addrsIn(netnsPath)).map((x) => x.ifname).filter((n) => n !== 'lo');
}

/**
 * Host paths that a real client creates outside its configured dirs (runc roots, shim
 * socket dirs, libcni's cache, containers/image's blob cache). Remembers which of them are
 * absent now; `removeCreated()` later removes those (files; dirs only when empty), deepest first.
 */
export class CreatedPaths {
  private readonly absent: string[];
  constructor(paths: string[]) {
    this.absent = paths.filter((p) => !existsSync(p));
  }

  removeCreated(): void {
    for (const p of [...this.absent].sort((a, b) => b.length - a.length)) {
      try {
        if (statSync(p).isDirectory()) rmdirSync(p);
        else rmSync(p);
      } catch {
        /* gone, or not empty: in use by someone else */
      }
    }
  }
}
