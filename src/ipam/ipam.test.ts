import { describe, expect, it } from 'vitest';
import type { NetworkSpec } from '../network/schema.js';
import { createMemoryStore } from '../store/memory.js';
import type { Store } from '../store/types.js';
import { auditIpam } from './audit.js';
import { createIpam, type AllocateRequest } from './index.js';

const spec4: NetworkSpec = {
  type: 'bridge',
  ipv4: {
    cidr: '10.0.0.0/24',
    pools: [{ start: '10.0.0.10', end: '10.0.0.200' }],
    excludes: ['10.0.0.50', '10.0.0.64/28'],
    gateway: '10.0.0.1',
  },
};
const dual: NetworkSpec = {
  type: 'bridge',
  ipv4: { cidr: '10.1.0.0/24', gateway: '10.1.0.1' },
  ipv6: { cidr: 'fd00:1::/64', gateway: 'fd00:1::1' },
};

function setup(opts: Parameters<typeof createIpam>[1] = {}) {
  const store = createMemoryStore();
  const ipam = createIpam(store, opts);
  const snap = () => JSON.stringify([...store.dump().entries()]);
  const req = (over: Partial<AllocateRequest>): AllocateRequest => ({
    network: 'blue',
    spec: spec4,
    node: 'n1',
    containerId: 'c1',
    ifname: 'eth0',
    ...over,
  });
  return { store, ipam, snap, req };
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

describe('allocate', () => {
  it('gives dual-stack addresses from a /24 and an IPv6 /64, idempotently per handle', async () => {
    const { ipam, req } = setup();
    const a = await ipam.allocate(req({ spec: dual }));
    expect(a).toHaveLength(2);
    expect(a[0]).toMatchObject({ family: 4, prefixLength: 24, gateway: '10.1.0.1' });
    expect(a[1]).toMatchObject({ family: 6, prefixLength: 64, gateway: 'fd00:1::1' });
    expect(a[1]!.address).toMatch(/^fd00:1::/);
    expect(await ipam.allocate(req({ spec: dual }))).toEqual(a);
    expect(await ipam.find('blue', dual, 'c1', 'eth0')).toEqual(a);
    expect(await ipam.find('blue', dual, 'c1', 'eth0', 'n1')).toEqual(a);
    const b = await ipam.allocate(req({ spec: dual, containerId: 'c2' }));
    expect(b.map((x) => x.address)).not.toContain(a[0]!.address);
    expect(b.map((x) => x.address)).not.toContain(a[1]!.address);
  });

  it('supports none per family and fixed addresses with or without the prefix', async () => {
    const { ipam, req } = setup();
    expect(await ipam.allocate(req({ spec: dual, ip: 'none', ip6: 'none' }))).toEqual([]);
    const a = await ipam.allocate(req({ spec: dual, ip: '10.1.0.77/24', ip6: 'none' }));
    expect(a).toEqual([expect.objectContaining({ family: 4, address: '10.1.0.77' })]);
    const b = await ipam.allocate(
      req({ spec: dual, containerId: 'c2', ip: 'none', ip6: 'fd00:1::abcd:1' }),
    );
    expect(b).toEqual([expect.objectContaining({ family: 6, address: 'fd00:1::abcd:1' })]);
  });

  const refused: [string, Partial<AllocateRequest>, string][] = [
    ['outside every pool', { ip: '10.0.0.5' }, 'ERR_IPAM_OUT_OF_RANGE'],
    ['outside the cidr', { ip: '10.0.1.5' }, 'ERR_IPAM_OUT_OF_RANGE'],
    ['with a wrong prefix', { ip: '10.0.0.20/16' }, 'ERR_IPAM_OUT_OF_RANGE'],
    ['of the wrong family', { ip: 'fd00::1' }, 'ERR_IPAM_OUT_OF_RANGE'],
    ['for a family the network lacks', { ip6: 'dynamic' }, 'ERR_IPAM_OUT_OF_RANGE'],
    ['an excluded address', { ip: '10.0.0.50' }, 'ERR_IPAM_EXCLUDED'],
    ['inside an excluded cidr', { ip: '10.0.0.70' }, 'ERR_IPAM_EXCLUDED'],
    ['the network address', { ip: '10.0.0.0' }, 'ERR_IPAM_RESERVED'],
    ['the broadcast address', { ip: '10.0.0.255' }, 'ERR_IPAM_RESERVED'],
    ['the gateway', { ip: '10.0.0.1' }, 'ERR_IPAM_RESERVED'],
    [
      'a malformed range',
      { spec: { type: 'bridge', ipv4: { cidr: '10.0.0.1/24' } } },
      'ERR_IPAM_RANGE',
    ],
    ['an empty container id', { containerId: '' }, 'ERR_IPAM_OUT_OF_RANGE'],
  ];
  it.each(refused)(
    'refuses %s with a stable code and leaves the store unchanged',
    async (_n, over, code) => {
      const { ipam, snap, req } = setup();
      await ipam.allocate(req({ containerId: 'other' }));
      const before = snap();
      expect(await codeOf(ipam.allocate(req(over)))).toBe(code);
      expect(snap()).toBe(before);
    },
  );

  it('refuses a taken fixed address naming its holder, and leaves the store unchanged', async () => {
    const { ipam, snap, req } = setup();
    await ipam.allocate(
      req({ containerId: 'holder', ifname: 'net1', node: 'n7', ip: '10.0.0.20' }),
    );
    const before = snap();
    const p = ipam.allocate(req({ ip: '10.0.0.20' }));
    await expect(p).rejects.toMatchObject({ code: 'ERR_IPAM_TAKEN' });
    await expect(p).rejects.toThrow(
      /10\.0\.0\.20 is already held by container holder interface net1 on node n7/,
    );
    // Dual stack: the v6 side must not have been written either.
    const d = setup();
    await d.ipam.allocate(
      d.req({ spec: dual, containerId: 'holder', ip: '10.1.0.9', ip6: 'none' }),
    );
    const dualBefore = d.snap();
    expect(await codeOf(d.ipam.allocate(d.req({ spec: dual, ip: '10.1.0.9' })))).toBe(
      'ERR_IPAM_TAKEN',
    );
    expect(d.snap()).toBe(dualBefore);
    expect(snap()).toBe(before);
  });

  it('never hands out a route next hop, neither as a fixed nor as a dynamic address', async () => {
    const { ipam, req } = setup();
    const spec: NetworkSpec = {
      type: 'bridge',
      ipv4: {
        cidr: '10.3.0.0/29',
        gateway: '10.3.0.1',
        routes: [{ dst: '10.20.0.0/16', gw: '10.3.0.6' }],
      },
    };
    const p = ipam.allocate(req({ spec, ip: '10.3.0.6' }));
    await expect(p).rejects.toMatchObject({
      code: 'ERR_IPAM_RESERVED',
      message: expect.stringMatching(/10\.3\.0\.6 is the route next hop/),
    });
    const got: string[] = [];
    for (let i = 0; i < 4; i++)
      got.push((await ipam.allocate(req({ spec, containerId: `c${i}` })))[0]!.address);
    expect(got.sort()).toEqual(['10.3.0.2', '10.3.0.3', '10.3.0.4', '10.3.0.5']);
    expect(await codeOf(ipam.allocate(req({ spec, containerId: 'c9' })))).toBe(
      'ERR_IPAM_EXHAUSTED',
    );
  });

  it('gives a handle one address per family: a fixed one again, never a second', async () => {
    const { ipam, snap, req } = setup();
    const a = await ipam.allocate(req({ spec: dual, ip: '10.1.0.5', ip6: 'fd00:1::5' }));
    expect(await ipam.allocate(req({ spec: dual, ip: '10.1.0.5', ip6: 'fd00:1::5' }))).toEqual(a);
    const before = snap();
    const p = ipam.allocate(req({ spec: dual, ip: '10.1.0.7', ip6: 'fd00:1::5' }));
    await expect(p).rejects.toMatchObject({ code: 'ERR_IPAM_TAKEN' });
    await expect(p).rejects.toThrow(
      /container c1 interface eth0 on node n1 already holds 10\.1\.0\.5, not the requested 10\.1\.0\.7/,
    );
    expect(await codeOf(ipam.allocate(req({ spec: dual, ip: '10.1.0.5', ip6: 'fd00:1::7' })))).toBe(
      'ERR_IPAM_TAKEN',
    );
    expect(snap()).toBe(before);
    expect(await ipam.find('blue', dual, 'c1', 'eth0', 'n1')).toEqual(a);
    // A dynamic address in the node's own block counts the same.
    const d = await ipam.allocate(req({ network: 'green' }));
    const other = d[0]!.address === '10.0.0.20' ? '10.0.0.21' : '10.0.0.20';
    expect(await codeOf(ipam.allocate(req({ network: 'green', ip: other })))).toBe(
      'ERR_IPAM_TAKEN',
    );
    expect(await ipam.allocate(req({ network: 'green', ip: d[0]!.address }))).toEqual(d);
  });

  it('reports exhaustion with ERR_IPAM_EXHAUSTED, the store unchanged', async () => {
    const { ipam, snap, req } = setup();
    const spec: NetworkSpec = {
      type: 'bridge',
      ipv4: { cidr: '10.9.0.0/29', gateway: '10.9.0.1' },
    };
    const got = [];
    for (let i = 0; i < 5; i++)
      got.push(...(await ipam.allocate(req({ spec, containerId: `c${i}` }))));
    expect(got.map((a) => a.address).sort()).toEqual([
      '10.9.0.2',
      '10.9.0.3',
      '10.9.0.4',
      '10.9.0.5',
      '10.9.0.6',
    ]);
    const before = snap();
    expect(await codeOf(ipam.allocate(req({ spec, containerId: 'c9', node: 'n2' })))).toBe(
      'ERR_IPAM_EXHAUSTED',
    );
    expect(snap()).toBe(before);
    const empty: NetworkSpec = {
      type: 'bridge',
      ipv4: { cidr: '10.8.0.0/30', excludes: ['10.8.0.0/30'] },
    };
    expect(await codeOf(ipam.allocate(req({ spec: empty })))).toBe('ERR_IPAM_EXHAUSTED');
    expect(snap()).toBe(before);
  });

  it('rolls back the IPv4 address when IPv6 cannot be allocated', async () => {
    const { ipam, store, req } = setup();
    const spec: NetworkSpec = {
      type: 'bridge',
      ipv4: { cidr: '10.2.0.0/24' },
      ipv6: { cidr: 'fd00:2::/126', pools: [{ start: 'fd00:2::1', end: 'fd00:2::1' }] },
    };
    await ipam.allocate(req({ spec, containerId: 'first' }));
    expect(await codeOf(ipam.allocate(req({ spec })))).toBe('ERR_IPAM_EXHAUSTED');
    const audit = auditIpam([...store.dump().values()]);
    expect(audit.held.map((h) => h.handle)).toEqual(['first/eth0', 'first/eth0']);
  });

  it('refuses to cut blocks of another size once addresses are allocated', async () => {
    const { ipam, req } = setup();
    await ipam.allocate(req({}));
    const changed = { ...spec4, ipv4: { ...spec4.ipv4!, blockPrefix: 27 } };
    expect(await codeOf(ipam.allocate(req({ spec: changed, containerId: 'c2' })))).toBe(
      'ERR_IPAM_RANGE',
    );
  });
});

describe('release', () => {
  it('frees by allocations or by handle, idempotently', async () => {
    const { ipam, store, req } = setup();
    const a = await ipam.allocate(req({ spec: dual }));
    expect(
      await ipam.release({
        network: 'blue',
        spec: dual,
        containerId: 'c1',
        ifname: 'eth0',
        allocations: a,
      }),
    ).toBe(2);
    expect(
      await ipam.release({
        network: 'blue',
        spec: dual,
        containerId: 'c1',
        ifname: 'eth0',
        allocations: a,
      }),
    ).toBe(0);
    await ipam.allocate(req({ spec: dual, containerId: 'c2' }));
    expect(
      await ipam.release({
        network: 'blue',
        spec: dual,
        containerId: 'c2',
        ifname: 'eth0',
        node: 'n1',
      }),
    ).toBe(2);
    expect(
      await ipam.release({ network: 'blue', spec: dual, containerId: 'c2', ifname: 'eth0' }),
    ).toBe(0);
    expect(auditIpam([...store.dump().values()]).held).toEqual([]);
  });

  it('ignores a late release whose seq is older than the current holder', async () => {
    const { ipam, store, req } = setup();
    const old = await ipam.allocate(req({ ip: '10.0.0.30' }));
    await ipam.release({
      network: 'blue',
      spec: spec4,
      containerId: 'c1',
      ifname: 'eth0',
      allocations: old,
    });
    const again = await ipam.allocate(req({ ip: '10.0.0.30' }));
    expect(again[0]!.seq).toBeGreaterThan(old[0]!.seq);
    expect(
      await ipam.release({
        network: 'blue',
        spec: spec4,
        containerId: 'c1',
        ifname: 'eth0',
        allocations: old,
      }),
    ).toBe(0);
    expect(auditIpam([...store.dump().values()]).held).toMatchObject([
      { address: '10.0.0.30', seq: again[0]!.seq },
    ]);
  });
});

describe('blocks', () => {
  const tiny: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.3.0.0/28', blockPrefix: 30 } };

  it('claims blocks per node and borrows from another node when none is free', async () => {
    const { ipam, store, req } = setup();
    const r = (i: number, node = 'a') => req({ spec: tiny, node, containerId: `c${i}` });
    const mine = [];
    for (let i = 0; i < 14; i++) mine.push((await ipam.allocate(r(i)))[0]!);
    const audit = auditIpam([...store.dump().values()]);
    expect(audit.blocks).toBe(4);
    expect(new Set(audit.held.map((h) => h.blockNode))).toEqual(new Set(['a']));
    await ipam.release({ network: 'blue', spec: tiny, containerId: 'c3', ifname: 'eth0' });
    const borrowed = await ipam.allocate(r(100, 'b'));
    expect(borrowed[0]!.address).toBe(mine[3]!.address);
    // A repeat on b finds the borrowed address through b's pointer, not by listing.
    expect(await ipam.allocate(r(100, 'b'))).toEqual(borrowed);
    expect(await ipam.find('blue', tiny, 'c100', 'eth0', 'b')).toEqual(borrowed);
    expect(
      await ipam.release({
        network: 'blue',
        spec: tiny,
        containerId: 'c100',
        ifname: 'eth0',
        node: 'b',
      }),
    ).toBe(1);
    // The pointer b kept to the borrowed address is gone with it.
    expect([...store.dump().keys()].filter((k) => k.includes('/borrowed/'))).toEqual([]);
    expect(auditIpam([...store.dump().values()]).misplaced).toEqual([]);
  });

  it('puts a fixed address into a block without affinity, which nodes borrow from', async () => {
    const { ipam, store, req } = setup();
    await ipam.allocate(req({ spec: tiny, node: 'a', ip: '10.3.0.5' }));
    const key = 'ipam/blue/v4/nodes/-/blocks/10.3.0.4_30';
    expect(store.dump().get(key)!.value).toMatchObject({ node: null });
    expect(store.dump().get('ipam/blue/v4/cidrs/10.3.0.4_30')!.value).toEqual({
      cidr: '10.3.0.4/30',
      node: null,
    });
    for (let i = 0; i < 13; i++)
      await ipam.allocate(req({ spec: tiny, node: 'z', containerId: `z${i}` }));
    const audit = auditIpam([...store.dump().values()]);
    expect(audit.held.filter((h) => h.blockNode === null)).toHaveLength(4);
    expect(audit.duplicates).toEqual([]);
    expect(await codeOf(ipam.allocate(req({ spec: tiny, node: 'z', containerId: 'z99' })))).toBe(
      'ERR_IPAM_EXHAUSTED',
    );
  });
});

describe('node cache', () => {
  function counting(store: Store) {
    const n = { reads: 0, writes: 0 };
    const s: Store = {
      ...store,
      get: ((k: string) => (n.reads++, store.get(k))) as Store['get'],
      list: ((p: string) => (n.reads++, store.list(p))) as Store['list'],
      create: (k, v) => (n.writes++, store.create(k, v)),
      update: (k, v, r) => (n.writes++, store.update(k, v, r)),
    };
    return { s, n };
  }

  it('makes the common allocation one compare-and-swap; without it, one list more', async () => {
    // Every /26 block of this range has room for all eleven allocations, wherever the random
    // probe lands (spec4's pool and excludes leave as few as 9 in some blocks).
    const roomy: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.2.0.0/24' } };
    for (const [nodeCache, reads] of [
      [true, 0],
      [false, 10],
    ] as const) {
      const { s, n } = counting(createMemoryStore());
      const ipam = createIpam(s, { nodeCache });
      await ipam.allocate({
        network: 'blue',
        spec: roomy,
        node: 'n1',
        containerId: 'first',
        ifname: 'eth0',
      });
      Object.assign(n, { reads: 0, writes: 0 });
      for (let i = 0; i < 10; i++)
        await ipam.allocate({
          network: 'blue',
          spec: roomy,
          node: 'n1',
          containerId: `c${i}`,
          ifname: 'eth0',
        });
      expect(n).toEqual({ reads, writes: 10 });
    }
  });

  it('never returns an address another process released, nor loses a write to a stale copy', async () => {
    const { store, req } = setup();
    const agent = createIpam(store);
    const other = createIpam(store);
    const a = await agent.allocate(req({}));
    await agent.allocate(req({ containerId: 'c2' }));
    // Another process releases c1 and takes an address in the agent's block.
    await other.release({ network: 'blue', spec: spec4, containerId: 'c1', ifname: 'eth0' });
    const taken = await other.allocate(req({ containerId: 'x', node: 'n2', ip: a[0]!.address }));
    const again = await agent.allocate(req({}));
    expect(again[0]!.address).not.toBe(taken[0]!.address);
    const more = await agent.allocate(req({ containerId: 'c3' }));
    const held = auditIpam([...store.dump().values()]).held.map((h) => `${h.handle} ${h.address}`);
    expect(held).toHaveLength(4);
    expect(held).toEqual(
      expect.arrayContaining([
        `c1/eth0 ${again[0]!.address}`,
        `c3/eth0 ${more[0]!.address}`,
        `x/eth0 ${taken[0]!.address}`,
      ]),
    );
    expect(auditIpam([...store.dump().values()]).duplicates).toEqual([]);
  });
});

describe('claims', () => {
  it('keeps the address across pod delete and re-create until the claim is released', async () => {
    const { ipam, store, req } = setup();
    const first = await ipam.allocate(req({ spec: dual, claim: 'db-0', containerId: 'p1' }));
    expect(
      await ipam.release({ network: 'blue', spec: dual, containerId: 'p1', ifname: 'eth0' }),
    ).toBe(0);
    const other = await ipam.allocate(req({ spec: dual, containerId: 'x', node: 'n2' }));
    expect(other.map((a) => a.address)).not.toContain(first[0]!.address);
    const second = await ipam.allocate(
      req({ spec: dual, claim: 'db-0', containerId: 'p2', node: 'n2' }),
    );
    expect(second.map((a) => a.address)).toEqual(first.map((a) => a.address));
    expect(await ipam.find('blue', dual, 'p2', 'eth0', 'n2')).toEqual(second);
    expect(
      await codeOf(
        ipam.allocate(req({ spec: dual, claim: 'db-0', containerId: 'p3', ip: '10.1.0.99' })),
      ),
    ).toBe('ERR_IPAM_CLAIM');
    await ipam.releaseClaim('blue', dual, 'db-0');
    // Still held by p2 until p2 goes.
    expect(
      auditIpam([...store.dump().values()]).held.filter((h) => h.handle === 'p2/eth0'),
    ).toHaveLength(2);
    expect(
      await ipam.release({ network: 'blue', spec: dual, containerId: 'p2', ifname: 'eth0' }),
    ).toBe(2);
    expect(store.dump().has('ipam/blue/claims/db-0')).toBe(false);
  });

  it('frees an unheld claimed address when the claim is released', async () => {
    const { ipam, store, req } = setup();
    await ipam.allocate(req({ claim: 'web-1', ip: '10.0.0.40' }));
    await ipam.release({ network: 'blue', spec: spec4, containerId: 'c1', ifname: 'eth0' });
    expect(await codeOf(ipam.allocate(req({ containerId: 'c9', ip: '10.0.0.40' })))).toBe(
      'ERR_IPAM_TAKEN',
    );
    await ipam.releaseClaim('blue', spec4, 'web-1');
    expect(auditIpam([...store.dump().values()]).held).toEqual([]);
    expect(await ipam.allocate(req({ containerId: 'c9', ip: '10.0.0.40' }))).toHaveLength(1);
  });
  it('lists claims with their addresses and current holders', async () => {
    const { ipam, req } = setup();
    expect(await ipam.claims('blue', dual)).toEqual([]);
    const [v4, v6] = await ipam.allocate(req({ spec: dual, claim: 'ns/db-0', containerId: 'p1' }));
    await ipam.allocate(req({ spec: dual, claim: 'ns/db-1', containerId: 'p2', ip6: 'none' }));
    await ipam.release({ network: 'blue', spec: dual, containerId: 'p2', ifname: 'eth0' });
    expect(await ipam.claims('blue', dual)).toEqual([
      { name: 'ns/db-0', ips: [`${v4!.address}/24`, `${v6!.address}/64`], holders: ['p1/eth0'] },
      { name: 'ns/db-1', ips: [expect.stringMatching(/^10\.1\.0\.\d+\/24$/)], holders: [] },
    ]);
    await ipam.releaseClaim('blue', dual, 'ns/db-1');
    expect((await ipam.claims('blue', dual)).map((c) => c.name)).toEqual(['ns/db-0']);
  });
});

describe('gc', () => {
  it('leaves a damaged borrow pointer alone: usage and GC of the network go on', async () => {
    const { store, ipam, req } = setup();
    await ipam.allocate(req({ containerId: 'live' }));
    const key = 'ipam/blue/v4/nodes/n2/borrowed/x%2Feth0';
    await store.create(key, { not: 'a pointer' });
    expect((await ipam.usage('blue', spec4))[0]).toMatchObject({ inUse: 1 });
    const valid = [{ containerId: 'live', ifname: 'eth0' }];
    for (const now of [0, 10_000_000])
      await ipam.gc({ network: 'blue', spec: spec4, valid, graceMs: 1000, now });
    expect(store.dump().get(key)?.value).toEqual({ not: 'a pointer' });
    expect(await ipam.find('blue', spec4, 'live', 'eth0')).toHaveLength(1);
  });

  it('deletes borrow pointers left by failed allocations, after two sightings, and no other', async () => {
    const { store, req } = setup();
    const tiny: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.3.0.0/28', blockPrefix: 30 } };
    // Block writes fail on demand, after the pointer to the borrowed block is written.
    let failBlockWrite = false;
    const flaky: Store = {
      ...store,
      update: async (key, value, rev) => {
        if (failBlockWrite && key.includes('/blocks/')) {
          failBlockWrite = false;
          throw new Error('injected store failure');
        }
        return store.update(key, value, rev);
      },
    };
    const ipam = createIpam(flaky);
    const r = (c: string, node: string) => req({ spec: tiny, node, containerId: c });
    const live: string[] = [];
    for (let i = 0; i < 14; i++) live.push(`c${i}`);
    for (const c of live) await ipam.allocate(r(c, 'a'));
    for (const c of ['c3', 'c4']) {
      await ipam.release({ network: 'blue', spec: tiny, containerId: c, ifname: 'eth0' });
      live.splice(live.indexOf(c), 1);
    }
    // Node a's blocks hold every block: b borrows.
    await ipam.allocate(r('c100', 'b'));
    live.push('c100');
    failBlockWrite = true;
    await expect(ipam.allocate(r('c200', 'b'))).rejects.toThrow(/injected/);
    failBlockWrite = true;
    await expect(ipam.allocate(r('c201', 'b'))).rejects.toThrow(/injected/);
    const pointer = (c: string) => `ipam/blue/v4/nodes/b/borrowed/${c}%2Feth0`;
    const pointers = () => [...store.dump().keys()].filter((k) => k.includes('/borrowed/')).sort();
    expect(pointers()).toEqual([pointer('c100'), pointer('c200'), pointer('c201')]);

    const valid = () => live.map((c) => ({ containerId: c, ifname: 'eth0' }));
    const gc = (now: number, node?: string) =>
      ipam.gc({
        network: 'blue',
        spec: tiny,
        valid: valid(),
        graceMs: 1000,
        now,
        ...(node ? { node } : {}),
      });
    await gc(10_000);
    expect(store.dump().get(pointer('c200'))!.value).toMatchObject({ gcMark: 10_000 });
    expect(store.dump().get(pointer('c100'))!.value).not.toHaveProperty('gcMark');
    // c201 is tried again between the sightings and fails again: its marked pointer was
    // written again first, and that new revision is what the next run sees.
    failBlockWrite = true;
    await expect(ipam.allocate(r('c201', 'b'))).rejects.toThrow(/injected/);
    await gc(11_000, 'a'); // another node's GC leaves b's records alone
    expect(pointers()).toHaveLength(3);
    await gc(11_000);
    expect(pointers()).toEqual([pointer('c100'), pointer('c201')]);
    expect(store.dump().get(pointer('c201'))!.value).toMatchObject({ gcMark: 11_000 });
    // Now it succeeds, and the next run finds the pointer leads to its alloc.
    const [got] = await ipam.allocate(r('c201', 'b'));
    live.push('c201');
    expect(await ipam.find('blue', tiny, 'c201', 'eth0', 'b')).toEqual([got]);
    await gc(20_000);
    expect(pointers()).toEqual([pointer('c100'), pointer('c201')]);
    expect(store.dump().get(pointer('c201'))!.value).not.toHaveProperty('gcMark');
    expect(await ipam.find('blue', tiny, 'c100', 'eth0', 'b')).toHaveLength(1);
  });

  it('frees only after two observations a grace period apart, never a valid attachment', async () => {
    const { store, req } = setup();
    const ipam = createIpam(store);
    await ipam.allocate(req({ containerId: 'live' }));
    await ipam.allocate(req({ containerId: 'dead' }));
    await ipam.allocate(req({ containerId: 'flap' }));
    await ipam.allocate(req({ containerId: 'elsewhere', node: 'n2' }));
    await ipam.allocate(req({ containerId: 'claimed', claim: 'c' }));
    await ipam.release({ network: 'blue', spec: spec4, containerId: 'claimed', ifname: 'eth0' });
    const valid = [{ containerId: 'live', ifname: 'eth0' }];
    const gc = (now: number, v = valid) =>
      // A fresh instance each time, as the CNI GC verb runs in a short-lived process.
      createIpam(store).gc({
        network: 'blue',
        spec: spec4,
        node: 'n1',
        valid: v,
        graceMs: 1000,
        now,
      });
    expect(await gc(0)).toEqual({ marked: 2, released: 0 });
    expect(await gc(999)).toEqual({ marked: 0, released: 0 });
    // flap is valid again: its mark is cleared, so the next run starts over for it.
    expect(await gc(1000, [...valid, { containerId: 'flap', ifname: 'eth0' }])).toEqual({
      marked: 0,
      released: 1,
    });
    expect(await gc(1500)).toEqual({ marked: 1, released: 0 });
    expect(await gc(2500)).toEqual({ marked: 0, released: 1 });
    const held = auditIpam([...store.dump().values()]).held.map(
      (h) => h.handle ?? `claim:${h.claim}`,
    );
    expect(held.sort()).toEqual(['claim:c', 'elsewhere/eth0', 'live/eth0']);
  });
});

describe('gc and a repeated ADD', () => {
  it('an address asked for again by its handle starts a new grace period', async () => {
    const { store, req } = setup();
    const gc = (now: number) =>
      createIpam(store).gc({
        network: 'blue',
        spec: spec4,
        node: 'n1',
        valid: [],
        graceMs: 1000,
        now,
      });
    // An ADD died after allocating, before the pod was recorded: GC marks its address.
    const [a] = await createIpam(store).allocate(req({ containerId: 'c1' }));
    expect(await gc(0)).toEqual({ marked: 1, released: 0 });
    // The runtime repeats the ADD just before the grace period ends (and GC's list was
    // taken before it): the address is the pod's again, not garbage seen 1 s from now.
    const [b] = await createIpam(store).allocate(req({ containerId: 'c1' }));
    expect(b!.address).toBe(a!.address);
    expect(await gc(1000)).toEqual({ marked: 1, released: 0 });
    // The same with a claim.
    const [c] = await createIpam(store).allocate(req({ containerId: 'c2', claim: 'db-0' }));
    await createIpam(store).release({
      network: 'blue',
      spec: spec4,
      containerId: 'c2',
      ifname: 'eth0',
    });
    const [d] = await createIpam(store).allocate(req({ containerId: 'c3', claim: 'db-0' }));
    expect(d!.address).toBe(c!.address);
  });
});

describe('store records', () => {
  it('reports a corrupt block as ERR_STORE_CORRUPT naming the key', async () => {
    // The first block is the range's lowest (10.0.0.0/26), never the one claimed below.
    const { ipam, store, req } = setup({ random: () => 0 });
    await ipam.allocate(req({}));
    const key = [...store.dump().keys()].find((k) => k.includes('/blocks/'))!;
    const e = await store.get(key);
    await store.update(key, { ...(e!.value as object), allocs: { x: 1 } }, e!.rev);
    const p = ipam.allocate(req({ containerId: 'c2' }));
    await expect(p).rejects.toMatchObject({ code: 'ERR_STORE_CORRUPT' });
    await expect(p).rejects.toThrow(key);
    const stray = 'ipam/blue/v4/nodes/n9/blocks/10.0.0.0_26';
    await store.create(stray, 'junk');
    await expect(ipam.allocate(req({ node: 'n9' }))).rejects.toThrow(stray);
    const owner = 'ipam/blue/v4/cidrs/10.0.0.192_26';
    await store.create(owner, { cidr: '10.0.0.0/26', node: 'x' });
    // Another node: a fixed request reads its node's records first, and n1's are corrupt.
    await expect(ipam.allocate(req({ node: 'n8', ip: '10.0.0.195' }))).rejects.toThrow(owner);
  });

  it('gives ERR_IPAM_CONTENTION after bounded, jittered retries', async () => {
    const store = createMemoryStore();
    const sleeps: number[] = [];
    const ipam = createIpam(
      {
        ...store,
        update: async () => undefined,
        // Only the network's metadata gets written; every block write loses its race.
        create: async (k, v) => (k.endsWith('/meta') ? store.create(k, v) : undefined),
      },
      { maxRetries: 4, random: () => 0.5, sleep: async (ms) => void sleeps.push(ms) },
    );
    const p = ipam.allocate({
      network: 'blue',
      spec: spec4,
      node: 'n1',
      containerId: 'c',
      ifname: 'eth0',
    });
    expect(await codeOf(p)).toBe('ERR_IPAM_CONTENTION');
    expect(sleeps).toEqual([0.5, 1, 2, 4]);
  });

  it('reports usage', async () => {
    const { ipam, req } = setup();
    await ipam.allocate(req({ spec: dual }));
    expect(await ipam.usage('blue', dual)).toEqual([
      { family: 4, capacity: 253n, inUse: 1, blocks: 1 },
      { family: 6, capacity: 2n ** 64n - 2n, inUse: 1, blocks: 1 },
    ]);
  });
});
