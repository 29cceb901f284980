// The controller against a real API server: Lease leader election, network status, IPAM
// garbage collection against the pods that exist, and the events it records.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startController } from '../../src/controller/controller.js';
import { startLeaderElection } from '../../src/controller/leader.js';
import { CLAIM_FINALIZER } from '../../src/controller/claims.js';
import { reconcileOnce } from '../../src/controller/reconcile.js';
import { createIpam } from '../../src/ipam/index.js';
import { ensureNamespace, installCrds } from '../../src/k8s/apply.js';
import type { KubeClient } from '../../src/k8s/client.js';
import { attachmentName, writeAttachment } from '../../src/k8s/attachments.js';
import type { NetworkSpec } from '../../src/network/schema.js';
import { createKubernetesStore } from '../../src/store/kubernetes.js';
import type { Store } from '../../src/store/types.js';
import { startKube, type KubeHandle } from '../harness/kube.js';

const G = '/apis/tartan.io/v1alpha1';
const LEASES = '/apis/coordination.k8s.io/v1/namespaces/tartan-system/leases';
let kube: KubeHandle;
let admin: KubeClient;
let store: Store;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A ClusterNetwork, as kubectl apply would create it. */
const postNetwork = (name: string, spec: NetworkSpec) =>
  admin.must({
    method: 'POST',
    path: `${G}/clusternetworks`,
    body: { apiVersion: 'tartan.io/v1alpha1', kind: 'ClusterNetwork', metadata: { name }, spec },
  });
/** A pod object in tenant-a (no kubelet runs here: it only has to exist). */
const postPod = (name: string) =>
  admin.must<{ metadata: { uid: string } }>({
    method: 'POST',
    path: '/api/v1/namespaces/tenant-a/pods',
    body: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name },
      spec: { containers: [{ name: 'c', image: 'busybox' }] },
    },
  });

beforeAll(async () => {
  kube = await startKube();
  admin = kube.client();
  await installCrds(admin);
  for (const ns of ['tartan-system', 'tenant-a']) await ensureNamespace(admin, ns);
  store = await createKubernetesStore({
    url: kube.url,
    ca: kube.ca,
    cert: kube.clientCert,
    key: kube.clientKey,
  });
});
afterAll(async () => {
  await store?.close();
  await kube?.stop();
});

describe('leader election', () => {
  const timing = { leaseDurationMs: 2000, renewDeadlineMs: 1500, retryPeriodMs: 150 };

  it('elects exactly one of two candidates, and hands over on release', async () => {
    const opts = { client: admin, namespace: 'tartan-system', name: 'le-test', ...timing };
    const a = startLeaderElection({ ...opts, identity: 'a' });
    const b = startLeaderElection({ ...opts, identity: 'b' });
    let both = 0;
    const watch = setInterval(() => {
      if (a.isLeader() && b.isLeader()) both++;
    }, 10);
    try {
      await until('a leader', () => a.isLeader() || b.isLeader());
      await sleep(1000);
      const [leader, other, otherId] = a.isLeader() ? [a, b, 'b'] : [b, a, 'a'];
      expect(other.isLeader()).toBe(false);
      const lease = await admin.must<{ spec: { holderIdentity: string } }>({
        method: 'GET',
        path: `${LEASES}/le-test`,
      });
      expect(lease.spec.holderIdentity).toBe(otherId === 'a' ? 'b' : 'a');
      await leader.stop();
      await until('the other to take over', () => other.isLeader(), 3000);
      await other.stop();
    } finally {
      clearInterval(watch);
      await Promise.all([a.stop(), b.stop()]);
    }
    expect(both).toBe(0);
  });

  it("waits for a crashed holder's Lease to expire before taking it", async () => {
    const now = new Date().toISOString().replace('Z', '000Z');
    await admin.must({
      method: 'POST',
      path: LEASES,
      body: {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: 'le-crash' },
        spec: {
          holderIdentity: 'ghost',
          leaseDurationSeconds: 2,
          renewTime: now,
          acquireTime: now,
        },
      },
    });
    const started = Date.now();
    const c = startLeaderElection({
      client: admin,
      namespace: 'tartan-system',
      name: 'le-crash',
      identity: 'c',
      ...timing,
    });
    try {
      await sleep(800);
      expect(c.isLeader()).toBe(false);
      await until('c to take over', () => c.isLeader(), 5000);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
      const lease = await admin.must<{
        spec: { holderIdentity: string; leaseTransitions: number };
      }>({ method: 'GET', path: `${LEASES}/le-crash` });
      expect(lease.spec).toMatchObject({ holderIdentity: 'c', leaseTransitions: 1 });
    } finally {
      await c.stop();
    }
  });
});

