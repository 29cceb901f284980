// Agent tier: the agent under load and through its life. Parallel ADDs on networks with and
// without host parents, metrics, the host parent reconciler, SIGKILL in the middle of a
// burst followed by restart and CNI GC (nothing leaks), and SIGTERM draining.
import { readdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHostState } from '../../src/attach/host-state.js';
import { createIpam } from '../../src/ipam/index.js';
import { nsjson, ping, sh } from '../../src/lab/sh.js';
import { createFileStore } from '../../src/store/file.js';
import { makeFixture, podAddrs, podLinks, type Fixture } from '../kernel/fixture.js';
import { buildAgent, nodeCni, startAgent, type AgentProc } from './harness.js';

let f: Fixture;
let agent: AgentProc | undefined;
let sock: string;

const cni = nodeCni(() => f);

const nets = [
  {
    name: 'mv',
    spec: { type: 'macvlan', device: 'eth1', ipv4: { cidr: '10.72.0.0/24' } },
  },
  // A bridge is a host parent: created on first use, ref-counted, repaired, removed.
  { name: 'br', spec: { type: 'bridge', bridge: 'tbr-agent', ipv4: { cidr: '10.73.0.0/24' } } },
  // A bridge over a VXLAN device (eth1 gets its underlay address in the test that uses it).
  {
    name: 'bvx',
    spec: {
      type: 'bridge',
      device: 'eth1',
      vxlan: { vni: 7676, port: 4789, remotes: ['192.168.76.2'] },
      ipv4: { cidr: '10.76.0.0/24' },
    },
  },
];

const start = (extra: string[] = []) => {
  agent = startAgent({
    node: f.node('n1'),
    socket: sock,
    http: join(f.dir, 'agent-http.sock'),
    stateDir: join(f.dir, 'state-n1'),
    networksDir: f.netsDir,
    storePath: join(f.dir, 'ipam.db'),
    extra: ['--reconcile-ms', '300', '--pending-ms', '300', '--drain-ms', '1500', ...extra],
  });
  return agent;
};
const conf = (network: string, extra: Record<string, unknown> = {}) =>
  f.conf('n1', { agentSocket: sock, interfaces: [{ network }], ...extra });
const nodeLinks = async () =>
  (await nsjson<Array<{ ifname: string }>>(f.node('n1'), 'link', 'show'))
    .map((l) => l.ifname)
    .filter((n) => n !== 'lo' && n !== 'eth1');

async function records() {
  const st = await openHostState(join(f.dir, 'state-n1'));
  try {
    return {
      attachments: st.listAttachments().length,
      parents: st.listParents().map((p) => p.name),
    };
  } finally {
    st.close();
  }
}

async function inUse(): Promise<number> {
  const store = await createFileStore(join(f.dir, 'ipam.db'));
  try {
    const ipam = createIpam(store);
    let n = 0;
    for (const net of nets)
      for (const u of await ipam.usage(net.name, net.spec as never)) n += u.inUse;
    return n;
  } finally {
    await store.close();
  }
}

/**
 * A call as a version 1 shim makes it (request, half-close, one answer), on a connection
 * opened ahead: `send` writes the request. Two calls can so reach the agent back to back in
 * a known order (two shim processes started 2 ms apart arrive in either order on a busy
 * machine).
 */
async function connected(
  command: 'ADD' | 'DEL',
  pod: string,
  c: Record<string, unknown>,
): Promise<{ send(): Promise<{ code: number; stdout: string }> }> {
  const env = {
    CNI_COMMAND: command,
    CNI_CONTAINERID: `cid-${pod}`,
    CNI_NETNS: `/run/netns/${pod}`,
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/usr/lib/cni',
  };
  const s = createConnection(sock);
  await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
  const chunks: Buffer[] = [];
  const answer = new Promise<{ code: number; stdout: string }>((resolve, reject) => {
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
    s.on('error', reject);
  });
  return {
    // A version 2 frame: the agent takes the request at its newline, as written. (A version 1
    // request ends at the half-close, and two sockets' FINs leave in no fixed order: CI on
    // b39f708 saw the DEL's first.)
    send: () => {
      s.write(JSON.stringify({ v: 2, env, stdin: JSON.stringify(c) }) + '\n');
      return answer.finally(() => s.destroy());
    },
  };
}

async function until(what: string, fn: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  await buildAgent();
  f = await makeFixture('al', [{ name: 'n1', nics: [{ name: 'eth1', segment: 'seg1' }] }]);
  sock = join(f.dir, 'run', 'agent.sock');
  f.writeNetworks(nets);
  await start().waitReady();
});

