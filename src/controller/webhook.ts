// The admission webhook: an HTTPS server speaking AdmissionReview v1.
//   POST /validate  ClusterNetwork, TenantNetwork (CREATE, UPDATE, DELETE), TenantConfig
//                   (CREATE, UPDATE), Pod (CREATE): allow, or deny with a message
//   POST /mutate    ClusterNetwork, TenantNetwork CREATE: the finalizers (IPAM state; for a
//                   TenantNetwork also its VLAN/VNI, reserved and written into the spec)
// It fails closed twice over: the configurations say failurePolicy: Fail, and an error
// inside a handler becomes a denial, never an allow.
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { KubeClient } from '../k8s/client.js';
import { API_GROUP_PATH, type NetworkId } from '../k8s/names.js';
import { resolvePodAttachments, type NetworkLookup } from '../k8s/resolve.js';
import type { NetworkSpec } from '../network/schema.js';
import type { Store } from '../store/types.js';
import { IPAM_FINALIZER } from './network-ipam.js';
import { inUse, movedFields, sameSpec, specProblem } from './network-rules.js';
import {
  Denied,
  listTenantConfigs,
  reserveClusterSegment,
  reserveSegment,
  segmentOf,
  SEGMENT_FINALIZER,
  tenantOf,
} from './segments.js';
import type { KubeNetworkSpec, TenantConfig } from './segments.js';
import { tenantConfigProblem } from './tenant-rules.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export interface AdmissionRequest {
  uid: string;
  kind: { group: string; version: string; kind: string };
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  name?: string;
  namespace?: string;
  object?: K8sObject | null;
  oldObject?: K8sObject | null;
  dryRun?: boolean;
}

interface K8sObject {
  metadata: { name?: string; namespace?: string; annotations?: Record<string, string> };
  spec?: unknown;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code: number; message: string };
  patchType?: 'JSONPatch';
  patch?: string;
}

export interface WebhookDeps {
  /** Reads networks, NADs, TenantConfigs and attachments. */
  client: KubeClient;
  /** Holds IPAM state and the VLAN/VNI reservations. */
  store: Store;
  log?: (msg: string) => void;
}

const deny = (uid: string, message: string, code = 403): AdmissionResponse => ({
  uid,
  allowed: false,
  status: { code, message },
});

const NOT_FOUND = 404;
const getOrUndefined = async <T>(client: KubeClient, path: string): Promise<T | undefined> => {
  const res = await client.request<T>({ method: 'GET', path });
  if (res.status === NOT_FOUND) return undefined;
  if (res.status !== 200) await client.must({ method: 'GET', path }); // throws with the API's words
  return res.body;
};

/** A network object, unless it is being deleted: then no pod may ask for it (as agents refuse). */
async function liveNetwork(
  client: KubeClient,
  path: string,
  what: string,
): Promise<{ spec: NetworkSpec } | undefined> {
  const o = await getOrUndefined<{ spec: NetworkSpec; metadata: { deletionTimestamp?: string } }>(
    client,
    path,
  );
  if (o?.metadata.deletionTimestamp)
    throw new Denied(`${what} is being deleted: no pod can attach to it`);
  return o;
}

export function apiLookup(client: KubeClient): NetworkLookup {
  return {
    tenantNetwork: (ns, name) =>
      liveNetwork(
        client,
        `${API_GROUP_PATH}/namespaces/${ns}/tenantnetworks/${name}`,
        `TenantNetwork ${ns}/${name}`,
      ),
    clusterNetwork: (name) =>
      liveNetwork(client, `${API_GROUP_PATH}/clusternetworks/${name}`, `ClusterNetwork ${name}`),
    nad: (ns, name) =>
      getOrUndefined(
        client,
        `/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions/${name}`,
      ),
  };
}