describe('reconcile', () => {
  const spec: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.80.0.0/29', blockPrefix: 30 } };
  // Written as the agent writes them (src/k8s/attachments.ts), owner reference included.
  const attach = (pod: string, uid: string, containerId: string) =>
    writeAttachment(admin, {
      pod: { name: pod, namespace: 'tenant-a', uid },
      node: 'n1',
      containerId,
      ifname: 'net1',
      network: { kind: 'ClusterNetwork', name: 'gcnet' },
      ips: [],
    });

  it('writes status, deletes stale attachments, releases leaked addresses after two sightings, and records events', async () => {
    await postNetwork('gcnet', spec);
    const pod = await postPod('alive');
    const ipam = createIpam(store);
    const alloc = (containerId: string) =>
      ipam.allocate({ network: 'gcnet', spec, node: 'n1', containerId, ifname: 'net1' });
    const kept = await alloc('c-alive');
    await alloc('c-gone'); // pod deleted, its attachment left behind
    await alloc('c-orphan'); // no attachment record at all
    await attach('alive', pod.metadata.uid, 'c-alive');
    await attach('alive', pod.metadata.uid, 'c-alive'); // a repeated ADD replaces it
    await attach('gone', 'uid-of-a-deleted-pod', 'c-gone');
    const rec = await admin.must<{
      metadata: { ownerReferences: { kind: string; uid: string }[] };
    }>({
      method: 'GET',
      path: `${G}/namespaces/tenant-a/attachments/${attachmentName('alive', 'net1')}`,
    });
    expect(rec.metadata.ownerReferences).toMatchObject([{ kind: 'Pod', uid: pod.metadata.uid }]);

    let t = Date.now();
    const deps = { client: admin, store, gcGraceMs: 60_000, now: () => t };
    expect(await reconcileOnce(deps)).toEqual({
      released: 0,
      networkIpam: ['gcnet: finalizer added'],
      staleAttachments: 1,
      finalized: 0,
      claims: { created: [], released: [] },
    });
    const status = async () =>
      (
        await admin.must<{ status: Record<string, unknown> }>({
          method: 'GET',
          path: `${G}/clusternetworks/gcnet`,
        })
      ).status;
    // A /29 in /30 blocks: 8 addresses less network and broadcast.
    expect(await status()).toMatchObject({
      capacity: { ipv4: '6' },
      inUse: { ipv4: 3 },
      attachments: 1,
    });
    expect(((await status()).conditions as { type: string; status: string }[])[0]).toMatchObject({
      type: 'Ready',
      status: 'True',
      reason: 'Ready',
    });

    t += 61_000; // the second sighting, past the grace period
    expect(await reconcileOnce(deps)).toEqual({
      released: 2,
      networkIpam: [],
      staleAttachments: 0,
      finalized: 0,
      claims: { created: [], released: [] },
    });
    expect(await status()).toMatchObject({ inUse: { ipv4: 1 }, attachments: 1 });
    expect((await ipam.find('gcnet', spec, 'c-alive', 'net1')).map((a) => a.address)).toEqual(
      kept.map((a) => a.address),
    );
    expect(await ipam.find('gcnet', spec, 'c-gone', 'net1')).toEqual([]);

    const events = await admin.must<{
      items: { reason: string; message: string; involvedObject: { name: string } }[];
    }>({
      method: 'GET',
      path: '/api/v1/namespaces/default/events',
    });
    const mine = events.items
      .filter((e) => e.involvedObject.name === 'gcnet')
      .map((e) => `${e.reason}: ${e.message}`);
    expect(mine).toEqual(
      expect.arrayContaining([
        'AddressesReleased: released 2 addresses held by no live pod',
        'Ready: spec valid; addresses available',
      ]),
    );
  });

  it('reports an exhausted pool in the Ready condition', async () => {
    const small: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.81.0.0/30' } };
    await postNetwork('tiny', small);
    const ipam = createIpam(store);
    for (const c of ['x1', 'x2'])
      await ipam.allocate({
        network: 'tiny',
        spec: small,
        node: 'n1',
        containerId: c,
        ifname: 'net1',
      });
    await reconcileOnce({ client: admin, store, gcGraceMs: 3_600_000 });
    const obj = await admin.must<{
      status: { conditions: { status: string; reason: string; message: string }[] };
    }>({ method: 'GET', path: `${G}/clusternetworks/tiny` });
    expect(obj.status.conditions[0]).toMatchObject({
      status: 'False',
      reason: 'PoolExhausted',
      message: 'no free address left in IPv4',
    });
  });

  it('reconciles in the replica that leads while a second one stands by', async () => {
    const opts = {
      client: admin,
      store,
      namespace: 'tartan-system',
      intervalMs: 200,
      gcGraceMs: 3_600_000,
      leaseDurationMs: 2000,
      renewDeadlineMs: 1500,
      retryPeriodMs: 150,
    };
    const ctl = startController({ ...opts, identity: 'ctl-1' });
    await until('ctl-1 to lead', () => ctl.isLeader());
    const standby = startController({ ...opts, identity: 'ctl-2' });
    try {
      await sleep(500);
      expect(standby.isLeader()).toBe(false);
      await postNetwork('late', { type: 'bridge', ipv4: { cidr: '10.82.0.0/24' } });
      await until('status of a new network', async () => {
        const o = await admin.must<{ status?: { capacity?: { ipv4?: string } } }>({
          method: 'GET',
          path: `${G}/clusternetworks/late`,
        });
        return o.status?.capacity?.ipv4 === '254'; // a /24 less network and broadcast
      });
    } finally {
      await ctl.stop();
    }
    try {
      await until('ctl-2 to take over', () => standby.isLeader(), 5000);
    } finally {
      await standby.stop();
    }
  });
});

