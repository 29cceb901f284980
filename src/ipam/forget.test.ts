import { describe, expect, it } from 'vitest';
import type { NetworkSpec } from '../network/schema.js';
import { createMemoryStore } from '../store/memory.js';
import type { Store } from '../store/types.js';
import { auditIpam } from './audit.js';
import { forgetNetwork } from './forget.js';
import { createIpam } from './index.js';

const before: NetworkSpec = {
  type: 'bridge',
  ipv4: { cidr: '10.0.0.0/16', blockPrefix: 26 },
  ipv6: { cidr: 'fd00:1::/64' },
};
const after: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.0.0.0/24', blockPrefix: 28 } };

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

/** A network that held addresses on two nodes, one of them by a claim, all released. */
async function used() {
  const store = createMemoryStore();
  const ipam = createIpam(store);
  const req = { network: 'blue', spec: before, ifname: 'eth0' };
  await ipam.allocate({ ...req, node: 'n1', containerId: 'c1' });
  await ipam.allocate({ ...req, node: 'n2', containerId: 'c2', ip: '10.0.200.7' });
  await ipam.allocate({ ...req, node: 'n1', containerId: 'c3', claim: 'db-0' });
  await ipam.allocate({
    network: 'green',
    spec: before,
    node: 'n1',
    containerId: 'c9',
    ifname: 'eth0',
  });
  return { store, ipam, req };
}

