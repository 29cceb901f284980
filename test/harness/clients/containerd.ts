// A real containerd (Debian 1.6) with its CRI plugin, isolated under a temp dir
// `tartan-ctrd-*`, driven through crictl (built from sigs.k8s.io/cri-tools).
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  openSync,
  closeSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { PAUSE_IMAGE, BUSYBOX_IMAGE, dockerArchive } from './images.js';
import {
  CreatedPaths,
  REF_CNI_DIR,
  buildGoTool,
  mkTmp,
  mountsUnder,
  pidAlive,
  removeCgroupTree,
  removeDir,
  requireCommands,
  requireRoot,
  run,
  sh,
  shSync,
  stopPid,
  unmountUnder,
  waitFor,
  type RunResult,
} from './util.js';

/**
 * Makes a CNI bin dir for a client that takes a single dir (containerd 1.6's CRI): symlinks
 * to every reference plugin in /usr/lib/cni plus `extra` (name -> executable path).
 */
export function makeCniBinDir(dir: string, extra: Record<string, string> = {}): string {
  mkdirSync(dir, { recursive: true });
  for (const p of readdirSync(REF_CNI_DIR)) symlinkSync(join(REF_CNI_DIR, p), join(dir, p));
  for (const [name, target] of Object.entries(extra)) {
    const dst = join(dir, name);
    if (existsSync(dst)) removeDir(dst);
    symlinkSync(target, dst);
  }
  return dir;
}