describe("a network's IPAM state", () => {
  // A minute of grace before records are forgotten (FORGET_GRACE_MS), on a clock the test
  // moves: each round is a minute after the one before.
  const sightings = new Map<string, { what: string; at: number }>();
  let t = Date.now();
  const round = () => {
    t += 60_000;
    return reconcileOnce({ client: admin, store, gcGraceMs: 3_600_000, sightings, now: () => t });
  };
  const get = (name: string) =>
    admin.request<{ metadata: { finalizers?: string[]; deletionTimestamp?: string } }>({
      method: 'GET',
      path: `${G}/clusternetworks/${name}`,
    });
  const allocate = (network: string, spec: NetworkSpec, containerId: string) =>
    // A new instance each time, as a new agent (or the same one after the spec moved) reads.
    createIpam(store).allocate({ network, spec, node: 'n1', containerId, ifname: 'net1' });
  const release = (network: string, spec: NetworkSpec, containerId: string) =>
    createIpam(store).release({ network, spec, node: 'n1', containerId, ifname: 'net1' });
  const codeOf = (p: Promise<unknown>) =>
    p.then(
      () => undefined,
      (e: { code?: string }) => e.code,
    );

  it('waits a grace period after the deletion, so that every agent has seen it', async () => {
    const spec: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.90.0.0/24' } };
    await postNetwork('tt-gr', spec);
    await round();
    await allocate('tt-gr', spec, 'c1');
    await release('tt-gr', spec, 'c1');
    await admin.must({ method: 'DELETE', path: `${G}/clusternetworks/tt-gr` });
    const at = Date.now();
    const once = (now: number) =>
      reconcileOnce({ client: admin, store, gcGraceMs: 3_600_000, sightings, now: () => now });
    sightings.set('tt-nowhere v4', { what: 'no meta', at }); // a network that is gone
    expect((await once(at)).networkIpam).toContain('tt-gr: waiting');
    expect(sightings.has('tt-nowhere v4')).toBe(false);
    expect((await store.list('ipam/tt-gr/')).length).toBeGreaterThan(0);
    expect((await once(at + 61_000)).networkIpam).toContain('tt-gr: forgotten');
    expect(await store.list('ipam/tt-gr/')).toEqual([]);
  });

  it('goes with the deleted network once no address is held, so the name can take another cidr', async () => {
    const before: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.84.0.0/24' } };
    const after: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.85.0.0/16', blockPrefix: 28 } };
    await postNetwork('tt-fg', before);
    expect((await round()).networkIpam).toContain('tt-fg: finalizer added');
    expect((await get('tt-fg')).body.metadata.finalizers).toEqual(['tartan.io/ipam']);
    const [held] = await allocate('tt-fg', before, 'c1');
    await admin.must({ method: 'DELETE', path: `${G}/clusternetworks/tt-fg` });
    // Held: the object and the records stay (GC frees a leaked address after its grace).
    expect((await round()).networkIpam).toContain('tt-fg: waiting');
    expect((await get('tt-fg')).body.metadata.deletionTimestamp).toBeDefined();
    expect((await store.list('ipam/tt-fg/')).length).toBeGreaterThan(0);
    await release('tt-fg', before, 'c1');
    expect((await round()).networkIpam).toContain('tt-fg: forgotten');
    expect((await get('tt-fg')).status).toBe(404);
    expect(await store.list('ipam/tt-fg/')).toEqual([]);
    await postNetwork('tt-fg', after);
    const [a] = await allocate('tt-fg', after, 'c2');
    expect(a?.address).toMatch(/^10\.85\./);
    expect(held?.address).toMatch(/^10\.84\./);
    const events = await admin.must<{
      items: { reason: string; involvedObject: { name: string } }[];
    }>({ method: 'GET', path: '/api/v1/namespaces/default/events' });
    expect(
      events.items.filter((e) => e.involvedObject.name === 'tt-fg').map((e) => e.reason),
    ).toContain('IpamStateForgotten');
  });

  it('clears records left without their meta (a stale node raced a forget) once they hold nothing', async () => {
    const spec: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.89.0.0/24' } };
    await postNetwork('tt-nm', spec);
    await allocate('tt-nm', spec, 'c1');
    const meta = (await store.get('ipam/tt-nm/v4/meta'))!;
    expect(await store.delete(meta.key, meta.rev)).toBe(true);
    expect((await round()).networkIpam).not.toContain('tt-nm: family 4 reset'); // still held
    await release('tt-nm', spec, 'c1');
    expect((await round()).networkIpam).toContain('tt-nm: family 4 reset');
    expect(await store.list('ipam/tt-nm/')).toEqual([]);
    expect((await allocate('tt-nm', spec, 'c2'))[0]?.address).toMatch(/^10\.89\.0\./);
  });

  it("keeps a deleted TenantNetwork's VNI while a pod still holds an address on it", async () => {
    const spec: NetworkSpec = {
      type: 'macvlan',
      device: 'eth1',
      vxlan: { vni: 3900, port: 4789 },
      ipv4: { cidr: '10.88.0.0/24' },
    };
    const path = `${G}/namespaces/tenant-a/tenantnetworks/tt-seg`;
    await admin.must({
      method: 'POST',
      path: `${G}/namespaces/tenant-a/tenantnetworks`,
      body: {
        apiVersion: 'tartan.io/v1alpha1',
        kind: 'TenantNetwork',
        // As the mutating webhook leaves a TenantNetwork with a segment.
        metadata: { name: 'tt-seg', finalizers: ['tartan.io/segment', 'tartan.io/ipam'] },
        spec,
      },
    });
    const vni = 'segments/vni/3900';
    await store.create(vni, { namespace: 'tenant-a', name: 'tt-seg', tenant: 'a', at: 0 });
    // A pod attached while the (unused) network's delete was being admitted.
    await admin.must({ method: 'DELETE', path });
    await allocate('tenant-a/tt-seg', spec, 'c1');
    const first = await round();
    expect(first.networkIpam).toContain('tenant-a/tt-seg: waiting');
    expect(first.finalized).toBe(0);
    expect(await store.get(vni)).toBeDefined();
    await release('tenant-a/tt-seg', spec, 'c1');
    const second = await round();
    expect(second.networkIpam).toContain('tenant-a/tt-seg: forgotten');
    expect(second.finalized).toBe(1);
    expect(await store.get(vni)).toBeUndefined();
    expect((await admin.request({ method: 'GET', path })).status).toBe(404);
  });

  it('starts an unused family over when the spec moves its cidr, never one that holds an address', async () => {
    const v4a = { cidr: '10.86.0.0/24' };
    const v6a = { cidr: 'fd00:86::/64' };
    const before: NetworkSpec = { type: 'bridge', ipv4: v4a, ipv6: v6a };
    await postNetwork('tt-mv', before);
    const [kept4, kept6] = await allocate('tt-mv', before, 'c1');
    await createIpam(store).release({
      network: 'tt-mv',
      spec: before,
      node: 'n1',
      containerId: 'c1',
      ifname: 'net1',
      allocations: [kept4!],
    });
    // IPv4 holds nothing now, IPv6 still holds c1's address; both cidrs move (the webhook
    // would refuse that for a network in use; this API server runs none).
    const after: NetworkSpec = {
      type: 'bridge',
      ipv4: { cidr: '10.87.0.0/24' },
      ipv6: { cidr: 'fd00:87::/64' },
    };
    const cur = await admin.must<{ metadata: { resourceVersion: string } }>({
      method: 'GET',
      path: `${G}/clusternetworks/tt-mv`,
    });
    await admin.must({
      method: 'PUT',
      path: `${G}/clusternetworks/tt-mv`,
      body: {
        apiVersion: 'tartan.io/v1alpha1',
        kind: 'ClusterNetwork',
        metadata: { name: 'tt-mv', resourceVersion: cur.metadata.resourceVersion },
        spec: after,
      },
    });
    expect(await codeOf(allocate('tt-mv', after, 'c2'))).toBe('ERR_IPAM_RANGE');
    // First seen moved: a grace period for agents to see the change first.
    expect((await round()).networkIpam).toEqual(
      expect.arrayContaining(['tt-mv: family 4 waiting', 'tt-mv: family 6 waiting']),
    );
    expect((await store.get('ipam/tt-mv/v4/meta'))?.value).toMatchObject({ cidr: '10.86.0.0/24' });
    expect((await round()).networkIpam).toContain('tt-mv: family 4 reset');
    expect((await store.get('ipam/tt-mv/v4/meta'))?.value).toBeUndefined();
    expect((await store.get('ipam/tt-mv/v6/meta'))?.value).toMatchObject({ cidr: 'fd00:86::/64' });
    // IPv6 is still refused, and c1 keeps its address.
    expect(await codeOf(allocate('tt-mv', after, 'c2'))).toBe('ERR_IPAM_RANGE');
    expect((await createIpam(store).find('tt-mv', before, 'c1', 'net1', 'n1'))[0]).toEqual(kept6);
    await release('tt-mv', before, 'c1');
    expect((await round()).networkIpam).toContain('tt-mv: family 6 reset');
    const got = await allocate('tt-mv', after, 'c2');
    expect(got.map((x) => x.address)).toEqual([
      expect.stringMatching(/^10\.87\./),
      expect.stringMatching(/^fd00:87::/),
    ]);
  });
});