describe('forgetNetwork', () => {
  it('keeps everything while an address is held, a claim-kept one too', async () => {
    const { store, ipam, req } = await used();
    const all = () => store.list('ipam/');
    const snapshot = JSON.stringify(await all());
    expect(await forgetNetwork(store, 'blue')).toEqual({
      forgotten: false,
      held: 6,
      corrupt: 0,
      changed: false,
    });
    await ipam.release({ ...req, containerId: 'c1' });
    await ipam.release({ ...req, containerId: 'c2' });
    await ipam.release({ ...req, containerId: 'c3' });
    // The claim keeps its two addresses after its pod's release.
    expect(await forgetNetwork(store, 'blue')).toMatchObject({ forgotten: false, held: 2 });
    expect(JSON.stringify(await all())).not.toBe(snapshot);
  });

  it('removes every record of a network that holds nothing, and only that network', async () => {
    const { store, ipam, req } = await used();
    for (const c of ['c1', 'c2', 'c3']) await ipam.release({ ...req, containerId: c });
    await ipam.releaseClaim('blue', before, 'db-0');
    const green = JSON.stringify(await store.list('ipam/green/'));
    const n = (await store.list('ipam/blue/')).length;
    expect(n).toBeGreaterThan(0);
    expect(await forgetNetwork(store, 'blue')).toEqual({ forgotten: true, records: n });
    expect(await store.list('ipam/blue/')).toEqual([]);
    expect(JSON.stringify(await store.list('ipam/green/'))).toBe(green);
  });

  it('lets a network of the same name start again with another cidr and block size', async () => {
    const { store, ipam, req } = await used();
    for (const c of ['c1', 'c2', 'c3']) await ipam.release({ ...req, containerId: c });
    await ipam.releaseClaim('blue', before, 'db-0');
    const fresh = createIpam(store);
    const again = { ...req, spec: after, node: 'n1', containerId: 'c4' };
    expect(await codeOf(fresh.allocate(again))).toBe('ERR_IPAM_RANGE');
    await forgetNetwork(store, 'blue');
    const [a] = await fresh.allocate(again);
    expect(a).toMatchObject({ family: 4, prefixLength: 24 });
    expect((await store.get('ipam/blue/v4/meta'))?.value).toEqual({
      cidr: '10.0.0.0/24',
      blockPrefix: 28,
    });
  });

  it('forgets one family and leaves the other with its addresses', async () => {
    const { store, ipam, req } = await used();
    for (const c of ['c1', 'c2', 'c3']) await ipam.release({ ...req, containerId: c });
    await ipam.releaseClaim('blue', before, 'db-0');
    await ipam.allocate({ ...req, node: 'n1', containerId: 'c5' });
    const v6 = await store.list('ipam/blue/v6/');
    expect(await forgetNetwork(store, 'blue', 4)).toMatchObject({ forgotten: false, held: 1 });
    const [, six] = await ipam.find('blue', before, 'c5', 'eth0');
    expect(six?.family).toBe(6);
    await ipam.release({ ...req, containerId: 'c5', allocations: [{ ...six!, seq: six!.seq }] });
    expect(await forgetNetwork(store, 'blue', 6)).toMatchObject({ forgotten: true });
    expect(await store.list('ipam/blue/v6/')).toEqual([]);
    expect((await store.list('ipam/blue/v4/')).length).toBeGreaterThan(0);
    expect(v6.length).toBeGreaterThan(0);
  });

  it('stops at a block that changed after the list, leaving records the allocator reads', async () => {
    const { store, ipam, req } = await used();
    for (const c of ['c1', 'c2', 'c3']) await ipam.release({ ...req, containerId: c });
    await ipam.releaseClaim('blue', before, 'db-0');
    // An allocation between the list and the deletes: the block's delete fails its CAS.
    const racing: Store = {
      ...store,
      async list<T>(prefix: string) {
        const out = await store.list<T>(prefix);
        if (prefix === 'ipam/blue/' && !raced) {
          raced = true;
          await ipam.allocate({ ...req, node: 'n1', containerId: 'late' });
        }
        return out;
      },
    };
    let raced = false;
    expect(await forgetNetwork(racing, 'blue')).toMatchObject({ forgotten: false, changed: true });
    const [late] = await ipam.find('blue', before, 'late', 'eth0', 'n1');
    expect(late).toBeDefined();
    // Still one consistent network: more allocations work, none twice.
    const more = await ipam.allocate({ ...req, node: 'n1', containerId: 'c6' });
    expect(more.map((x) => x.address)).not.toContain(late!.address);
    expect((await store.get('ipam/blue/v4/meta'))?.value).toMatchObject({ cidr: '10.0.0.0/16' });
  });

  it('refuses to guess about a record that does not validate', async () => {
    const { store, ipam, req } = await used();
    for (const c of ['c1', 'c2', 'c3']) await ipam.release({ ...req, containerId: c });
    await ipam.releaseClaim('blue', before, 'db-0');
    const [block] = await store.list('ipam/blue/v4/nodes/n1/blocks/');
    await store.update(block!.key, { cidr: 'garbage' }, block!.rev);
    expect(await forgetNetwork(store, 'blue')).toMatchObject({ forgotten: false, corrupt: 1 });
    expect((await store.list('ipam/blue/')).length).toBeGreaterThan(0);
  });

  it('an instance that remembered meta writes it again after a forget, and a stale one cuts no block', async () => {
    const store = createMemoryStore();
    const s28: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.0.0.0/24', blockPrefix: 28 } };
    const s26: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.0.0.0/24', blockPrefix: 26 } };
    const agent = createIpam(store); // one long-lived instance, as a node agent keeps
    const req = (spec: NetworkSpec, containerId: string, node = 'n1') => ({
      network: 'blue',
      spec,
      node,
      containerId,
      ifname: 'eth0',
    });
    await agent.allocate(req(s28, 'a'));
    await agent.release(req(s28, 'a'));
    expect(await forgetNetwork(store, 'blue')).toMatchObject({ forgotten: true });
    // Re-created with the same spec: the agent remembers meta, yet writes it with a block.
    await agent.allocate(req(s28, 'b'));
    expect((await store.get('ipam/blue/v4/meta'))?.value).toEqual({
      cidr: '10.0.0.0/24',
      blockPrefix: 28,
    });
    await agent.release(req(s28, 'b'));
    // Reset for /26 blocks while the agent still has the /28 spec (and its blocks cached).
    expect(await forgetNetwork(store, 'blue', 4)).toMatchObject({ forgotten: true });
    await createIpam(store).allocate(req(s26, 'c', 'n2'));
    expect(await codeOf(agent.allocate(req(s28, 'd')))).toBe('ERR_IPAM_RANGE');
    const audit = auditIpam(await store.list('ipam/'));
    expect(audit.overlaps).toEqual([]);
    expect(audit.duplicates).toEqual([]);
  });

  it('keeps meta when a block is cut after its first list, and no new meta joins the block', async () => {
    const { store, ipam, req } = await used();
    for (const c of ['c1', 'c2', 'c3']) await ipam.release({ ...req, containerId: c });
    await ipam.releaseClaim('blue', before, 'db-0');
    // A node still on the old spec cuts a new block while the records are listed.
    let raced = false;
    const racing: Store = {
      ...store,
      async list<T>(prefix: string, o?: { consistent?: boolean }) {
        const out = await store.list<T>(prefix, o);
        if (prefix === 'ipam/blue/' && !raced) {
          raced = true;
          await createIpam(store).allocate({ ...req, node: 'n3', containerId: 'late' });
        }
        return out;
      },
    };
    expect(await forgetNetwork(racing, 'blue')).toMatchObject({ forgotten: false, changed: true });
    expect((await store.get('ipam/blue/v4/meta'))?.value).toMatchObject({ cidr: '10.0.0.0/16' });
    const fresh = createIpam(store);
    expect(
      await codeOf(fresh.allocate({ ...req, spec: after, node: 'n1', containerId: 'x' })),
    ).toBe('ERR_IPAM_RANGE');
    // Had meta gone with the rest, the new spec must still not cut /28s beside the /26.
    const m = (await store.get('ipam/blue/v4/meta'))!;
    await store.delete(m.key, m.rev);
    const e = await fresh
      .allocate({ ...req, spec: after, node: 'n1', containerId: 'y' })
      .catch((x: Error) => x);
    expect((e as { code?: string }).code).toBe('ERR_IPAM_RANGE');
    expect((e as Error).message).toMatch(/block 10\.0\.\d+\.\d+\/26 remains from another cidr/);
    expect(await store.get('ipam/blue/v4/meta')).toBeUndefined();
  });

  it('never lets blocks of two sizes coexist when a forget and a new spec land inside a stale claim', async () => {
    const store = createMemoryStore();
    const s28: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.0.0.0/24', blockPrefix: 28 } };
    const s26: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.0.0.0/24', blockPrefix: 26 } };
    const r = (spec: NetworkSpec, containerId: string, node: string) => ({
      network: 'blue',
      spec,
      node,
      containerId,
      ifname: 'eth0',
    });
    await createIpam(store).allocate(r(s28, 'a', 'n1'));
    await createIpam(store).release(r(s28, 'a', 'n1'));
    // n2 is still on /28 and claims its first block: between its meta read and its claim,
    // the family is forgotten and n1, on /26 now, allocates.
    let once = false;
    const stale: Store = {
      ...store,
      async create(key: string, value: unknown) {
        if (key.includes('/cidrs/') && !once) {
          once = true;
          expect(await forgetNetwork(store, 'blue', 4)).toMatchObject({ forgotten: true });
          await createIpam(store).allocate(r(s26, 'b', 'n1'));
        }
        return store.create(key, value);
      },
    };
    expect(await codeOf(createIpam(stale).allocate(r(s28, 'c', 'n2')))).toBe('ERR_IPAM_RANGE');
    expect(once).toBe(true);
    const audit = auditIpam(await store.list('ipam/'));
    expect(audit.overlaps).toEqual([]);
    expect(audit.held.map((h) => h.handle)).toEqual(['b/eth0']);
  });

  it("keeps a block's claim when its record is written again after the blocks went", async () => {
    const store = createMemoryStore();
    const spec: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.0.0.0/24', blockPrefix: 26 } };
    const r = (containerId: string, node: string) => ({
      network: 'blue',
      spec,
      node,
      containerId,
      ifname: 'eth0',
    });
    const n1 = createIpam(store);
    await n1.allocate(r('c0', 'n1'));
    await n1.release(r('c0', 'n1'));
    // n1 has not seen the deletion: right after forget deleted its empty block's record, it
    // allocates again and writes that record anew under the claim that is still there.
    let raced = false;
    const racing: Store = {
      ...store,
      async delete(key: string, rev: string) {
        const ok = await store.delete(key, rev);
        if (!raced && key.includes('/nodes/n1/blocks/')) {
          raced = true;
          await n1.allocate(r('late', 'n1'));
        }
        return ok;
      },
    };
    expect(await forgetNetwork(racing, 'blue')).toMatchObject({ forgotten: false, changed: true });
    // The claim still places the block: n2 gets another address, none is held twice.
    const [late] = await n1.find('blue', spec, 'late', 'eth0', 'n1');
    const [other] = await createIpam(store).allocate(r('other', 'n2'));
    expect(other!.address).not.toBe(late!.address);
    const audit = auditIpam(await store.list('ipam/'));
    expect(audit.duplicates).toEqual([]);
    expect(audit.misplaced).toEqual([]);
  });
});
