// Starts a real, single-member etcd on free loopback ports with its own data directory,
// and stops it by PID. Tests that need etcd fail (never skip) when it is not installed.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface EtcdHandle {
  endpoint: string;
  pid: number;
  stop(): Promise<void>;
}

const ETCD_BIN = process.env.TARTAN_ETCD_BIN ?? '/usr/bin/etcd';
const READY_TIMEOUT_MS = 15_000;

// Killed on exit as a last resort, so a crashed test run does not leave etcd behind.
const running = new Set<number>();
process.once('exit', () => {
  for (const pid of running) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

export async function startEtcd(): Promise<EtcdHandle> {
  if (!existsSync(ETCD_BIN)) {
    throw new Error(`etcd not installed: run .ci/install-deps.sh (no ${ETCD_BIN})`);
  }
  // A free port can be taken by someone else before etcd binds it; try again then.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce();
    } catch (e) {
      lastError = e;
    }
  }
  throw lastError;
}

async function startOnce(): Promise<EtcdHandle> {
  const [clientPort, peerPort] = await freePorts(2);
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const dataDir = await mkdtemp(join(tmpdir(), 'tartan-etcd-'));
  const args = [
    '--name=tartan-test',
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${endpoint}`,
    `--advertise-client-urls=${endpoint}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=tartan-test=${peer}`,
    '--initial-cluster-state=new',
    // One member on loopback: elect within milliseconds instead of the 1 s default.
    '--heartbeat-interval=10',
    '--election-timeout=100',
    '--quota-backend-bytes=4294967296',
    '--logger=zap',
    '--log-level=error',
  ];
  // Own session (setsid): a Ctrl-C on the test run reaches the runner, which then stops
  // etcd cleanly, rather than killing etcd under tests that are still running.
  const child = spawn(ETCD_BIN, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  const spawnFailed = new Promise<string>((r) => child.once('error', (e) => r(e.message)));
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pid = child.pid;
  if (pid === undefined) {
    await rm(dataDir, { recursive: true, force: true });
    throw new Error(`etcd did not start: ${await spawnFailed}`);
  }
  running.add(pid);

  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      // Exited between the check and the signal.
    }
  };
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        signal('SIGTERM');
        const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 5000));
        if ((await Promise.race([exited, timeout])) === 'timeout') {
          signal('SIGKILL');
          await exited;
        }
      }
      running.delete(pid);
      await rm(dataDir, { recursive: true, force: true });
    })());

  try {
    await waitReady(endpoint, child);
  } catch (e) {
    await stop();
    const why = e instanceof Error ? e.message : String(e);
    throw new Error(`etcd (${args.join(' ')}) not ready: ${why}\n${stderr}`);
  }
  return { endpoint, pid, stop };
}

async function waitReady(endpoint: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`exited with ${child.exitCode ?? child.signalCode}`);
    }
    try {
      const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
      const body = (await res.json()) as { health?: unknown };
      if (res.ok && body.health === 'true') return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no healthy answer within ${READY_TIMEOUT_MS} ms`);
}

/** Ports the kernel handed out for port 0, released again for the caller to bind. */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const addr = s.address();
    if (addr === null || typeof addr === 'string') throw new Error('no TCP address');
    return addr.port;
  });
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}
