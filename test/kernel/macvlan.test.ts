// Kernel tier: macvlan pods on one node, fixed and dynamic IPv4 + IPv6, read back from the
// kernel and proven by real pings; DEL leaves nothing behind.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { ping, sh } from '../../src/lab/sh.js';
import { makeFixture, podAddrs, podLinks, type Fixture } from './fixture.js';

let f: Fixture;
let a: string;
let b: string;

beforeAll(async () => {
  f = await makeFixture('mv', [{ name: 'n1', nics: [{ name: 'eth1', segment: 'seg1' }] }]);
  f.writeNetworks([
    {
      name: 'oam',
      spec: {
        type: 'macvlan',
        device: 'eth1',
        mode: 'bridge',
        ipv4: {
          cidr: '10.61.0.0/24',
          pools: [{ start: '10.61.0.10', end: '10.61.0.99' }],
          gateway: '10.61.0.1',
        },
        ipv6: { cidr: 'fd00:61::/64' },
      },
    },
  ]);
  a = await f.pod('a');
  b = await f.pod('b');
});

afterAll(async () => {
  await f?.destroy();
});

describe('macvlan', () => {
  it('gives two pods fixed and dynamic dual-stack addresses that reach each other', async () => {
    const conf = (ip: string) =>
      f.conf('n1', { interfaces: [{ network: 'oam', ip, ip6: 'dynamic' }] });
    const ra = await f.cni('ADD', 'n1', a, { conf: conf('10.61.0.50') });
    expect(ra.code, ra.stdout).toBe(0);
    const rb = await f.cni('ADD', 'n1', b, { conf: conf('dynamic') });
    expect(rb.code, rb.stdout).toBe(0);

    const res = ra.out as {
      cniVersion: string;
      interfaces: Array<{ name: string; sandbox?: string; mac?: string }>;
      ips: Array<{ address: string; interface: number; gateway?: string }>;
    };
    expect(res.cniVersion).toBe('1.1.0');
    expect(res.interfaces[0]).toMatchObject({ name: 'eth0', sandbox: `/run/netns/${a}` });
    expect(res.ips.map((i) => i.address)).toContain('10.61.0.50/24');

    const la = (await podLinks(a)).find((l) => l.ifname === 'eth0')!;
    expect(la.linkinfo?.info_kind).toBe('macvlan');
    expect(la.flags).toContain('UP');
    expect(res.interfaces[0]!.mac).toBe(la.address);
    const addrsA = await podAddrs(a, 'eth0');
    expect(addrsA).toContain('10.61.0.50/24');
    const v6a = addrsA.find((x) => x.startsWith('fd00:61::'))!;
    expect(v6a).toMatch(/\/64$/);
    const addrsB = await podAddrs(b, 'eth0');
    const v4b = addrsB.find((x) => x.startsWith('10.61.0.'))!.split('/')[0]!;
    const v6b = addrsB.find((x) => x.startsWith('fd00:61::'))!.split('/')[0]!;
    expect(v4b).not.toBe('10.61.0.50');

    // Telco default: no DAD delay, GARP / unsolicited NA on link up.
    expect(
      (
        await sh('ip', ['netns', 'exec', a, 'cat', '/proc/sys/net/ipv6/conf/eth0/accept_dad'])
      ).trim(),
    ).toBe('0');
    expect(
      (
        await sh('ip', ['netns', 'exec', a, 'cat', '/proc/sys/net/ipv4/conf/eth0/arp_notify'])
      ).trim(),
    ).toBe('1');
    const tentative = await sh('ip', ['-n', a, '-6', 'addr', 'show', 'dev', 'eth0', 'tentative']);
    expect(tentative.trim()).toBe('');

    // Default route via the network's gateway.
    const routes = await sh('ip', ['-n', a, 'route', 'show', 'default']);
    expect(routes).toContain('via 10.61.0.1 dev eth0');

    expect(await ping(a, v4b)).toBe(true);
    expect(await ping(b, '10.61.0.50')).toBe(true);
    expect(await ping(a, v6b)).toBe(true);

    const ca = await f.cni('CHECK', 'n1', a, {
      conf: { ...conf('10.61.0.50'), prevResult: ra.out },
    });
    expect(ca.code, ca.stdout).toBe(0);
  });

  it('DEL removes the interfaces and frees the fixed address for the next pod', async () => {
    const conf = (ip: string) => f.conf('n1', { interfaces: [{ network: 'oam', ip }] });
    expect((await f.cni('DEL', 'n1', a, { conf: conf('10.61.0.50') })).code).toBe(0);
    expect((await podLinks(a)).map((l) => l.ifname)).toEqual(['lo']);
    // DEL is idempotent.
    expect((await f.cni('DEL', 'n1', a, { conf: conf('10.61.0.50') })).code).toBe(0);
    // The same fixed address now goes to another container.
    const r = await f.cni('ADD', 'n1', a, { containerId: 'cid-other', conf: conf('10.61.0.50') });
    expect(r.code, r.stdout).toBe(0);
    expect(await podAddrs(a, 'eth0')).toContain('10.61.0.50/24');
    expect(
      (await f.cni('DEL', 'n1', a, { containerId: 'cid-other', conf: conf('10.61.0.50') })).code,
    ).toBe(0);
    expect((await f.cni('DEL', 'n1', b, { conf: conf('dynamic') })).code).toBe(0);
    expect((await podLinks(b)).map((l) => l.ifname)).toEqual(['lo']);
  });

  it('speaks netlink, and falls back to iproute2 where bun:ffi is unavailable', async () => {
    const d = await f.pod('d');
    const conf = f.conf('n1', { interfaces: [{ network: 'oam', ip: '10.61.0.70' }] });
    const traced = (env: Record<string, string> = {}) =>
      f.cni('ADD', 'n1', d, { conf, env: { TARTAN_TRACE: '1', ...env } });
    const fast = await traced();
    expect(fast.code, fast.stdout).toBe(0);
    expect(fast.stderr).toContain('"kernel driver netlink"');
    expect((await f.cni('DEL', 'n1', d, { conf })).code).toBe(0);
    // A JIT-less JavaScriptCore has no FFI: the same ADD goes through iproute2.
    const slow = await traced({ BUN_JSC_useJIT: '0' });
    expect(slow.code, slow.stdout).toBe(0);
    expect(slow.stderr).toContain('kernel driver iproute2 (FFI unavailable');
    expect(await podAddrs(d, 'eth0')).toContain('10.61.0.70/24');
    // Its neighbour attached over netlink: traffic both ways.
    const e = await f.pod('e');
    const confE = f.conf('n1', { interfaces: [{ network: 'oam', ip: '10.61.0.71' }] });
    expect((await f.cni('ADD', 'n1', e, { conf: confE })).code).toBe(0);
    expect(await ping(d, '10.61.0.71')).toBe(true);
    expect(await ping(e, '10.61.0.70')).toBe(true);
    const del = await f.cni('DEL', 'n1', d, { conf, env: { BUN_JSC_useJIT: '0' } });
    expect(del.code, del.stdout).toBe(0);
    expect((await f.cni('DEL', 'n1', e, { conf: confE })).code).toBe(0);
    expect((await podLinks(d)).map((l) => l.ifname)).toEqual(['lo']);
    expect((await podLinks(e)).map((l) => l.ifname)).toEqual(['lo']);
  });

  it('announces a new pod with a gratuitous ARP and an unsolicited neighbour advertisement', async () => {
    const c = await f.pod('c');
    // Capture on the fabric side of the node's NIC, i.e. what the switch would see.
    const cap = (filter: string) => {
      const p = spawn(
        'ip',
        ['netns', 'exec', f.topo.fabric, 'tcpdump', '-l', '-n', '-c', '1', '-i', 'n0p0', filter],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const done = new Promise<string>((resolve) => {
        const t = setTimeout(() => p.kill('SIGKILL'), 8000);
        p.on('close', () => {
          clearTimeout(t);
          resolve(out);
        });
      });
      return { p, done };
    };
    const arp = cap('arp and arp[14:4] = 0x0a3d003c and arp[24:4] = 0x0a3d003c'); // sender = target = 10.61.0.60
    const na = cap('icmp6 and ip6[40] = 136');
    await new Promise((r) => setTimeout(r, 700)); // let tcpdump attach
    const conf = f.conf('n1', {
      interfaces: [{ network: 'oam', ip: '10.61.0.60', ip6: 'fd00:61::60' }],
    });
    const r = await f.cni('ADD', 'n1', c, { conf });
    expect(r.code, r.stdout).toBe(0);
    const [garp, unsolicited] = await Promise.all([arp.done, na.done]);
    expect(garp).toMatch(/10\.61\.0\.60/);
    expect(unsolicited).toMatch(/neighbor advertisement/);
    expect((await f.cni('DEL', 'n1', c, { conf })).code).toBe(0);
  });
});
