// The agent as the tests run it: a child process (known by its PID) inside a "node" netns,
// its CNI socket, HTTP probes on a unix socket (reachable from the test's own netns), its
// JSON log lines collected for assertions. The bundle is built here the way scripts/build.mjs
// builds the other Node programs (plus code splitting), so this tier does not depend on a
// build entry.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { AGENT_NODE_ENV, AGENT_NODE_FLAGS } from '../../src/agent/launch.js';
import { TARTAN, TARTAN_SHIM, type Fixture } from '../kernel/fixture.js';

const ROOT = join(import.meta.dirname, '../..');
export const AGENT_JS = join(ROOT, 'dist/tartan-agent.js');

let built: Promise<void> | undefined;

/** Builds dist/tartan (the shim) if stale and dist/tartan-agent.js. */
export function buildAgent(): Promise<void> {
  built ??= (async () => {
    const r = spawnSync('node', [join(ROOT, 'scripts/build.mjs')], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('scripts/build.mjs failed');
    // scripts/build.mjs builds dist/tartan-agent.js (split chunks: etcd loads only on use).
  })();
  return built;
}

export interface AgentProc {
  pid: number;
  child: ChildProcess;
  socket: string;
  http: string;
  lines(): Array<Record<string, unknown>>;
  /** The first log line that matches, waiting for it (the agent logs a call after answering it). */
  line(
    match: (l: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
  get(path: string): Promise<{ status: number; body: string }>;
  waitReady(timeoutMs?: number): Promise<void>;
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

export interface AgentArgs {
  node: string; // netns the agent runs in (its "host")
  socket: string;
  http: string;
  stateDir: string;
  networksDir: string;
  storePath: string;
  extra?: string[];
}

export function startAgent(a: AgentArgs): AgentProc {
  const args = [
    'netns',
    'exec',
    a.node,
    'env',
    ...AGENT_NODE_ENV,
    process.execPath,
    ...AGENT_NODE_FLAGS,
    AGENT_JS,
    '--socket',
    a.socket,
    '--metrics',
    a.http,
    '--state-dir',
    a.stateDir,
    '--networks-dir',
    a.networksDir,
    '--store-path',
    a.storePath,
    '--log-level',
    'debug',
    ...(a.extra ?? []),
  ];
  // `ip netns exec` and `env` exec the program in place: the PID is the agent's.
  const child = spawn('ip', args, { stdio: ['ignore', 'inherit', 'pipe'] });
  let buf = '';
  const lines: Array<Record<string, unknown>> = [];
  child.stderr!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ raw: line });
        if (process.env.TARTAN_DEBUG) process.stderr.write(`${line}\n`);
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const get = (path: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ socketPath: a.http, path }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
  const p: AgentProc = {
    pid: child.pid!,
    child,
    socket: a.socket,
    http: a.http,
    lines: () => lines,
    async line(match, timeoutMs = 5000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const l = lines.find(match);
        if (l) return l;
        if (Date.now() > end)
          throw new Error(`no such log line; last: ${JSON.stringify(lines.slice(-5))}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    exited,
    get,
    async waitReady(timeoutMs = 30_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        if (child.exitCode !== null) throw new Error(`agent exited: ${JSON.stringify(lines)}`);
        try {
          if ((await get('/readyz')).status === 200) return;
        } catch {
          // not listening yet
        }
        if (Date.now() > end)
          throw new Error(`agent not ready: ${JSON.stringify(lines.slice(-5))}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async kill(signal) {
      if (child.exitCode === null && child.signalCode === null) process.kill(p.pid, signal);
      return exited;
    },
  };
  return p;
}

/**
 * Fixture.cni with the executable a node runs for the configuration: the shim-only build the
 * DaemonSet installs when it names the agent, the full build otherwise.
 */
export function nodeCni(f: () => Fixture): Fixture['cni'] {
  return (command, node, pod, opts = {}) =>
    f().cni(command, node, pod, {
      plugin:
        typeof opts.conf === 'object' && opts.conf !== null && 'agentSocket' in opts.conf
          ? TARTAN_SHIM
          : TARTAN,
      ...opts,
    });
}
