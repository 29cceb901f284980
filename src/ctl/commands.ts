// tartanctl's views: networks and their usage, pools (blocks), claims, a pod's interfaces,
// a check of recorded intent against the kernel, and a topology graph; and its one write,
// releasing a claim outside a cluster.
import { existsSync } from 'node:fs';
import { openHostState } from '../attach/host-state.js';
import type { AttachmentRecord } from '../attach/records.js';
import { forgetNetwork } from '../ipam/forget.js';
import { createIpam } from '../ipam/index.js';
import { listBlocks } from '../ipam/records.js';
import type { Network } from '../network/schema.js';
import type { Context } from './context.js';

export function describeNet(n: Network): {
  kind: string;
  device: string;
  segment: string;
  cidrs: string;
} {
  const s = n.spec;
  return {
    kind: s.type + (s.mode ? `/${s.mode}` : ''),
    device: s.device ?? s.bridge ?? '-',
    segment: s.vlan !== undefined ? `vlan ${s.vlan}` : s.vxlan ? `vxlan ${s.vxlan.vni}` : '-',
    cidrs: [s.ipv4?.cidr, s.ipv6?.cidr].filter(Boolean).join(' ') || '-',
  };
}

export async function networksView(ctx: Context): Promise<string[][]> {
  const ipam = createIpam(ctx.store);
  const rows: string[][] = [];
  // The map key is the IPAM network name ("<namespace>/<name>" for a TenantNetwork).
  for (const [name, n] of [...ctx.networks.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
    const d = describeNet(n);
    const usage = n.spec.ipv4 || n.spec.ipv6 ? await ipam.usage(name, n.spec) : [];
    const cap =
      usage
        .map(
          (u) =>
            `v${u.family}: ${u.capacity > 10n ** 12n ? `2^${u.capacity.toString(2).length - 1}` : u.capacity.toString()}`,
        )
        .join(' ') || '-';
    const used = usage.map((u) => `v${u.family}: ${u.inUse}`).join(' ') || '-';
    const blocks = usage.reduce((s, u) => s + u.blocks, 0);
    rows.push([name, d.kind, d.device, d.segment, d.cidrs, cap, used, String(blocks)]);
  }
  return rows;
}

export async function poolsView(ctx: Context, name: string): Promise<string[][]> {
  const n = ctx.networks.get(name);
  if (!n) throw new Error(`unknown network ${name}`);
  const rows: string[][] = [];
  for (const f of [4, 6] as const) {
    if (!(f === 4 ? n.spec.ipv4 : n.spec.ipv6)) continue;
    for (const b of await listBlocks(ctx.store, name, f)) {
      const allocs = Object.values(b.value.allocs);
      rows.push([
        `v${f}`,
        b.value.cidr,
        b.value.node ?? '(none)',
        String(allocs.length),
        String(allocs.filter((a) => a.claim).length),
        String(allocs.filter((a) => a.gcMark !== undefined).length),
        String(b.value.seq),
      ]);
    }
  }
  return rows;
}

/** The network's persistent claims: the addresses each keeps, and who holds them now. */
export async function claimsView(ctx: Context, name: string): Promise<string[][]> {
  const n = ctx.networks.get(name);
  if (!n) throw new Error(`unknown network ${name}`);
  const pods = new Map<string, string>();
  for (const [pod, p] of ctx.pods) pods.set(p.containerId, pod);
  for (const a of ctx.attachments ?? []) pods.set(a.containerId, `${a.namespace}/${a.pod}`);
  const who = (handle: string) => {
    const slash = handle.lastIndexOf('/');
    const pod = pods.get(handle.slice(0, slash));
    return pod ? `${pod} ${handle.slice(slash + 1)}` : handle;
  };
  return (await createIpam(ctx.store).claims(name, n.spec)).map((c) => [
    c.name,
    c.ips.join(' '),
    c.holders.map(who).join(', ') || '-',
  ]);
}

/**
 * Gives a claim's addresses back (one a pod still holds stays with it until its DEL). In a
 * cluster the claim is an IPAMClaim object, and deleting that is the way: the controller
 * releases it and drops its finalizer (src/controller/claims.ts).
 */
export async function releaseClaimOf(ctx: Context, name: string, claim: string): Promise<void> {
  if (ctx.attachments) {
    const slash = claim.indexOf('/');
    throw new Error(
      slash < 0
        ? 'in a cluster a claim is released by deleting its IPAMClaim object'
        : `in a cluster a claim is released by deleting its IPAMClaim object: kubectl delete ipamclaim -n ${claim.slice(0, slash)} ${claim.slice(slash + 1)}`,
    );
  }
  const n = ctx.networks.get(name);
  if (!n) throw new Error(`unknown network ${name}`);
  const ipam = createIpam(ctx.store);
  if (!(await ipam.claims(name, n.spec)).some((c) => c.name === claim))
    throw new Error(`network ${name} has no claim ${JSON.stringify(claim)}`);
  await ipam.releaseClaim(name, n.spec, claim);
}

/**
 * Removes a network's IPAM records when none holds an address: after the network was
 * removed, or before its cidr or block size changes (the allocator refuses a change while
 * records exist). In a cluster the controller does this itself (src/controller/network-ipam.ts).
 */
export async function forgetIpamOf(ctx: Context, name: string): Promise<number> {
  if (ctx.attachments)
    throw new Error(
      "in a cluster the controller removes a network's IPAM records once it holds no address: delete the network, or change its cidr",
    );
  const r = await forgetNetwork(ctx.store, name);
  if (r.forgotten) return r.records;
  if (r.held)
    throw new Error(
      `network ${name} still holds ${r.held} address${r.held === 1 ? '' : 'es'}: delete its pods (or release its claims) first`,
    );
  if (r.corrupt)
    throw new Error(
      `network ${name} has ${r.corrupt} record(s) that do not validate: see tartanctl pools`,
    );
  throw new Error(`network ${name}: its records changed meanwhile; try again`);
}

export async function records(
  ctx: Context,
): Promise<Array<{ node: string; netns?: string; rec: AttachmentRecord }>> {
  const out: Array<{ node: string; netns?: string; rec: AttachmentRecord }> = [];
  for (const n of ctx.nodes) {
    if (!existsSync(n.stateDir)) continue;
    const st = await openHostState(n.stateDir);
    try {
      for (const rec of st.listAttachments())
        out.push({ node: n.name, ...(n.netns ? { netns: n.netns } : {}), rec });
    } finally {
      st.close();
    }
  }
  return out;
}

/** One pod's interfaces on one node, from node state (lab, node) or Attachment objects (cluster). */
export interface PodView {
  node: string;
  containerId: string;
  pod: string;
  interfaces: Array<{
    ifname: string;
    network: string;
    type: string;
    addresses: string[];
    parents: string[];
    rules: string[];
    state: string;
  }>;
}

export async function podViews(ctx: Context): Promise<PodView[]> {
  if (ctx.attachments) {
    const by = new Map<string, PodView>();
    for (const a of ctx.attachments) {
      const key = `${a.node}/${a.containerId}`;
      const v = by.get(key) ?? {
        node: a.node,
        containerId: a.containerId,
        pod: `${a.namespace}/${a.pod}`,
        interfaces: [],
      };
      const type = ctx.networks.get(a.network)?.spec.type ?? '?';
      v.interfaces.push({
        ifname: a.ifname,
        network: a.network,
        type,
        addresses: a.ips,
        parents: [],
        rules: [],
        state: 'recorded',
      });
      by.set(key, v);
    }
    return [...by.values()];
  }
  const name = new Map([...ctx.pods.entries()].map(([n, p]) => [p.containerId, n]));
  return (await records(ctx)).map(({ node, rec }) => ({
    node,
    containerId: rec.containerId,
    pod: name.get(rec.containerId) ?? rec.containerId.slice(0, 12),
    interfaces: rec.interfaces.map((i) => ({
      ifname: i.ifname,
      network: i.network,
      type: i.spec.type,
      addresses: i.allocations.map((a) => `${a.address}/${a.prefixLength}`),
      parents: i.parents,
      rules: i.rules.map((r) => `from ${r.from} lookup ${r.table}`),
      state: i.state,
    })),
  }));
}

export async function podView(ctx: Context, pod: string): Promise<string[][]> {
  const cid = ctx.pods.get(pod)?.containerId ?? pod;
  const rows: string[][] = [];
  for (const v of await podViews(ctx)) {
    if (v.containerId !== cid && v.pod !== pod && !v.pod.endsWith(`/${pod}`)) continue;
    for (const i of v.interfaces)
      rows.push([
        v.node,
        i.ifname,
        i.network,
        i.type,
        i.addresses.join(' ') || '-',
        i.parents.join(',') || '-',
        i.rules.join('; ') || '-',
        i.state,
      ]);
  }
  if (rows.length === 0) throw new Error(`no attachments recorded for pod ${pod}`);
  return rows;
}

/** Graphviz DOT of nodes (clusters), their pods, and the networks the pods attach to. */
export async function topologyDot(ctx: Context): Promise<string> {
  const views = await podViews(ctx);
  const q = (x: string) => JSON.stringify(x);
  const lines = [
    'graph tartan {',
    '  rankdir=LR; fontname="Helvetica"; node [fontname="Helvetica", fontsize=10]; edge [fontname="Helvetica", fontsize=9];',
  ];
  for (const [name, n] of ctx.networks) {
    const d = describeNet(n);
    const label = `${name}\n${d.kind} ${d.segment !== '-' ? d.segment : ''}\n${d.cidrs}`;
    lines.push(
      `  ${q('net:' + name)} [shape=box, style="rounded,filled", fillcolor="#dbe9f6", label=${q(label)}];`,
    );
  }
  for (const node of ctx.nodes) {
    lines.push(
      `  subgraph ${q('cluster_' + node.name)} { label=${q('node ' + node.name)}; style=dashed;`,
    );
    for (const v of views.filter((x) => x.node === node.name))
      lines.push(
        `    ${q('pod:' + v.containerId)} [shape=ellipse, style=filled, fillcolor="#f6e7db", label=${q(v.pod)}];`,
      );
    lines.push('  }');
  }
  for (const v of views)
    for (const i of v.interfaces) {
      const label = `${i.ifname} ${i.addresses.map((a) => a.split('/')[0]).join(' ')}`;
      lines.push(`  ${q('pod:' + v.containerId)} -- ${q('net:' + i.network)} [label=${q(label)}];`);
    }
  lines.push('}');
  return lines.join('\n') + '\n';
}