afterAll(async () => {
  await agent?.kill('SIGKILL');
  await f?.destroy();
});

describe('agent', () => {
  it('serves 20 parallel ADDs (with and without host parents) without a duplicate', async () => {
    const pods = await Promise.all(Array.from({ length: 20 }, (_, i) => f.pod(`p${i}`)));
    const net = (i: number) => (i % 2 === 0 ? 'mv' : 'br');
    const res = await Promise.all(pods.map((p, i) => cni('ADD', 'n1', p, { conf: conf(net(i)) })));
    for (const r of res) expect(r.code, r.stdout).toBe(0);
    const ips = await Promise.all(pods.map(async (p) => (await podAddrs(p, 'eth0'))[0]));
    expect(new Set(ips).size).toBe(20);
    expect(ips.every((x) => x !== undefined)).toBe(true);
    expect(await ping(pods[1]!, ips[3]!.split('/')[0]!)).toBe(true); // over the bridge

    const m = (await agent!.get('/metrics')).body;
    expect(m).toMatch(/tartan_cni_request_duration_seconds_count\{command="ADD"\} (2\d|[3-9]\d)/);
    expect(m).toContain('tartan_ipam_pool_in_use{network="mv",family="4"} 10');
    expect(m).toContain('tartan_ipam_pool_in_use{network="br",family="4"} 10');
    expect(m).toMatch(/tartan_ipam_pool_capacity\{network="mv",family="4"\} 25\d/);
    expect(m).toContain('tartan_agent_ready 1');
    expect((await records()).parents).toEqual(['tbr-agent']);

    const dels = await Promise.all(pods.map((p, i) => cni('DEL', 'n1', p, { conf: conf(net(i)) })));
    for (const r of dels) expect(r.code, r.stdout).toBe(0);
    expect(await nodeLinks()).toEqual([]);
    expect(await records()).toEqual({ attachments: 0, parents: [] });
    expect(await inUse()).toBe(0);
  });

  it('runs an ADD and its DEL sent together in order, beside other pods, leaving nothing', async () => {
    // The ADD and then its DEL, written back to back on connections opened ahead, so the
    // agent reads the ADD first: it must run the DEL after it (the DEL then finds the
    // record and the bridge parent the ADD made, and releases both), while the other pods'
    // ADDs go on beside them.
    const [x, y, z] = await Promise.all(['x', 'y', 'z'].map((n) => f.pod(n)));
    const [addX, delX] = [
      await connected('ADD', x!, conf('br')),
      await connected('DEL', x!, conf('br')),
    ];
    const others = [
      cni('ADD', 'n1', y!, { conf: conf('mv') }),
      cni('ADD', 'n1', z!, { conf: conf('mv') }),
    ];
    const results = await Promise.all([addX.send(), delX.send(), ...others]);
    for (const r of results) expect(r.code, r.stdout).toBe(0);
    expect((await podLinks(x!)).map((l) => l.ifname)).toEqual(['lo']);
    for (const p of [y!, z!])
      expect((await cni('DEL', 'n1', p, { conf: conf('mv') })).code).toBe(0);
    expect(await nodeLinks()).toEqual([]);
    expect(await records()).toEqual({ attachments: 0, parents: [] });
    expect(await inUse()).toBe(0);
  });

  it('re-creates a host parent deleted by hand and puts its pods back on it', async () => {
    const [a, b] = [await f.pod('ra'), await f.pod('rb')];
    for (const p of [a, b]) expect((await cni('ADD', 'n1', p, { conf: conf('br') })).code).toBe(0);
    const ipB = (await podAddrs(b, 'eth0'))[0]!.split('/')[0]!;
    await sh('ip', ['-n', f.node('n1'), 'link', 'del', 'tbr-agent']);
    await until('the bridge to come back', async () => (await nodeLinks()).includes('tbr-agent'));
    await until('traffic over it', () => ping(a, ipB, 1));
    const enslaved = await nsjson<Array<{ ifname: string; master?: string }>>(
      f.node('n1'),
      'link',
      'show',
      'master',
      'tbr-agent',
    );
    expect(enslaved.length).toBe(2);
    expect(
      agent!
        .lines()
        .some((l) => l.msg === 're-created missing host parent' && l.parent === 'tbr-agent'),
    ).toBe(true);
    expect((await agent!.get('/metrics')).body).toMatch(
      /tartan_host_parent_repairs_total\{action="created"\} [1-9]/,
    );
    for (const p of [a, b]) expect((await cni('DEL', 'n1', p, { conf: conf('br') })).code).toBe(0);
    expect(await nodeLinks()).toEqual([]);
  });

  it('puts a VXLAN device it re-creates back in the bridge that stayed', async () => {
    const node = f.node('n1');
    await sh('ip', ['-n', node, 'addr', 'add', '192.168.76.1/24', 'dev', 'eth1']);
    const masterOf = async () =>
      (await nsjson<{ master?: string }[]>(node, 'link', 'show', 'dev', 'tvx7676'))[0]?.master;
    const p = await f.pod('vx');
    try {
      expect((await cni('ADD', 'n1', p, { conf: conf('bvx') })).code).toBe(0);
      expect(await masterOf()).toBe('tbr-bvx');
      await sh('ip', ['-n', node, 'link', 'del', 'tvx7676']);
      await until('the VXLAN device back in its bridge', async () =>
        (await nodeLinks()).includes('tvx7676') ? (await masterOf()) === 'tbr-bvx' : false,
      );
      expect((await cni('DEL', 'n1', p, { conf: conf('bvx') })).code).toBe(0);
      expect(await nodeLinks()).toEqual([]);
    } finally {
      await sh('ip', ['-n', node, 'addr', 'del', '192.168.76.1/24', 'dev', 'eth1']);
    }
  });

  it('leaks nothing when killed with SIGKILL in a burst of ADD/DEL, restarted and GC run', async () => {
    const pods = await Promise.all(Array.from({ length: 12 }, (_, i) => f.pod(`k${i}`)));
    // Each pod cycles ADD -> DEL like a runtime would, DEL also after a failed ADD.
    let stop = false;
    const cycles = pods.map(async (p, i) => {
      const c = conf(i % 2 === 0 ? 'mv' : 'br');
      const codes: number[] = [];
      for (let n = 0; !stop; n++) {
        const id = `cid-${p}-${n}`;
        codes.push((await cni('ADD', 'n1', p, { containerId: id, conf: c })).code);
        codes.push((await cni('DEL', 'n1', p, { containerId: id, conf: c })).code);
      }
      return codes;
    });
    // Three kills at random moments, each followed by a restart while the burst goes on.
    for (let k = 0; k < 3; k++) {
      await new Promise((r) => setTimeout(r, 400 + Math.random() * 1200));
      await agent!.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
      start();
      await agent!.waitReady();
    }
    stop = true;
    const codes = (await Promise.all(cycles)).flat();
    // Most calls succeeded; those that met a dead agent got 11 (ADD) or were queued (DEL).
    expect(codes.filter((c) => c === 0).length).toBeGreaterThan(24);

    // The runtime's GC: none of these containers exists any more.
    const gc = await cni('GC', 'n1', undefined, {
      conf: f.conf('n1', { agentSocket: sock, 'cni.dev/valid-attachments': [] }),
    });
    expect(gc.code, gc.stdout).toBe(0);
    for (const p of pods) expect((await podLinks(p)).map((l) => l.ifname)).toEqual(['lo']);
    expect(await nodeLinks()).toEqual([]);
    expect(await records()).toEqual({ attachments: 0, parents: [] });
    expect(readdirSync(join(f.dir, 'state-n1', 'pending-del'))).toEqual([]);
    // An address allocated by a call killed before its record was written has no owner the
    // node knows of: CNI GC marks it, and it is freed once the grace period has passed.
    const store = await createFileStore(join(f.dir, 'ipam.db'));
    try {
      const ipam = createIpam(store);
      for (const net of nets)
        await ipam.gc({
          network: net.name,
          spec: net.spec as never,
          node: 'n1',
          valid: [],
          now: Date.now() + 6 * 60_000,
        });
    } finally {
      await store.close();
    }
    expect(await inUse()).toBe(0);
  });

  it('drains on SIGTERM: readiness fails and ADD is refused, DEL is still served', async () => {
    const p = await f.pod('t');
    expect((await cni('ADD', 'n1', p, { conf: conf('br') })).code).toBe(0);
    process.kill(agent!.pid, 'SIGTERM');
    await until('readiness to fail', async () => (await agent!.get('/readyz')).status === 503);
    expect((await agent!.get('/healthz')).status).toBe(200);
    const q = await f.pod('t2');
    const add = await cni('ADD', 'n1', q, { conf: conf('mv') });
    expect((add.out as { code: number }).code).toBe(11);
    expect((add.out as { msg: string }).msg).toContain('shutting down');
    const del = await cni('DEL', 'n1', p, { conf: conf('br') });
    expect(del.code, del.stdout).toBe(0);
    // Served by the agent, not queued: the pod and the parent are gone already.
    expect((await podLinks(p)).map((l) => l.ifname)).toEqual(['lo']);
    expect(await nodeLinks()).toEqual([]);
    expect(await agent!.exited).toBe(0);
  });
});
