// Agent tier: the `tartan` shim in front of the node agent. The same calls give the same
// bytes as the in-process core, error codes survive the hop, ADD fails fast and DEL is
// queued while the agent is down, and only root reaches the socket.
import { chmodSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ping, run } from '../../src/lab/sh.js';
import {
  TARTAN,
  TARTAN_SHIM,
  makeFixture,
  podAddrs,
  podLinks,
  type Fixture,
} from '../kernel/fixture.js';
import { buildAgent, nodeCni, startAgent, type AgentProc } from './harness.js';

let f: Fixture;
let agent: AgentProc | undefined;
let sock: string;

const cni = nodeCni(() => f);

const start = (extra: string[] = []) => {
  agent = startAgent({
    node: f.node('n1'),
    socket: sock,
    http: join(f.dir, 'agent-http.sock'),
    stateDir: join(f.dir, 'state-n1'),
    networksDir: f.netsDir,
    storePath: join(f.dir, 'ipam.db'),
    extra: ['--drain-ms', '300', ...extra],
  });
  return agent;
};
const viaAgent = (extra: Record<string, unknown> = {}) =>
  f.conf('n1', { agentSocket: sock, ...extra });
const iface = (ip: string) => ({ interfaces: [{ network: 'oam', ip, ip6: 'none' }] });
const stripMacs = (s: string) => s.replace(/"mac":"[0-9a-f:]+"/g, '"mac":"-"');

beforeAll(async () => {
  await buildAgent();
  f = await makeFixture('ag', [{ name: 'n1', nics: [{ name: 'eth1', segment: 'seg1' }] }]);
  // Open the fixture's directory to everyone, so that only the agent's own permissions
  // stand between a non-root process and the socket.
  chmodSync(f.dir, 0o755);
  sock = join(f.dir, 'run', 'agent.sock');
  f.writeNetworks([
    {
      name: 'oam',
      spec: {
        type: 'macvlan',
        device: 'eth1',
        mode: 'bridge',
        ipv4: { cidr: '10.71.0.0/24', pools: [{ start: '10.71.0.10', end: '10.71.0.99' }] },
      },
    },
  ]);
  await start().waitReady();
});

afterAll(async () => {
  await agent?.kill('SIGKILL');
  await f?.destroy();
});