export async function validate(
  deps: WebhookDeps,
  req: AdmissionRequest,
): Promise<AdmissionResponse> {
  const ok: AdmissionResponse = { uid: req.uid, allowed: true };
  const kind = req.kind.kind;
  if (kind === 'Pod') {
    if (req.operation !== 'CREATE' || !req.object) return ok;
    const meta = {
      ...req.object.metadata,
      namespace: req.object.metadata.namespace ?? req.namespace,
    };
    await resolvePodAttachments({ metadata: meta }, apiLookup(deps.client));
    return ok;
  }
  if (kind === 'TenantConfig') {
    if (req.operation === 'DELETE' || !req.object) return ok;
    const others = (await listTenantConfigs(deps.client)).filter(
      (t) => t.metadata.name !== req.object!.metadata.name,
    );
    const problem = tenantConfigProblem(req.object as TenantConfig, others);
    return problem ? deny(req.uid, problem, 422) : ok;
  }
  if (kind !== 'ClusterNetwork' && kind !== 'TenantNetwork') return ok;
  const id: NetworkId = {
    kind,
    name: req.name ?? req.object?.metadata.name ?? '',
    namespace: req.namespace,
  };
  const label =
    kind === 'TenantNetwork'
      ? `TenantNetwork ${id.namespace}/${id.name}`
      : `ClusterNetwork ${id.name}`;
  if (req.operation === 'CREATE' || req.operation === 'UPDATE') {
    // The CNI core names networks by DNS label (network/schema.ts); a name it refuses would
    // be admitted here and fail every pod's ADD on the node.
    if (req.operation === 'CREATE' && !DNS_LABEL.test(id.name))
      return deny(
        req.uid,
        `${label}: metadata.name must be a DNS label (at most 63 lower-case letters, digits and "-")`,
        422,
      );
    // A change of metadata only (the controller's finalizers, labels) is not a new spec: a
    // network admitted under older rules must still be able to lose its finalizers.
    const unchanged = req.operation === 'UPDATE' && sameSpec(req.oldObject?.spec, req.object?.spec);
    const problem = unchanged ? undefined : specProblem(req.object?.spec);
    if (problem) return deny(req.uid, `${label}: ${problem}`, 422);
  }
  const reserve = () =>
    reserveClusterSegment(
      deps.store,
      { name: id.name, spec: req.object!.spec as KubeNetworkSpec },
      req.dryRun ?? false,
    );
  if (kind === 'ClusterNetwork' && req.operation === 'CREATE') await reserve();
  if (req.operation === 'UPDATE') {
    const moved = movedFields(
      req.oldObject!.spec as KubeNetworkSpec,
      req.object!.spec as KubeNetworkSpec,
    );
    if (moved.length === 0) return ok;
    if (kind === 'TenantNetwork')
      return deny(
        req.uid,
        `${label}: ${moved.join(', ')}: the VLAN/VNI and device of a TenantNetwork are fixed at creation; delete and re-create it`,
        422,
      );
    const why = await inUse(deps.client, deps.store, id);
    if (why)
      return deny(
        req.uid,
        `${label} is in use (${why}): ${moved.join(', ')} would cut those pods off; detach them first`,
      );
    // A new segment is reserved; the old one's record goes with the controller's next round
    // (reconcileSegments). An unchanged one is not checked again: it was admitted before.
    const was = segmentOf(req.oldObject!.spec as KubeNetworkSpec);
    const is = segmentOf(req.object!.spec as KubeNetworkSpec);
    if (is && JSON.stringify(was) !== JSON.stringify(is)) await reserve();
    return ok;
  }
  if (req.operation === 'DELETE') {
    const why = await inUse(deps.client, deps.store, id);
    if (why)
      return deny(req.uid, `${label} is in use (${why}); delete the pods attached to it first`);
    // The segment is freed once the delete is committed (finalizer, see segments.ts).
  }
  return ok;
}

/** The JSON patch that adds these finalizers to an object's metadata (none if present). */
function addFinalizers(object: { metadata: unknown }, add: string[]) {
  const have = (object.metadata as { finalizers?: string[] }).finalizers;
  const missing = add.filter((f) => !have?.includes(f));
  if (!have)
    return missing.length ? [{ op: 'add', path: '/metadata/finalizers', value: missing }] : [];
  return missing.map((f) => ({ op: 'add', path: '/metadata/finalizers/-', value: f }));
}

function patched(ok: AdmissionResponse, ops: unknown[]): AdmissionResponse {
  if (ops.length === 0) return ok;
  return {
    ...ok,
    patchType: 'JSONPatch',
    patch: Buffer.from(JSON.stringify(ops)).toString('base64'),
  };
}

