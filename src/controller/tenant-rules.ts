// TenantConfig rules that need more than one object: a namespace belongs to one tenant,
// and no VLAN (per host device) or VNI (cluster-wide) is offered to two tenants, or
// twice to one, since the webhook hands them out as exclusive.
import type { IdRange, TenantConfig } from './segments.js';

const fmt = (r: IdRange) => (r.start === r.end ? `${r.start}` : `${r.start}-${r.end}`);
const overlap = (a: IdRange, b: IdRange) => a.start <= b.end && b.start <= a.end;

interface Offer {
  tenant: string;
  space: string; // "VLANs on eth1" or "VNIs"
  range: IdRange;
}

function offers(t: TenantConfig): Offer[] {
  return (t.spec.hostDevices ?? []).flatMap((d) => [
    ...(d.vlans ?? []).map((range) => ({
      tenant: t.metadata.name,
      space: `VLANs on ${d.name}`,
      range,
    })),
    ...(d.vnis ?? []).map((range) => ({ tenant: t.metadata.name, space: 'VNIs', range })),
  ]);
}

export function tenantConfigProblem(tc: TenantConfig, others: TenantConfig[]): string | undefined {
  const name = `TenantConfig ${tc.metadata.name}`;
  for (const ns of tc.spec.namespaces) {
    const owner = others.find((o) => o.spec.namespaces.includes(ns));
    if (owner) return `${name}: namespace ${ns} already belongs to tenant ${owner.metadata.name}`;
  }
  const mine = offers(tc);
  for (const [i, a] of mine.entries()) {
    for (const b of mine.slice(i + 1))
      if (a.space === b.space && overlap(a.range, b.range))
        return `${name}: ${a.space}: ranges ${fmt(a.range)} and ${fmt(b.range)} overlap`;
    for (const o of others.flatMap(offers))
      if (o.space === a.space && overlap(a.range, o.range))
        return `${name}: ${a.space} ${fmt(a.range)} overlap ${fmt(o.range)} of tenant ${o.tenant}`;
  }
  return undefined;
}
