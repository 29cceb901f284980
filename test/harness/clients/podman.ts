// Debian's podman 4.3 with its CNI backend, isolated from the host's configuration:
// containers.conf / storage.conf / registries.conf of our own (CONTAINERS_CONF,
// CONTAINERS_STORAGE_CONF, CONTAINERS_REGISTRIES_CONF), storage and run dirs under a temp
// dir `tartan-podman-*`, CNI networks read from a network_config_dir of our own.
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { busyboxRootfsTar } from './images.js';
import {
  CreatedPaths,
  REF_CNI_DIR,
  mkTmp,
  mountsUnder,
  removeCgroupTree,
  removeDir,
  requireCommands,
  requireRoot,
  run,
  sh,
  unmountUnder,
  type RunOptions,
  type RunResult,
} from './util.js';

/** Installed by Debian's podman package; a run may create it when it is absent. */
export const PODMAN_DEFAULT_CONFLIST = '/etc/cni/net.d/87-podman-bridge.conflist';

export const PODMAN_IMAGE = 'localhost/tartan-busybox:1';

/** Created by podman/runc/containers-image outside the configured dirs, when absent before. */
const HOST_PATHS = [
  PODMAN_DEFAULT_CONFLIST,
  '/etc/cni/net.d',
  '/etc/cni',
  '/var/lib/containers',
  '/var/lib/containers/cache',
  '/var/lib/containers/cache/blob-info-cache-v1.boltdb',
  '/var/lib/cni',
  '/var/lib/cni/results',
  '/run/runc',
];

export interface PodmanOptions {
  /** CNI plugin dirs, searched in order (e.g. a dir holding `tartan`, then /usr/lib/cni). */
  cniPluginDirs?: string[];
}

export class Podman {
  readonly confDir: string;
  readonly netDir: string;
  readonly env: NodeJS.ProcessEnv;
  readonly cgroupParent: string;

  private constructor(
    readonly dir: string,
    cniPluginDirs: string[],
    private readonly created: CreatedPaths,
  ) {
    this.confDir = join(dir, 'conf');
    this.netDir = join(dir, 'net.d');
    this.cgroupParent = `/${basename(dir)}`;
    for (const d of [this.confDir, this.netDir, join(dir, 'tmp')])
      mkdirSync(d, { recursive: true });
    const q = (s: string) => JSON.stringify(s);
    writeFileSync(
      join(this.confDir, 'containers.conf'),
      [
        '[containers]',
        'default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]',
        'log_driver = "k8s-file"',
        '',
        '[network]',
        'network_backend = "cni"',
        `cni_plugin_dirs = [${cniPluginDirs.map(q).join(', ')}]`,
        `network_config_dir = ${q(this.netDir)}`,
        // A default network of our own (podman writes it into network_config_dir on demand).
        'default_network = "tt-cli-podman"',
        'default_subnet = "10.77.9.0/24"',
        '',
        '[engine]',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        `events_logfile_path = ${q(join(dir, 'events.log'))}`,
        'runtime = "runc"',
        `tmp_dir = ${q(join(dir, 'tmp'))}`,
        `static_dir = ${q(join(dir, 'storage/libpod'))}`,
        `volume_path = ${q(join(dir, 'storage/volumes'))}`,
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(this.confDir, 'storage.conf'),
      [
        '[storage]',
        'driver = "overlay"',
        `graphroot = ${q(join(dir, 'storage'))}`,
        `runroot = ${q(join(dir, 'runroot'))}`,
        '',
      ].join('\n'),
    );
    writeFileSync(join(this.confDir, 'registries.conf'), 'unqualified-search-registries = []\n');
    this.env = {
      ...process.env,
      CONTAINERS_CONF: join(this.confDir, 'containers.conf'),
      CONTAINERS_STORAGE_CONF: join(this.confDir, 'storage.conf'),
      CONTAINERS_REGISTRIES_CONF: join(this.confDir, 'registries.conf'),
    };
  }

  /** Creates the isolated podman environment and imports the busybox image. */
  static async create(opts: PodmanOptions = {}): Promise<Podman> {
    requireRoot();
    requireCommands('podman', 'runc', 'conmon', 'nsenter', 'ip');
    const created = new CreatedPaths(HOST_PATHS);
    const dir = mkTmp('tartan-podman-');
    const p = new Podman(dir, opts.cniPluginDirs ?? [REF_CNI_DIR], created);
    try {
      await p.sh(['import', '--change', 'CMD=/bin/sh', busyboxRootfsTar(), PODMAN_IMAGE]);
    } catch (err) {
      await p.cleanup();
      throw err;
    }
    return p;
  }

  podman(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return run('podman', args, { timeoutMs: 120_000, ...opts, env: this.env });
  }

  async sh(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return sh('podman', args, { timeoutMs: 120_000, ...opts, env: this.env });
  }

  /** Writes a CNI network (conflist) that podman lists as network `list.name`. */
  addNetwork(list: { name: string } & Record<string, unknown>): string {
    const file = join(this.netDir, `${list.name}.conflist`);
    writeFileSync(file, JSON.stringify(list, null, 2));
    return file;
  }

  /**
   * `podman run -d` of a sleeping busybox container on the given networks; returns the
   * container id, its netns path and the wall time of `podman run`.
   */
  async runContainer(
    name: string,
    networks: string[],
    extraArgs: string[] = [],
  ): Promise<{ id: string; netns: string; ms: number }> {
    const r = await this.podman([
      'run',
      '-d',
      '--name',
      name,
      '--cgroup-parent',
      this.cgroupParent,
      '--cap-add',
      'NET_RAW',
      ...networks.flatMap((n) => ['--network', n]),
      ...extraArgs,
      PODMAN_IMAGE,
      'sleep',
      '3600',
    ]);
    if (r.code !== 0) throw new Error(`podman run ${name} failed (${r.code}):\n${r.stderr.trim()}`);
    const id = r.stdout.trim().split('\n').pop()!;
    const netns = (
      await this.sh(['inspect', '--format', '{{.NetworkSettings.SandboxKey}}', id])
    ).stdout.trim();
    return { id, netns, ms: r.ms };
  }

  exec(name: string, cmd: string[]): Promise<RunResult> {
    return this.podman(['exec', name, ...cmd]);
  }

  /** Removes every container (CNI DEL runs here), unmounts storage, removes the dirs. */
  /** `podman rm -f` of every container; returns what failed. */
  async removeAll(): Promise<string[]> {
    const ps = await this.podman(['ps', '-aq']);
    const ids = ps.stdout.split('\n').filter(Boolean);
    if (!ids.length) return [];
    const rm = await this.podman(['rm', '-f', '-t', '0', ...ids]);
    return rm.code === 0 ? [] : [`podman rm -f failed: ${rm.stderr.trim()}`];
  }

  async cleanup(): Promise<void> {
    const problems = await this.removeAll();
    // Unmount podman's storage (the overlay driver mounts its home onto itself) and shm.
    await unmountUnder(this.dir);
    const left = mountsUnder(this.dir);
    if (left.length) problems.push(`mounts left under ${this.dir}: ${left.join(', ')}`);
    // Also removes /etc/cni/net.d/87-podman-bridge.conflist if (and only if) this run created it.
    this.created.removeCreated();
    const cg = await removeCgroupTree(basename(this.cgroupParent));
    if (cg.length) problems.push(`cgroups still in use: ${cg.join(', ')}`);
    if (!left.length) removeDir(this.dir);
    if (problems.length) throw new Error(problems.join('\n'));
  }
}