describe('claims and their IPAMClaim objects', () => {
  const NPWG = '/apis/k8s.cni.cncf.io/v1alpha1';
  const spec: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.83.0.0/28' } };
  interface ClaimObj {
    metadata: { finalizers?: string[]; deletionTimestamp?: string };
    spec: { network: string; interface: string };
    status?: { ips?: string[]; ownerPod?: { name: string } };
  }
  const getClaim = (ns: string, name: string) =>
    admin.request({ method: 'GET', path: `${NPWG}/namespaces/${ns}/ipamclaims/${name}` });
  const claimObj = async (ns: string, name: string) => (await getClaim(ns, name)).body as ClaimObj;
  const round = () => reconcileOnce({ client: admin, store, gcGraceMs: 3_600_000 });

  it('gives every claim an object, keeps its address while it exists, releases it on delete', async () => {
    await postNetwork('claimnet', spec);
    const pod = await postPod('db-0');
    const ipam = createIpam(store);
    const alloc = (containerId: string, claim: string) =>
      ipam.allocate({ network: 'claimnet', spec, node: 'n1', containerId, ifname: 'net1', claim });
    // The agent qualifies claim names with the pod's namespace (src/k8s/resolve.ts).
    const [first] = await alloc('c-db0', 'tenant-a/db-0');
    await writeAttachment(admin, {
      pod: { name: 'db-0', namespace: 'tenant-a', uid: pod.metadata.uid },
      node: 'n1',
      containerId: 'c-db0',
      ifname: 'net1',
      network: { kind: 'ClusterNetwork', name: 'claimnet' },
      ips: [first!.address],
    });

    expect((await round()).claims).toEqual({ created: ['tenant-a/db-0'], released: [] });
    expect(await claimObj('tenant-a', 'db-0')).toMatchObject({
      metadata: { finalizers: [CLAIM_FINALIZER] },
      spec: { network: 'claimnet', interface: 'net1' },
      status: { ips: [`${first!.address}/28`], ownerPod: { name: 'db-0' } },
    });
    expect((await round()).claims).toEqual({ created: [], released: [] });

    // The pod goes (its DEL released its handle; the claim keeps the address) and comes back.
    await ipam.release({ network: 'claimnet', spec, containerId: 'c-db0', ifname: 'net1' });
    await admin.must({ method: 'DELETE', path: '/api/v1/namespaces/tenant-a/pods/db-0' });
    await round();
    expect((await claimObj('tenant-a', 'db-0')).status).toEqual({
      ips: [`${first!.address}/28`],
    });
    const [again] = await alloc('c-db0-b', 'tenant-a/db-0');
    expect(again!.address).toBe(first!.address);
    await ipam.release({ network: 'claimnet', spec, containerId: 'c-db0-b', ifname: 'net1' });

    // Deleting the object waits for the finalizer: the controller releases the claim first.
    await admin.must({ method: 'DELETE', path: `${NPWG}/namespaces/tenant-a/ipamclaims/db-0` });
    expect((await claimObj('tenant-a', 'db-0')).metadata.deletionTimestamp).toBeDefined();
    expect((await round()).claims).toEqual({ created: [], released: ['tenant-a/db-0'] });
    expect((await getClaim('tenant-a', 'db-0')).status).toBe(404);
    expect(await ipam.claims('claimnet', spec)).toEqual([]);
    const [usage] = await ipam.usage('claimnet', spec);
    expect(usage!.inUse).toBe(0);
  });

  it('puts the finalizer on an object made before the claim', async () => {
    await admin.must({
      method: 'POST',
      path: `${NPWG}/namespaces/tenant-a/ipamclaims`,
      body: {
        apiVersion: 'k8s.cni.cncf.io/v1alpha1',
        kind: 'IPAMClaim',
        metadata: { name: 'vm-1' },
        spec: { network: 'claimnet', interface: 'net1' },
      },
    });
    expect((await round()).claims).toEqual({ created: [], released: [] });
    expect((await claimObj('tenant-a', 'vm-1')).metadata.finalizers).toBeUndefined();
    await createIpam(store).allocate({
      network: 'claimnet',
      spec,
      node: 'n1',
      containerId: 'c-vm1',
      ifname: 'net1',
      claim: 'tenant-a/vm-1',
    });
    expect((await round()).claims).toEqual({ created: [], released: [] });
    expect((await claimObj('tenant-a', 'vm-1')).metadata.finalizers).toEqual([CLAIM_FINALIZER]);
  });

  it('goes on past a claim whose namespace refuses new objects (being deleted)', async () => {
    // No namespace controller runs here: a deleted namespace stays Terminating, and the API
    // server refuses to create objects in it (403).
    await ensureNamespace(admin, 'a-term');
    await admin.must({ method: 'DELETE', path: '/api/v1/namespaces/a-term' });
    const ipam = createIpam(store);
    for (const [containerId, claim] of [
      ['c-term', 'a-term/db-0'], // listed first: its failure must not stop the next
      ['c-late', 'tenant-a/late-0'],
    ] as const)
      await ipam.allocate({
        network: 'claimnet',
        spec,
        node: 'n1',
        containerId,
        ifname: 'net1',
        claim,
      });
    const { claims } = await round();
    expect(claims.created).toEqual(['tenant-a/late-0']);
    expect(claims.errors).toEqual([
      expect.stringMatching(/^creating IPAMClaim a-term\/db-0: HTTP 403/),
    ]);
    expect((await ipam.claims('claimnet', spec)).map((c) => c.name)).toContain('a-term/db-0');
  });

  it('releases a claim on a network whose spec is no longer valid when its object goes', async () => {
    const bad: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.84.0.0/28' } };
    await postNetwork('laternet', bad);
    await createIpam(store).allocate({
      network: 'laternet',
      spec: bad,
      node: 'n1',
      containerId: 'c-lt',
      ifname: 'net1',
      claim: 'tenant-a/lt-0',
    });
    expect((await round()).claims.created).toContain('tenant-a/lt-0');
    // Made invalid behind the webhook's back (none runs here).
    await admin.must({
      method: 'PATCH',
      path: `${G}/clusternetworks/laternet`,
      body: { spec: { ipv4: { cidr: '10.84.0.0/33' } } },
    });
    await admin.must({ method: 'DELETE', path: `${NPWG}/namespaces/tenant-a/ipamclaims/lt-0` });
    expect((await round()).claims.errors ?? []).not.toContainEqual(expect.stringMatching(/lt-0/));
    expect((await getClaim('tenant-a', 'lt-0')).status).toBe(404);
    expect(await store.get('ipam/laternet/claims/tenant-a%2Flt-0')).toBeUndefined();
  });

  it('releases the claims of a namespace that is gone', async () => {
    const ipam = createIpam(store);
    await ipam.allocate({
      network: 'claimnet',
      spec,
      node: 'n1',
      containerId: 'c-ghost',
      ifname: 'net1',
      claim: 'gone-ns/db-0',
    });
    await ipam.release({ network: 'claimnet', spec, containerId: 'c-ghost', ifname: 'net1' });
    expect((await round()).claims).toMatchObject({ created: [], released: ['gone-ns/db-0'] });
    expect((await ipam.claims('claimnet', spec)).map((c) => c.name)).not.toContain('gone-ns/db-0');
  });

  it('keeps the claims when the IPAMClaim CRD itself is deleted (a reinstall)', async () => {
    const CRD =
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/ipamclaims.k8s.cni.cncf.io';
    expect((await claimObj('tenant-a', 'vm-1')).metadata.finalizers).toEqual([CLAIM_FINALIZER]);
    await admin.must({ method: 'DELETE', path: CRD });
    // The API server deletes every IPAMClaim; the finalizer holds them, and so the CRD.
    await until('IPAMClaims being deleted', async () =>
      Boolean((await claimObj('tenant-a', 'vm-1')).metadata.deletionTimestamp),
    );
    expect((await round()).claims.released).toEqual([]);
    await until(
      'the CRD gone',
      async () => (await admin.request({ method: 'GET', path: CRD })).status === 404,
    );
    const ipam = createIpam(store);
    expect((await ipam.claims('claimnet', spec)).map((c) => c.name)).toContain('tenant-a/vm-1');
    // Installed again, the objects come back for the claims that are still there.
    await installCrds(admin);
    await until(
      'IPAMClaims served again',
      async () => (await getClaim('tenant-a', 'vm-1')).status === 404,
    );
    expect((await round()).claims.created).toContain('tenant-a/vm-1');
  });
});