/** Edits a TOML file line by line: sets `key = value` inside `[section]` (value given as TOML). */
export function setToml(toml: string, section: string, key: string, value: string): string {
  const lines = toml.split('\n');
  const header = section === '' ? -1 : lines.findIndex((l) => l.trim() === `[${section}]`);
  if (section !== '' && header < 0) throw new Error(`containerd config: no section [${section}]`);
  let i = header + 1;
  for (; i < lines.length; i++) {
    const t = lines[i]!.trim();
    if (t.startsWith('[')) break;
    const m = /^(\s*)([A-Za-z0-9_"]+)\s*=/.exec(lines[i]!);
    if (m && m[2] === key) {
      lines[i] = `${m[1]}${key} = ${value}`;
      return lines.join('\n');
    }
  }
  // Not present: insert at the end of the section's key block.
  lines.splice(i, 0, `  ${key} = ${value}`);
  return lines.join('\n');
}

const CRI = 'plugins."io.containerd.grpc.v1.cri"';

/** Created by containerd 1.6 outside its root/state dirs (shim sockets are always under /run/containerd/s; libcni caches results in /var/lib/cni). */
const HOST_PATHS = [
  '/run/containerd',
  '/run/containerd/s',
  '/run/containerd/runc',
  '/run/containerd/runc/k8s.io',
  '/var/lib/cni',
  '/var/lib/cni/results',
];

export interface ContainerdOptions {
  cniBinDir: string;
  cniConfDir: string;
  /** Also import the busybox test image (for containers in pods). */
  withTestImage?: boolean;
}

export interface PodHandle {
  id: string;
  name: string;
  netns: string;
  /** Wall time of `crictl runp` (RunPodSandbox plus crictl's own start-up). */
  runMs: number;
}

let podSeq = 0;

export class Containerd {
  readonly socket: string;
  readonly config: string;
  readonly log: string;
  readonly rootDir: string;
  readonly stateDir: string;
  readonly snapshotter: string;
  private readonly crictlBin: string;
  private readonly crictlConfig: string;
  private readonly pods = new Set<string>();
  private readonly cgroupParent: string;

  private constructor(
    readonly dir: string,
    readonly pid: number,
    snapshotter: string,
    crictlBin: string,
    private readonly created: CreatedPaths,
  ) {
    this.socket = join(dir, 'containerd.sock');
    this.config = join(dir, 'config.toml');
    this.log = join(dir, 'containerd.log');
    this.rootDir = join(dir, 'root');
    this.stateDir = join(dir, 'state');
    this.snapshotter = snapshotter;
    this.crictlBin = crictlBin;
    this.crictlConfig = join(dir, 'crictl.yaml');
    this.cgroupParent = basename(dir);
  }

  /** Starts containerd with its own root/state/socket; imports the pause image. */
  static async start(opts: ContainerdOptions): Promise<Containerd> {
    requireRoot();
    requireCommands('containerd', 'ctr', 'runc', 'containerd-shim-runc-v2', 'nsenter', 'ip');
    const crictl = await buildGoTool('crictl');
    const created = new CreatedPaths(HOST_PATHS);
    const dir = mkTmp('tartan-ctrd-');
    let pid = 0;
    try {
      const snapshotter = (await overlaySupported(dir)) ? 'overlayfs' : 'native';
      const root = join(dir, 'root');
      const state = join(dir, 'state');
      const socket = join(dir, 'containerd.sock');
      let toml = shSync('containerd', ['config', 'default']);
      toml = setToml(toml, '', 'root', JSON.stringify(root));
      toml = setToml(toml, '', 'state', JSON.stringify(state));
      toml = setToml(
        toml,
        '',
        'disabled_plugins',
        JSON.stringify([
          'io.containerd.snapshotter.v1.aufs',
          'io.containerd.snapshotter.v1.btrfs',
          'io.containerd.snapshotter.v1.devmapper',
          'io.containerd.snapshotter.v1.zfs',
          'io.containerd.tracing.processor.v1.otlp',
          'io.containerd.internal.v1.tracing',
        ]),
      );
      toml = setToml(toml, 'grpc', 'address', JSON.stringify(socket));
      toml = setToml(toml, CRI, 'sandbox_image', JSON.stringify(PAUSE_IMAGE.ref));
      toml = setToml(toml, CRI, 'restrict_oom_score_adj', 'true');
      toml = setToml(toml, `${CRI}.cni`, 'bin_dir', JSON.stringify(opts.cniBinDir));
      toml = setToml(toml, `${CRI}.cni`, 'conf_dir', JSON.stringify(opts.cniConfDir));
      toml = setToml(toml, `${CRI}.containerd`, 'snapshotter', JSON.stringify(snapshotter));
      toml = setToml(
        toml,
        `${CRI}.containerd.runtimes.runc.options`,
        'Root',
        JSON.stringify(join(dir, 'runc')),
      );
      toml = setToml(
        toml,
        'plugins."io.containerd.internal.v1.opt"',
        'path',
        JSON.stringify(join(dir, 'opt')),
      );
      writeFileSync(join(dir, 'config.toml'), toml);
      writeFileSync(
        join(dir, 'crictl.yaml'),
        `runtime-endpoint: unix://${socket}\nimage-endpoint: unix://${socket}\ntimeout: 60\n`,
      );

      const logFd = openSync(join(dir, 'containerd.log'), 'a');
      // detached: the child calls setsid(), so it has its own session and process group.
      const child = spawn('containerd', ['--config', join(dir, 'config.toml')], {
        detached: true,
        stdio: ['ignore', logFd, logFd],
      });
      closeSync(logFd);
      if (!child.pid) throw new Error('containerd did not start');
      pid = child.pid;
      child.unref();
      const c = new Containerd(dir, pid, snapshotter, crictl, created);
      await waitFor(
        'the containerd socket',
        () => {
          if (!pidAlive(pid)) throw new Error(`containerd exited early:\n${c.logTail()}`);
          return existsSync(socket);
        },
        20_000,
      );
      // The CRI plugin is ready once crictl can talk to it.
      await waitFor(
        'the CRI service',
        async () => (await c.crictl(['version'])).code === 0,
        20_000,
      );
      await c.importImage(dockerArchive(PAUSE_IMAGE));
      if (opts.withTestImage) await c.importImage(dockerArchive(BUSYBOX_IMAGE));
      return c;
    } catch (err) {
      if (pid) await stopPid(pid);
      await unmountUnder(dir);
      removeDir(dir);
      created.removeCreated();
      throw err;
    }
  }

  logTail(lines = 40): string {
    try {
      return readFileSync(this.log, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  async importImage(archive: string): Promise<void> {
    await sh('ctr', ['--address', this.socket, '-n', 'k8s.io', 'image', 'import', archive]);
  }

  crictl(args: string[]): Promise<RunResult> {
    return run(this.crictlBin, ['--config', this.crictlConfig, ...args], { timeoutMs: 90_000 });
  }

  /** Writes a pod sandbox config and runs `crictl runp`; returns the id, netns path and time. */
  async runPod(name?: string): Promise<PodHandle> {
    const podName = name ?? `tt-cli-pod-${process.pid}-${++podSeq}`;
    const podCfg = {
      metadata: {
        name: podName,
        namespace: 'tt-cli',
        uid: `tt-cli-uid-${process.pid}-${podSeq}-${Date.now()}`,
        attempt: 0,
      },
      log_directory: join(this.dir, 'logs', podName),
      // A cgroup parent of our own, removed in stop() (runc leaves parents behind).
      linux: { cgroup_parent: `/${this.cgroupParent}` },
    };
    const file = join(this.dir, `${podName}.pod.json`);
    writeFileSync(file, JSON.stringify(podCfg));
    const r = await this.crictl(['runp', file]);
    if (r.code !== 0)
      throw new Error(
        `crictl runp failed (${r.code}):\n${r.stderr.trim()}\n--- containerd log ---\n${this.logTail(15)}`,
      );
    const id = r.stdout.trim().split('\n').pop()!;
    this.pods.add(id);
    const netns = await this.podNetns(id);
    return { id, name: podName, netns, runMs: r.ms };
  }

  async inspectPod(id: string): Promise<Record<string, unknown>> {
    const r = await this.crictl(['inspectp', '-o', 'json', id]);
    if (r.code !== 0) throw new Error(`crictl inspectp ${id} failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  }

  /** The pod's network namespace path, from `crictl inspectp` (info.runtimeSpec). */
  async podNetns(id: string): Promise<string> {
    const info = (await this.inspectPod(id)) as {
      info?: { runtimeSpec?: { linux?: { namespaces?: { type: string; path?: string }[] } } };
    };
    const ns = info.info?.runtimeSpec?.linux?.namespaces?.find((n) => n.type === 'network');
    if (!ns?.path) throw new Error(`no network namespace path for pod ${id}`);
    return ns.path;
  }

  async stopPod(id: string): Promise<RunResult> {
    return this.crictl(['stopp', id]);
  }

  async removePod(id: string): Promise<RunResult> {
    const r = await this.crictl(['rmp', id]);
    if (r.code === 0) this.pods.delete(id);
    return r;
  }

  /** Stops and removes every pod, stops containerd by PID, kills its leftover shims, unmounts, removes the dir. */
  /** Stops and removes every pod this harness started; returns what failed. */
  async removeAllPods(): Promise<string[]> {
    const problems: string[] = [];
    for (const id of [...this.pods]) {
      const st = await this.stopPod(id);
      const rm = await this.removePod(id);
      if (st.code !== 0 || rm.code !== 0)
        problems.push(
          `pod ${id}: stopp ${st.code} ${st.stderr.trim()} / rmp ${rm.code} ${rm.stderr.trim()}`,
        );
    }
    return problems;
  }

  async stop(): Promise<void> {
    const problems = await this.removeAllPods();
    await stopPid(this.pid);
    // Shims outlive containerd; ours carry our unique socket path on their command line.
    for (const shim of this.shimPids()) await stopPid(shim, 3_000);
    const cg = await removeCgroupTree(this.cgroupParent);
    if (cg.length) problems.push(`cgroups still in use: ${cg.join(', ')}`);
    await unmountUnder(this.dir);
    const left = mountsUnder(this.dir);
    if (left.length) problems.push(`mounts left under ${this.dir}: ${left.join(', ')}`);
    else removeDir(this.dir);
    this.created.removeCreated();
    if (problems.length) throw new Error(problems.join('\n'));
  }

  private shimPids(): number[] {
    const out: number[] = [];
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p)) continue;
      try {
        const exe = basename(readlinkSync(`/proc/${p}/exe`));
        if (!exe.startsWith('containerd-shim')) continue;
        const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        if (argv.includes(this.socket)) out.push(Number(p));
      } catch {
        /* raced with exit */
      }
    }
    return out;
  }
}

/** Whether an overlay mount works on the file system that holds `dir`. */
async function overlaySupported(dir: string): Promise<boolean> {
  const base = join(dir, 'ovl-probe');
  for (const d of ['lower', 'upper', 'work', 'merged'])
    mkdirSync(join(base, d), { recursive: true });
  const r = await run('mount', [
    '-t',
    'overlay',
    'overlay',
    '-o',
    `lowerdir=${base}/lower,upperdir=${base}/upper,workdir=${base}/work`,
    `${base}/merged`,
  ]);
  if (r.code === 0) await run('umount', [`${base}/merged`]);
  removeDir(base);
  return r.code === 0;
}
