// What the webhook checks on ClusterNetworks and TenantNetworks beyond the CRD schema: the
// IP arithmetic (CIDRs, pools inside them, gateway and routes consistent) through the same
// code the CNI core uses, and the rules that need other objects: a network in use (IPAM
// allocations or attachment records) can neither be deleted nor moved to another
// VLAN, VNI or device, because the pods on it would silently lose their connectivity.
import * as v from 'valibot';
import { isTartanError } from '../cni/errors.js';
import { issuesText } from '../cni/validation.js';
import { auditIpam } from '../ipam/audit.js';
import { parseIp } from '../ipam/ip.js';
import { parseRange } from '../ipam/range.js';
import type { KubeClient } from '../k8s/client.js';
import { attachmentsPath, ipamNetworkName, type NetworkId } from '../k8s/names.js';
import { NetworkSpecSchema } from '../network/schema.js';
import { delegateProblem } from '../network/validate.js';
import type { Store } from '../store/types.js';
import type { KubeNetworkSpec } from './segments.js';

/** A message for the person who wrote the spec, or undefined when it is valid. */
export function specProblem(spec: unknown): string | undefined {
  // Before the core schema, which would only say that host-device needs a device.
  if (
    (spec as KubeNetworkSpec | null)?.devicePool !== undefined &&
    (spec as KubeNetworkSpec).type === 'host-device'
  )
    return 'spec.devicePool: device-plugin pools (SR-IOV) are not supported yet; name the device';
  const r = v.safeParse(NetworkSpecSchema, spec);
  if (!r.success) return issuesText(r.issues.slice(0, 1), 'spec');
  const s = r.output;
  const raw = spec as KubeNetworkSpec;
  if (raw.devicePool !== undefined && s.type !== 'host-device')
    return `spec.devicePool: only type host-device takes a device from a pool (got type ${s.type})`;

  for (const [fam, range] of [
    [4, s.ipv4],
    [6, s.ipv6],
  ] as const) {
    if (!range) continue;
    try {
      // Also refuses a route next hop the kernel could not reach over this network.
      parseRange(range, fam, `spec.ipv${fam}`);
      if (range.routes?.length && !range.gateway && range.routes.some((rt) => rt.gw === undefined))
        return `spec.ipv${fam}.routes: a route without "gw" needs the network's "gateway"`;
    } catch (e) {
      if (isTartanError(e)) return e.message;
      throw e;
    }
  }
  if (s.delegate) {
    const problem = delegateProblem(s.delegate);
    if (problem) return `spec.delegate: ${problem}`;
  }
  if (s.vxlan) {
    for (const r of s.vxlan.remotes ?? [])
      if (parseIp(r, 4) === undefined && parseIp(r, 6) === undefined)
        return `spec.vxlan.remotes: "${r}" is not an IP address`;
    if (
      s.vxlan.group !== undefined &&
      parseIp(s.vxlan.group, 4) === undefined &&
      parseIp(s.vxlan.group, 6) === undefined
    )
      return `spec.vxlan.group: "${s.vxlan.group}" is not an IP address`;
    if (s.vxlan.group !== undefined && !isMulticast(s.vxlan.group))
      return `spec.vxlan.group: ${s.vxlan.group} is not a multicast address`;
  }
  return undefined;
}

function isMulticast(ip: string): boolean {
  if (parseIp(ip, 4) !== undefined) {
    const first = Number(ip.split('.')[0]);
    return first >= 224 && first <= 239;
  }
  const v = parseIp(ip, 6);
  return v !== undefined && v >> 120n === 0xffn;
}

/** Why the network counts as in use ("3 addresses allocated, 1 attachment"), or undefined. */
export async function inUse(
  client: KubeClient,
  store: Store,
  id: NetworkId,
): Promise<string | undefined> {
  const entries = await store.list(`ipam/${encodeURIComponent(ipamNetworkName(id))}/`);
  const held = auditIpam(entries).held.length;
  const att = await client.request<{ items: unknown[] }>({
    method: 'GET',
    path: attachmentsPath(id),
  });
  // Fails closed: delegated and L2-only networks hold no addresses, so an unanswered list
  // would otherwise let a network in use be deleted or moved.
  if (att.status !== 200)
    throw new Error(`cannot list the network's attachments: HTTP ${att.status}`);
  const attachments = att.body.items.length;
  if (held === 0 && attachments === 0) return undefined;
  const parts: string[] = [];
  if (held) parts.push(`${held} address${held === 1 ? '' : 'es'} allocated`);
  if (attachments)
    parts.push(`${attachments} pod interface${attachments === 1 ? '' : 's'} attached`);
  return parts.join(', ');
}

/** JSON with sorted keys: the API server may hand an object back in another key order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (typeof v === 'object' && v !== null)
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v) ?? 'undefined';
}

/** Whether two specs say the same, whatever their key order. */
export const sameSpec = (a: unknown, b: unknown): boolean => canonical(a) === canonical(b);

/** The fields whose change would cut the pods on the network off. */
export function movedFields(before: KubeNetworkSpec, after: KubeNetworkSpec): string[] {
  const out: string[] = [];
  if (before.vlan !== after.vlan)
    out.push(`vlan ${before.vlan ?? 'none'} -> ${after.vlan ?? 'none'}`);
  if (before.vxlan?.vni !== after.vxlan?.vni)
    out.push(`vxlan.vni ${before.vxlan?.vni ?? 'none'} -> ${after.vxlan?.vni ?? 'none'}`);
  if (before.device !== after.device)
    out.push(`device ${before.device ?? 'none'} -> ${after.device ?? 'none'}`);
  if (before.devicePool !== after.devicePool)
    out.push(`devicePool ${before.devicePool ?? 'none'} -> ${after.devicePool ?? 'none'}`);
  if (before.type !== after.type) out.push(`type ${before.type} -> ${after.type}`);
  if (before.bridge !== after.bridge)
    out.push(`bridge ${before.bridge ?? 'none'} -> ${after.bridge ?? 'none'}`);
  if (canonical(before.delegate) !== canonical(after.delegate)) out.push('delegate');
  // IPAM blocks were cut from the old CIDR in the old block size (see ipam/records.ts).
  for (const f of ['ipv4', 'ipv6'] as const) {
    if (before[f]?.cidr !== after[f]?.cidr)
      out.push(`${f}.cidr ${before[f]?.cidr ?? 'none'} -> ${after[f]?.cidr ?? 'none'}`);
    if (before[f]?.blockPrefix !== after[f]?.blockPrefix) out.push(`${f}.blockPrefix`);
  }
  return out;
}
