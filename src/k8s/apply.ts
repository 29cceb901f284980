// Installing CRDs and waiting until the API server serves them.
import { TartanError } from '../cni/errors.js';
import type { KubeClient } from './client.js';
import { npwgCrds, tartanCrds } from './crds.js';

const CRD_PATH = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';

interface Crd {
  metadata: { name: string; resourceVersion?: string };
  spec?: {
    group: string;
    names: { plural: string };
    versions: { name: string; served: boolean }[];
  };
  status?: { conditions?: { type: string; status: string; message?: string }[] };
}

/**
 * Creates each CRD, or replaces it when replace is set (an upgrade). With replace unset an
 * existing CRD is left alone: the NPWG CRDs may belong to Multus, whose copy wins.
 */
export async function ensureCrds(
  client: KubeClient,
  crds: Record<string, unknown>[],
  opts: { replace: boolean; timeoutMs?: number },
): Promise<void> {
  for (const c of crds) {
    const name = (c as unknown as Crd).metadata.name;
    const path = `${CRD_PATH}/${name}`;
    const cur = await client.request<Crd>({ method: 'GET', path });
    if (cur.status === 404) {
      await client.must({ method: 'POST', path: CRD_PATH, body: c });
    } else if (cur.status === 200 && opts.replace) {
      const meta = {
        ...(c.metadata as object),
        resourceVersion: cur.body.metadata.resourceVersion,
      };
      await client.must({ method: 'PUT', path, body: { ...c, metadata: meta } });
    } else if (cur.status !== 200) {
      await client.must({ method: 'GET', path }); // throws with the API's message
    }
  }
  await Promise.all(
    crds.map((c) => waitEstablished(client, (c as unknown as Crd).metadata.name, opts.timeoutMs)),
  );
}

async function waitEstablished(client: KubeClient, name: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const crd = await client.must<Crd>({ method: 'GET', path: `${CRD_PATH}/${name}` });
    const conds = crd.status?.conditions ?? [];
    const bad = conds.find((c) => c.type === 'NamesAccepted' && c.status === 'False');
    if (bad) throw new TartanError('ERR_CONFIG', `CRD ${name}: names not accepted: ${bad.message}`);
    if (conds.some((c) => c.type === 'Established' && c.status === 'True')) {
      // Established means accepted, not yet served: the first requests after it can get a
      // 404 or 503 while the API server builds the handler. Wait for a list to work.
      const { group, names, versions } = crd.spec!;
      const v = versions.find((x) => x.served)?.name ?? versions[0]!.name;
      const res = await client.request({
        method: 'GET',
        path: `/apis/${group}/${v}/${names.plural}?limit=1`,
      });
      if (res.status === 200) return;
      last = `list answers ${res.status}`;
    } else last = JSON.stringify(conds);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new TartanError('ERR_STORE', `CRD ${name} not established within ${timeoutMs} ms: ${last}`);
}

/** Tartan's CRDs (replaced, they are ours) and the NPWG ones where missing. */
export async function installCrds(client: KubeClient): Promise<void> {
  await ensureCrds(client, tartanCrds(), { replace: true });
  await ensureCrds(client, npwgCrds(), { replace: false });
}

/** Creates a namespace unless it exists. */
export async function ensureNamespace(client: KubeClient, name: string): Promise<void> {
  const res = await client.request({
    method: 'POST',
    path: '/api/v1/namespaces',
    body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } },
  });
  if (res.status !== 201 && res.status !== 409)
    await client.must({ method: 'GET', path: `/api/v1/namespaces/${name}` });
}

const KINDS: Record<string, { plural: string; namespaced: boolean }> = {
  Namespace: { plural: 'namespaces', namespaced: false },
  ServiceAccount: { plural: 'serviceaccounts', namespaced: true },
  Service: { plural: 'services', namespaced: true },
  ConfigMap: { plural: 'configmaps', namespaced: true },
  ClusterRole: { plural: 'clusterroles', namespaced: false },
  ClusterRoleBinding: { plural: 'clusterrolebindings', namespaced: false },
  Role: { plural: 'roles', namespaced: true },
  RoleBinding: { plural: 'rolebindings', namespaced: true },
  Deployment: { plural: 'deployments', namespaced: true },
  DaemonSet: { plural: 'daemonsets', namespaced: true },
  CustomResourceDefinition: { plural: 'customresourcedefinitions', namespaced: false },
  ValidatingWebhookConfiguration: { plural: 'validatingwebhookconfigurations', namespaced: false },
  MutatingWebhookConfiguration: { plural: 'mutatingwebhookconfigurations', namespaced: false },
  Pod: { plural: 'pods', namespaced: true },
  ClusterNetwork: { plural: 'clusternetworks', namespaced: false },
  TenantNetwork: { plural: 'tenantnetworks', namespaced: true },
};

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string };
}

/** Collection path of a manifest's kind ("kubectl apply" for the kinds Tartan ships). */
export function collectionPath(m: Manifest): string {
  const k = KINDS[m.kind];
  if (!k) throw new TartanError('ERR_CONFIG', `apply: kind ${m.kind} is not supported`);
  const group = m.apiVersion.includes('/') ? `/apis/${m.apiVersion}` : `/api/${m.apiVersion}`;
  const ns = k.namespaced ? `/namespaces/${m.metadata.namespace ?? 'default'}` : '';
  return `${group}${ns}/${k.plural}`;
}

/** Creates each object, or replaces it when it exists (in order: namespaces first). */
export async function applyManifests(client: KubeClient, docs: unknown[]): Promise<void> {
  for (const doc of docs) {
    const m = doc as Manifest;
    const base = collectionPath(m);
    const path = `${base}/${m.metadata.name}`;
    const cur = await client.request<Manifest>({ method: 'GET', path });
    if (cur.status === 404) await client.must({ method: 'POST', path: base, body: m });
    else {
      const metadata = { ...m.metadata, resourceVersion: cur.body.metadata.resourceVersion };
      await client.must({ method: 'PUT', path, body: { ...m, metadata } });
    }
  }
}
