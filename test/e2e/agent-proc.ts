// The Tartan node agent as a host process for the e2e tier (root netns, like a hostNetwork
// DaemonSet pod): started from dist/tartan-agent.js with the launch flags of
// src/agent/launch.ts, known by its PID, probes and metrics on a unix socket.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { AGENT_NODE_FLAGS } from '../../src/agent/launch.js';
import { AGENT_JS, buildAgent } from '../agent/harness.js';
import { pidAlive, sleep, stopPid } from '../harness/clients/util.js';

export type HostAgent = Awaited<ReturnType<typeof startHostAgent>>;

/** The node agent as a host process (root netns), known by its PID; probes on a unix socket. */
export async function startHostAgent(dir: string, conflist: string, extra: string[] = []) {
  await buildAgent();
  const socket = join(dir, 'agent.sock');
  const http = join(dir, 'agent-http.sock');
  const log = openSync(join(dir, 'agent.log'), 'a');
  const child = spawn(
    process.execPath,
    [...AGENT_NODE_FLAGS, AGENT_JS, '--cni-conf', conflist, '--metrics', http,
      '--drain-ms', '500', '--log-level', 'debug', ...extra],
    { env: { ...process.env, MALLOC_ARENA_MAX: '2' }, stdio: ['ignore', log, log], detached: true },
  ); // prettier-ignore
  closeSync(log);
  if (!child.pid) throw new Error('tartan-agent did not start');
  const pid = child.pid;
  child.unref();
  const get = (path: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ socketPath: http, path }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
  const end = Date.now() + 30_000;
  for (;;) {
    if (!pidAlive(pid))
      throw new Error(`tartan-agent exited:\n${readFileSync(join(dir, 'agent.log'), 'utf8')}`);
    const r = await get('/readyz').catch(() => ({ status: 0, body: '' }));
    if (r.status === 200) break;
    if (Date.now() > end) throw new Error('tartan-agent not ready within 30 s');
    await sleep(100);
  }
  return { pid, socket, get, stop: () => stopPid(pid, 5_000) };
}