export async function mutate(deps: WebhookDeps, req: AdmissionRequest): Promise<AdmissionResponse> {
  const ok: AdmissionResponse = { uid: req.uid, allowed: true };
  if (req.operation !== 'CREATE' || !req.object) return ok;
  if (req.kind.kind === 'ClusterNetwork')
    return patched(ok, addFinalizers(req.object, [IPAM_FINALIZER]));
  if (req.kind.kind !== 'TenantNetwork') return ok;
  const spec = (req.object.spec ?? {}) as KubeNetworkSpec;
  const namespace = req.namespace ?? req.object.metadata.namespace ?? '';
  const name = req.object.metadata.name ?? '';
  // An invalid spec is denied by /validate anyway; deny it here before reserving anything.
  // The VNI is the field this webhook fills in: checked as if it had been.
  const problem = specProblem(
    spec.vxlan && spec.vxlan.vni === undefined
      ? { ...spec, vxlan: { ...spec.vxlan, vni: 1 } }
      : spec,
  );
  if (problem) return deny(req.uid, `TenantNetwork ${namespace}/${name}: ${problem}`, 422);
  const tenant = await tenantOf(deps.client, namespace);
  const r = await reserveSegment(
    deps.store,
    tenant,
    { namespace, name, spec },
    req.dryRun ?? false,
  );
  const ops: unknown[] = [];
  if (r?.assigned) {
    const seg = r.segment;
    if (seg.type === 'vlan') ops.push({ op: 'add', path: '/spec/vlan', value: seg.id });
    else if (spec.vxlan) ops.push({ op: 'add', path: '/spec/vxlan/vni', value: seg.id });
    else ops.push({ op: 'add', path: '/spec/vxlan', value: { vni: seg.id } });
    deps.log?.(`assigned ${seg.type} ${seg.id} to TenantNetwork ${namespace}/${name}`);
  }
  ops.push(
    ...addFinalizers(req.object, r ? [SEGMENT_FINALIZER, IPAM_FINALIZER] : [IPAM_FINALIZER]),
  );
  return patched(ok, ops);
}

async function handle(
  deps: WebhookDeps,
  path: string,
  body: string,
): Promise<AdmissionResponse | undefined> {
  const review = JSON.parse(body) as { request?: AdmissionRequest };
  const req = review.request;
  if (!req) return undefined;
  try {
    if (path === '/validate') return await validate(deps, req);
    if (path === '/mutate') return await mutate(deps, req);
    return deny(req.uid, `tartan webhook: no handler for ${path}`, 404);
  } catch (e) {
    if (e instanceof Denied) return deny(req.uid, e.message);
    const msg = e instanceof Error ? e.message : String(e);
    const code = (e as { code?: string }).code;
    // A refused pod annotation is the user's to fix; anything else is ours, and still denies.
    // A NetworkAttachmentDefinition's config is too (ERR_CONFIG, from resolve.ts).
    if (code === 'ERR_IFACE_REQUEST' || code === 'ERR_UNKNOWN_NETWORK' || code === 'ERR_CONFIG')
      return deny(req.uid, msg);
    deps.log?.(`webhook error on ${req.kind.kind} ${req.operation}: ${msg}`);
    return deny(req.uid, `tartan webhook could not decide (${msg}); try again`, 500);
  }
}

export interface WebhookServer {
  server: Server;
  /** https://127.0.0.1:<port> */
  url: string;
  close(): Promise<void>;
}

/** Listens on host:port (port 0: any free one). */
export async function startWebhook(
  deps: WebhookDeps,
  tls: { cert: string; key: string },
  host = '127.0.0.1',
  port = 0,
): Promise<WebhookServer> {
  const server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0]!;
      if (req.method === 'GET' && path === '/healthz') return void res.end('ok');
      handle(deps, path, Buffer.concat(chunks).toString('utf8')).then(
        (response) => {
          if (!response) {
            res.writeHead(400).end('not an AdmissionReview');
            return;
          }
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              apiVersion: 'admission.k8s.io/v1',
              kind: 'AdmissionReview',
              response,
            }),
          );
        },
        (e: unknown) => res.writeHead(400).end(String(e)),
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    server,
    url: `https://${host}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
