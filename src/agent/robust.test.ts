// The agent against what a node throws at it: a DEL queued while it was away and a newer
// ADD of the same attachment, a garbled request, a warm-up that keeps failing, and a shim
// of another wire version sending a DEL. Fake kernel, file store, a real unix socket.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createFakeKernel, type FakeKernel } from '../kernel/fake.js';
import { parseNetwork } from '../network/parse.js';
import { Agent, type AgentOptions } from './agent.js';
import { createLogger } from './log.js';
import { pendingDir, queueDel } from './pending.js';
import { runShim } from './shim.js';
import type { WireRequest } from './wire.js';

let dir = '';
let k: FakeKernel;
let agent: Agent | undefined;

const mv = parseNetwork(
  {
    apiVersion: 'tartan.io/v1alpha1',
    kind: 'ClusterNetwork',
    metadata: { name: 'mv' },
    spec: { type: 'macvlan', device: 'eth1', ipv4: { cidr: '10.5.0.0/24' } },
  },
  'test',
);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tartan-unit-'));
  k = createFakeKernel(['lo', 'eth1']);
  k.addNetns('/p');
});

afterEach(async () => {
  await agent?.stop();
  agent = undefined;
  rmSync(dir, { recursive: true, force: true });
});

const stateDir = () => join(dir, 'state');
const store = () => ({ type: 'file' as const, path: join(dir, 'ipam.db') });

function makeAgent(o: Partial<AgentOptions> = {}): Agent {
  agent = new Agent({
    socket: join(dir, 'agent.sock'),
    stateDir: stateDir(),
    networksDir: join(dir, 'nets'),
    store: store(),
    metricsAddress: '',
    maxConcurrent: 8,
    maxQueue: 100,
    readyTimeoutMs: 5000,
    drainMs: 0,
    reconcileIntervalMs: 60_000,
    pendingIntervalMs: 60_000,
    log: createLogger({ write: () => undefined }),
    kernel: k,
    networks: { networks: async () => new Map([['mv', mv]]), close: () => undefined },
    ...o,
  });
  return agent;
}

const request = (command: string): WireRequest => ({
  v: 2,
  env: {
    CNI_COMMAND: command,
    CNI_CONTAINERID: 'c1',
    CNI_NETNS: '/p',
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/usr/lib/cni',
  },
  stdin: JSON.stringify({
    cniVersion: '1.1.0',
    name: 'tartan',
    type: 'tartan',
    networksDir: join(dir, 'nets'),
    stateDir: stateDir(),
    store: store(),
    interfaces: [{ network: 'mv' }],
  }),
});

it("an ADD runs its attachment's queued DEL first, and a replay never undoes the ADD", async () => {
  const a = makeAgent();
  a.phase = 'ready';
  const r1 = await a.handle(request('ADD'));
  expect(r1.code, r1.stdout).toBe(0);
  const first = k.ns('/p').addrs.map((x) => x.cidr);
  // The agent was away when the runtime deleted the container: the shim queued the DEL.
  // The container starts again under the same id; a periodic replay starts meanwhile.
  await queueDel(pendingDir(stateDir()), request('DEL'));
  const [add, replayed] = await Promise.all([a.handle(request('ADD')), a.replayPending()]);
  expect(add.code, add.stdout).toBe(0);
  expect(replayed).toBe(0); // the ADD ran it, in its turn
  expect(readdirSync(pendingDir(stateDir()))).toEqual([]);
  // The new ADD's interface and address are there (the DEL ran before it, not after).
  expect(k.ns('/p').links.has('eth0')).toBe(true);
  expect(k.ns('/p').addrs).toHaveLength(1);
  expect(first).toHaveLength(1);
});

it('refuses a garbled request and goes on serving', async () => {
  const a = makeAgent();
  await a.start();
  const send = (line: string) =>
    new Promise<string>((resolve) => {
      const s = connect(join(dir, 'agent.sock'));
      let out = '';
      s.on('data', (d) => (out += d.toString()));
      s.on('close', () => resolve(out));
      s.on('error', () => resolve(out));
      s.end(line + '\n');
    });
  // An env value that is not a string: building the call's key threw, and the agent died.
  const bad = { ...request('ADD'), env: { ...request('ADD').env, CNI_IFNAME: { toString: 1 } } };
  expect(await send(JSON.stringify(bad))).toBe('');
  const ok = JSON.parse(await send(JSON.stringify(request('VERSION')))) as { code: number };
  expect(ok.code).toBe(0);
});

it('tells an ADD at once why it is not ready when warm-up keeps failing', async () => {
  const a = makeAgent({
    networks: {
      networks: () => Promise.reject(new Error('cannot parse /etc/tartan/networks/x.yaml')),
      close: () => undefined,
    },
  });
  await a.start();
  for (let i = 0; i < 100 && !(a as unknown as { warmUpError?: string }).warmUpError; i++)
    await new Promise((r) => setTimeout(r, 20));
  const t0 = Date.now();
  const r = await a.handle(request('ADD'));
  expect(Date.now() - t0).toBeLessThan(1000); // not the 5 s of readyTimeoutMs
  expect(JSON.parse(r.stdout)).toMatchObject({ code: 11, msg: expect.stringMatching(/x\.yaml/) });
});

it('a DEL refused for its wire version is queued for the next agent', async () => {
  const a = makeAgent();
  await a.start();
  const r = await runShim(
    { agentSocket: join(dir, 'agent.sock'), stateDir: stateDir() },
    request('DEL').env,
    request('DEL').stdin,
    99,
  );
  expect(r.code).toBe(0);
  expect(existsSync(pendingDir(stateDir()))).toBe(true);
  expect(readdirSync(pendingDir(stateDir()))).toEqual(['c1@eth0.json']);
});
