// Writes network definitions as one multi-document YAML file, the way an operator would
// put them in a networks directory. Used by the lab, the tests and the benchmarks.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';

export function writeNetworks(
  dir: string,
  nets: Array<{
    name: string;
    spec: Record<string, unknown>;
    /** Default ClusterNetwork; a TenantNetwork belongs to `namespace`. */
    kind?: 'ClusterNetwork' | 'TenantNetwork';
    namespace?: string;
  }>,
): void {
  mkdirSync(dir, { recursive: true });
  const docs = nets.map((n) =>
    stringify({
      apiVersion: 'tartan.io/v1alpha1',
      kind: n.kind ?? 'ClusterNetwork',
      metadata: { name: n.name, ...(n.namespace ? { namespace: n.namespace } : {}) },
      spec: n.spec,
    }),
  );
  writeFileSync(join(dir, 'networks.yaml'), docs.join('---\n'));
}
