// tartanctl's read-only views: networks and their usage, pools (blocks), a pod's
// interfaces, a check of recorded intent against the kernel, and a topology graph.
import { existsSync } from 'node:fs';
import { openHostState } from '../attach/host-state.js';
import type { AttachmentRecord } from '../attach/records.js';
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
  for (const n of [...ctx.networks.values()].sort((a, b) =>
    a.metadata.name.localeCompare(b.metadata.name),
  )) {
    const d = describeNet(n);
    const usage = n.spec.ipv4 || n.spec.ipv6 ? await ipam.usage(n.metadata.name, n.spec) : [];
    const cap =
      usage
        .map(
          (u) =>
            `v${u.family}: ${u.capacity > 10n ** 12n ? `2^${u.capacity.toString(2).length - 1}` : u.capacity.toString()}`,
        )
        .join(' ') || '-';
    const used = usage.map((u) => `v${u.family}: ${u.inUse}`).join(' ') || '-';
    const blocks = usage.reduce((s, u) => s + u.blocks, 0);
    rows.push([n.metadata.name, d.kind, d.device, d.segment, d.cidrs, cap, used, String(blocks)]);
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

export async function podView(ctx: Context, pod: string): Promise<string[][]> {
  const cid = ctx.pods.get(pod)?.containerId ?? pod;
  const rows: string[][] = [];
  for (const { node, rec } of await records(ctx)) {
    if (rec.containerId !== cid) continue;
    for (const i of rec.interfaces)
      rows.push([
        node,
        i.ifname,
        i.network,
        i.spec.type,
        i.allocations.map((a) => `${a.address}/${a.prefixLength}`).join(' ') || '-',
        i.parents.join(',') || '-',
        i.rules.map((r) => `from ${r.from} lookup ${r.table}`).join('; ') || '-',
        i.state,
      ]);
  }
  if (rows.length === 0) throw new Error(`no attachments recorded for pod ${pod}`);
  return rows;
}

/** Graphviz DOT of nodes (clusters), their pods, and the networks the pods attach to. */
export async function topologyDot(ctx: Context): Promise<string> {
  const recs = await records(ctx);
  const podName = new Map([...ctx.pods.entries()].map(([name, p]) => [p.containerId, name]));
  const q = (s: string) => JSON.stringify(s);
  const lines = [
    'graph tartan {',
    '  rankdir=LR; fontname="Helvetica"; node [fontname="Helvetica", fontsize=10]; edge [fontname="Helvetica", fontsize=9];',
  ];
  for (const n of ctx.networks.values()) {
    const d = describeNet(n);
    lines.push(
      `  ${q('net:' + n.metadata.name)} [shape=box, style="rounded,filled", fillcolor="#dbe9f6", label=${q(`${n.metadata.name}\n${d.kind} ${d.segment !== '-' ? d.segment : ''}\n${d.cidrs}`)}];`,
    );
  }
  for (const node of ctx.nodes) {
    lines.push(
      `  subgraph ${q('cluster_' + node.name)} { label=${q('node ' + node.name)}; style=dashed;`,
    );
    for (const r of recs.filter((x) => x.node === node.name)) {
      const name = podName.get(r.rec.containerId) ?? r.rec.containerId.slice(0, 12);
      lines.push(
        `    ${q('pod:' + r.rec.containerId)} [shape=ellipse, style=filled, fillcolor="#f6e7db", label=${q(name)}];`,
      );
    }
    lines.push('  }');
  }
  for (const r of recs)
    for (const i of r.rec.interfaces)
      lines.push(
        `  ${q('pod:' + r.rec.containerId)} -- ${q('net:' + i.network)} [label=${q(`${i.ifname} ${i.allocations.map((a) => a.address).join(' ')}`)}];`,
      );
  lines.push('}');
  return lines.join('\n') + '\n';
}