describe('shim and agent', () => {
  it('ADD, CHECK and DEL through the agent equal the in-process core, byte for byte', async () => {
    const a = await f.pod('a');
    const b = await f.pod('b');
    // In-process first, then the same call through the agent.
    const direct = await cni('ADD', 'n1', a, { conf: f.conf('n1', iface('10.71.0.50')) });
    expect(direct.code, direct.stdout).toBe(0);
    expect((await cni('DEL', 'n1', a, { conf: f.conf('n1', iface('10.71.0.50')) })).code).toBe(0);

    const shim = await cni('ADD', 'n1', a, { conf: viaAgent(iface('10.71.0.50')) });
    expect(shim.code, shim.stdout).toBe(0);
    expect(stripMacs(shim.stdout)).toBe(stripMacs(direct.stdout));
    // Every log line about the call names the container, its netns and the interface.
    const done = await agent!.line((l) => l.msg === 'ADD done' && l.containerId === `cid-${a}`);
    expect(done).toMatchObject({ netns: `/run/netns/${a}`, ifname: 'eth0', code: 0 });
    // The kernel steps ran in the agent, over its own netlink (koffi), not in the shim.
    expect(done?.kernel).toBe('agent');
    expect(await agent!.line((l) => l.msg === 'kernel driver')).toMatchObject({
      driver: 'netlink',
    });

    // The kernel agrees, and traffic flows to a second pod attached through the agent.
    const eth0 = (await podLinks(a)).find((l) => l.ifname === 'eth0');
    expect(eth0?.linkinfo?.info_kind).toBe('macvlan');
    expect(await podAddrs(a, 'eth0')).toEqual(['10.71.0.50/24']);
    const rb = await cni('ADD', 'n1', b, { conf: viaAgent(iface('dynamic')) });
    expect(rb.code, rb.stdout).toBe(0);
    const ipB = (await podAddrs(b, 'eth0'))[0]!.split('/')[0]!;
    expect(await ping(a, ipB)).toBe(true);

    const check = await cni('CHECK', 'n1', a, {
      conf: { ...viaAgent(iface('10.71.0.50')), prevResult: shim.out },
    });
    expect(check.code, check.stdout).toBe(0);
    expect(check.stdout).toBe('');
    for (const p of [a, b])
      expect((await cni('DEL', 'n1', p, { conf: viaAgent(iface('dynamic')) })).code).toBe(0);
    expect((await podLinks(a)).map((l) => l.ifname)).toEqual(['lo']);
    expect((await podLinks(b)).map((l) => l.ifname)).toEqual(['lo']);
  });

  it('without netlink of its own, has the shim do the kernel work, else iproute2', async () => {
    // An agent whose koffi cannot load (or told so) asks each call's shim for its netlink.
    await agent!.kill('SIGKILL');
    await start(['--kernel-driver', 'iproute2']).waitReady();
    expect(await agent!.line((l) => l.msg === 'kernel driver')).toMatchObject({
      driver: 'iproute2',
    });
    const s = await f.pod('sh1');
    const a = await f.pod('v1a');
    const b = await f.pod('v1b');
    const viaShim = await cni('ADD', 'n1', s, { conf: viaAgent(iface('10.71.0.82')) });
    expect(viaShim.code, viaShim.stdout).toBe(0);
    const shimDone = await agent!.line((l) => l.msg === 'ADD done' && l.containerId === `cid-${s}`);
    expect(shimDone.kernel).toBe('shim');
    expect(await podAddrs(s, 'eth0')).toEqual(['10.71.0.82/24']);
    // A JIT-less JavaScriptCore has no FFI: the shim says so and the agent uses iproute2.
    const noFfi = await cni('ADD', 'n1', a, {
      conf: viaAgent(iface('10.71.0.80')),
      env: { BUN_JSC_useJIT: '0' },
    });
    expect(noFfi.code, noFfi.stdout).toBe(0);
    const done = await agent!.line((l) => l.msg === 'ADD done' && l.containerId === `cid-${a}`);
    expect(done?.kernel).toBe('agent');
    // A version 1 shim sends its request and half-closes; it gets one answer, no kernel calls.
    const conf = viaAgent(iface('10.71.0.81'));
    const env = {
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: `cid-${b}`,
      CNI_NETNS: `/run/netns/${b}`,
      CNI_IFNAME: 'eth0',
      CNI_PATH: '/usr/lib/cni',
    };
    const answer = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const c = createConnection(sock);
      c.on('connect', () => c.end(JSON.stringify({ v: 1, env, stdin: JSON.stringify(conf) })));
      c.on('data', (d: Buffer) => chunks.push(d));
      c.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      c.on('error', reject);
    });
    expect(JSON.parse(answer)).toMatchObject({ code: 0 });
    const v1 = await agent!.line((l) => l.msg === 'ADD done' && l.containerId === `cid-${b}`);
    expect(v1?.kernel).toBe('agent');
    expect(await podAddrs(b, 'eth0')).toEqual(['10.71.0.81/24']);
    expect(await ping(a, '10.71.0.81')).toBe(true);
    expect(await ping(s, '10.71.0.80')).toBe(true);
    // DEL through the shim's netlink too, then back to the default agent.
    for (const p of [s, a, b])
      expect((await cni('DEL', 'n1', p, { conf: viaAgent(iface('dynamic')) })).code).toBe(0);
    for (const p of [s, a, b]) expect((await podLinks(p)).map((l) => l.ifname)).toEqual(['lo']);
    await agent!.kill('SIGKILL');
    await start().waitReady();
  });

  it('leaves a pod interface it did not make alone, whichever process ran the kernel work', async () => {
    // The pod holds an eth0 of another plugin's: the ADD fails on the name, and its undo
    // must know that the failing op made nothing (agent netlink, shim netlink over the wire
    // and agent iproute2 each report where a run stopped).
    const runs: Array<[string, string[], Record<string, string>]> = [
      ['agent netlink', [], {}],
      ['shim netlink', ['--kernel-driver', 'iproute2'], {}],
      ['agent iproute2', ['--kernel-driver', 'iproute2'], { BUN_JSC_useJIT: '0' }],
    ];
    for (const [what, flags, env] of runs) {
      await agent!.kill('SIGKILL');
      await start(flags).waitReady();
      const p = await f.pod(`fe${runs.findIndex((r) => r[0] === what)}`);
      await run(
        'ip',
        ['-n', p, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'tt-fe'],
        '',
        process.env,
      );
      await run('ip', ['-n', p, 'addr', 'add', '192.0.2.7/24', 'dev', 'eth0'], '', process.env);
      const r = await cni('ADD', 'n1', p, { conf: viaAgent(iface('dynamic')), env });
      expect(r.code, what).toBe(1);
      expect((r.out as { code: number; msg: string }).msg, what).toMatch(/File exists/);
      expect(await podAddrs(p, 'eth0'), what).toEqual(['192.0.2.7/24']);
      expect((await podLinks(p)).map((l) => l.ifname).sort(), what).toEqual([
        'eth0',
        'lo',
        'tt-fe',
      ]);
    }
    await agent!.kill('SIGKILL');
    await start().waitReady();
  });

  it('keeps the core error code and message across the hop (fixed IP taken: 103)', async () => {
    const a = await f.pod('c');
    const b = await f.pod('d');
    expect((await cni('ADD', 'n1', a, { conf: viaAgent(iface('10.71.0.60')) })).code).toBe(0);
    const direct = await cni('ADD', 'n1', b, { conf: f.conf('n1', iface('10.71.0.60')) });
    const shim = await cni('ADD', 'n1', b, { conf: viaAgent(iface('10.71.0.60')) });
    expect(direct.code).toBe(1);
    expect(shim.code).toBe(1);
    expect((shim.out as { code: number }).code).toBe(103);
    expect(shim.stdout).toBe(direct.stdout);
    expect((await podLinks(b)).map((l) => l.ifname)).toEqual(['lo']);
    // A bad config is refused by the agent's core with the core's code, too.
    const bad = await cni('ADD', 'n1', b, {
      conf: viaAgent({ interfaces: [{ network: 'nope' }] }),
    });
    expect((bad.out as { code: number }).code).toBe(7);
    expect(await agent!.line((l) => l.msg === 'ADD failed' && l.code === 103)).toBeDefined();
    const metrics = (await agent!.get('/metrics')).body;
    expect(metrics).toContain('tartan_cni_errors_total{command="ADD",code="103"} 1');
    expect(metrics).toContain('tartan_cni_errors_total{command="ADD",code="7"} 1');
    expect((await cni('DEL', 'n1', a, { conf: viaAgent() })).code).toBe(0);
  });

  it('has a shim-only build that answers VERSION for any config and refuses to work alone', async () => {
    const pod = await f.pod('so');
    const plain = f.conf('n1', iface('dynamic')); // no agentSocket
    const v = await cni('VERSION', 'n1', undefined, { conf: plain, plugin: TARTAN_SHIM });
    expect(v.code, v.stdout).toBe(0);
    expect((v.out as { supportedVersions: string[] }).supportedVersions).toContain('1.1.0');
    const add = await cni('ADD', 'n1', pod, { conf: plain, plugin: TARTAN_SHIM });
    expect(add.code).toBe(1);
    expect(add.out).toMatchObject({ code: 7, details: 'ERR_CONFIG' });
    expect((add.out as { msg: string }).msg).toContain('agentSocket');
    const bad = await cni('ADD', 'n1', pod, { conf: '{"cniVersion":', plugin: TARTAN_SHIM });
    expect(bad.out).toMatchObject({ code: 6, details: 'ERR_DECODE' });
    expect((await podLinks(pod)).map((l) => l.ifname)).toEqual(['lo']);
    // The full build, given the same configuration, does the work in-process.
    const full = await cni('ADD', 'n1', pod, { conf: plain, plugin: TARTAN });
    expect(full.code, full.stdout).toBe(0);
    expect((await cni('DEL', 'n1', pod, { conf: plain, plugin: TARTAN })).code).toBe(0);
  });

  it('answers VERSION without the agent and fails ADD fast (code 11) while it is down', async () => {
    await agent!.kill('SIGKILL');
    const pod = await f.pod('e');
    const v = await cni('VERSION', 'n1', undefined, { conf: viaAgent() });
    expect(v.code).toBe(0);
    expect((v.out as { supportedVersions: string[] }).supportedVersions).toContain('1.1.0');
    const t0 = Date.now();
    const r = await cni('ADD', 'n1', pod, { conf: viaAgent(iface('dynamic')) });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(r.code).toBe(1);
    const err = r.out as { code: number; msg: string };
    expect(err.code).toBe(11);
    expect(err.msg).toContain(sock);
    expect((await podLinks(pod)).map((l) => l.ifname)).toEqual(['lo']);
    const st = await cni('STATUS', 'n1', undefined, { conf: viaAgent() });
    expect((st.out as { code: number }).code).toBe(50);
  });

  it('queues DEL on disk while the agent is down, and the restarted agent replays it', async () => {
    await start().waitReady();
    const pod = await f.pod('g');
    const add = await cni('ADD', 'n1', pod, { conf: viaAgent(iface('10.71.0.70')) });
    expect(add.code, add.stdout).toBe(0);
    await agent!.kill('SIGKILL');

    const del = await cni('DEL', 'n1', pod, { conf: viaAgent(iface('10.71.0.70')) });
    expect(del.code, del.stdout).toBe(0);
    const queue = join(f.dir, 'state-n1', 'pending-del');
    expect(readdirSync(queue)).toEqual([`cid-${pod}@eth0.json`]);
    expect((await podLinks(pod)).map((l) => l.ifname)).toContain('eth0');

    await start().waitReady();
    expect(readdirSync(queue)).toEqual([]);
    expect((await podLinks(pod)).map((l) => l.ifname)).toEqual(['lo']);
    // The address is free again: another container gets it.
    const again = await cni('ADD', 'n1', pod, {
      containerId: 'cid-again',
      conf: viaAgent(iface('10.71.0.70')),
    });
    expect(again.code, again.stdout).toBe(0);
    expect((await cni('DEL', 'n1', pod, { containerId: 'cid-again', conf: viaAgent() })).code).toBe(
      0,
    );
    expect(await agent!.line((l) => l.via === 'pending-del' && l.msg === 'DEL done')).toBeDefined();
  });

  it('answers ADD 11 with the reason while warm-up fails, and serves DEL meanwhile', async () => {
    await agent!.kill('SIGKILL');
    // An agent whose own datastore cannot open never finishes warming up.
    writeFileSync(join(f.dir, 'not-a-dir'), '');
    agent = startAgent({
      node: f.node('n1'),
      socket: sock,
      http: join(f.dir, 'agent-http.sock'),
      stateDir: join(f.dir, 'state-n1'),
      networksDir: f.netsDir,
      storePath: join(f.dir, 'not-a-dir', 'ipam.db'),
      extra: ['--ready-timeout-ms', '800'],
    });
    const pod = await f.pod('w');
    for (
      let i = 0;
      (await agent.get('/healthz').catch(() => ({ status: 0 }))).status !== 200;
      i++
    ) {
      if (i > 200) throw new Error(`agent not up: ${JSON.stringify(agent.lines())}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect((await agent.get('/readyz')).status).toBe(503);
    // Once a warm-up attempt has failed, an ADD is told why at once rather than held for
    // the ready timeout (a slow but healthy warm-up still holds it, up to that bound).
    expect(await agent.line((l) => l.msg === 'warm-up failed, retrying')).toBeDefined();
    const t0 = Date.now();
    const add = await cni('ADD', 'n1', pod, { conf: viaAgent(iface('dynamic')) });
    expect(Date.now() - t0).toBeLessThan(800);
    expect((add.out as { code: number; msg: string }).code).toBe(11);
    expect((add.out as { msg: string }).msg).toMatch(/not ready: .*not-a-dir/);
    // DEL does not wait for readiness: served now (the request names a store that works).
    const del = await cni('DEL', 'n1', pod, { conf: viaAgent() });
    expect(del.code, del.stdout).toBe(0);
    expect(readdirSync(join(f.dir, 'state-n1', 'pending-del'))).toEqual([]);
    expect(await agent.line((l) => l.msg === 'DEL done' && l.via === 'socket')).toBeDefined();
    await agent.kill('SIGKILL');
    await start().waitReady();
  });

  it('lets no non-root process reach the socket', async () => {
    const dirMode = statSync(join(f.dir, 'run')).mode & 0o777;
    const s = statSync(sock);
    expect(s.isSocket()).toBe(true);
    expect(dirMode).toBe(0o700);
    expect(s.mode & 0o777).toBe(0o600);
    expect(s.uid).toBe(0);
    const asNobody = (code: string) =>
      run(
        'setpriv',
        ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', code],
        undefined,
        process.env,
      );
    const probe = `require('net').connect(${JSON.stringify(sock)}).on('connect',()=>{console.log('CONNECTED');process.exit(0)}).on('error',e=>{console.log(e.code);process.exit(3)})`;
    const r = await asNobody(probe);
    expect(r.stdout.trim()).toBe('EACCES');
    // The socket's own mode holds even if its directory is opened up.
    chmodSync(join(f.dir, 'run'), 0o755);
    try {
      expect((await asNobody(probe)).stdout.trim()).toBe('EACCES');
    } finally {
      chmodSync(join(f.dir, 'run'), 0o700);
    }
    // The shim run as nobody gets "try again later" for ADD, and cannot queue a DEL either.
    const pod = await f.pod('h');
    for (const command of ['ADD', 'DEL']) {
      const r = await run(
        'setpriv',
        ['--reuid=65534', '--regid=65534', '--clear-groups', TARTAN_SHIM],
        JSON.stringify(viaAgent(iface('dynamic'))),
        {
          PATH: process.env.PATH,
          CNI_COMMAND: command,
          CNI_CONTAINERID: 'cid-nobody',
          CNI_IFNAME: 'eth0',
          CNI_NETNS: `/run/netns/${pod}`,
          CNI_PATH: '/usr/lib/cni',
        },
      );
      expect(r.code, r.stdout).toBe(1);
      const err = JSON.parse(r.stdout) as { code: number; msg: string };
      expect(err.code).toBe(11);
      expect(err.msg).toContain('EACCES');
    }
    expect(agent!.lines().some((l) => l.containerId === 'cid-nobody')).toBe(false);
  });
});
