// Persistent claims in a cluster: every claim a pod names (`claim` in tartan.io/interfaces,
// `ipam-claim-reference` in the NPWG annotation) is an NPWG IPAMClaim object in the pod's
// namespace, and deleting that object is how its addresses are given back. The IPAM records
// stay the truth; the object is the handle a user (or KubeVirt, or a namespace deletion) has
// on them:
// - a claim without an object gets one (with the finalizer), so `kubectl get ipamclaims`
//   shows every kept address and `kubectl delete` releases it;
// - an object that names a claim gets the finalizer, so its deletion waits for the release;
// - an object being deleted: the claim is released on every network (an address a pod
//   still holds stays with that pod until its DEL), then the finalizer goes;
// - a claim whose namespace is gone is released (a later namespace of the same name is
//   another tenant).
// An object's absence alone never releases anything: a claim made between two rounds just
// gets its object in the next one. So an object deleted before it got the finalizer, or a
// claim an ADD makes again while it is being released, comes back as a new object.
// Each claim is handled on its own: one that fails (a namespace being deleted refuses new
// objects) is reported and retried next round, and the others go on.
import { createIpam } from '../ipam/index.js';
import type { ClaimInfo, Ipam } from '../ipam/types.js';
import type { KubeClient } from '../k8s/client.js';
import { setFinalizers, type FinalizableMeta } from '../k8s/finalizers.js';
import { ipamNetworkName, type NetworkId } from '../k8s/names.js';
import type { NetworkSpec } from '../network/schema.js';
import type { Store } from '../store/types.js';

export const CLAIM_FINALIZER = 'tartan.io/claim';
const NPWG_PATH = '/apis/k8s.cni.cncf.io/v1alpha1';
const CRD_PATH =
  '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/ipamclaims.k8s.cni.cncf.io';

interface ClaimObj {
  metadata: FinalizableMeta;
  spec: { network: string; interface: string };
  status?: { ips?: string[]; ownerPod?: { name: string } };
}

/** Who holds a handle now ("<containerId>/<ifname>" -> pod name), from the Attachments. */
export type PodOfHandle = (handle: string) => string | undefined;

interface Held {
  net: string;
  spec: NetworkSpec;
  info: ClaimInfo;
}

/** A network as the round sees it; valid: its spec passes the rules (its claims are listed). */
export interface ClaimNetwork {
  id: NetworkId;
  spec: NetworkSpec;
  valid: boolean;
}

export interface ClaimRound {
  created: string[];
  released: string[];
  /** Why the round did not look at claims at all (the IPAMClaim CRD is not installed). */
  skipped?: string;
  /** What went wrong for single claims or networks; the rest of the round went on. */
  errors?: string[];
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

export async function reconcileClaims(
  client: KubeClient,
  store: Store,
  networks: ClaimNetwork[],
  podOf: PodOfHandle = () => undefined,
  ipam: Ipam = createIpam(store),
): Promise<ClaimRound> {
  const round: ClaimRound = { created: [], released: [] };
  const errors: string[] = [];
  const res = await client.request({ method: 'GET', path: `${NPWG_PATH}/ipamclaims` });
  if (res.status === 404) return { ...round, skipped: 'the IPAMClaim CRD is not installed' };
  if (res.status !== 200)
    throw new Error(`listing IPAMClaims: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  const objects = new Map(
    (res.body as { items: ClaimObj[] }).items.map((o) => [
      `${o.metadata.namespace}/${o.metadata.name}`,
      o,
    ]),
  );

  // Claims by "<namespace>/<name>"; names without a namespace were not made in a cluster.
  const held = new Map<string, Held[]>();
  for (const { id, spec, valid } of networks) {
    if (!valid) continue;
    const net = ipamNetworkName(id);
    try {
      for (const info of await ipam.claims(net, spec)) {
        if (!info.name.includes('/')) continue;
        held.set(info.name, [...(held.get(info.name) ?? []), { net, spec, info }]);
      }
    } catch (e) {
      errors.push(`network ${net}: ${message(e)}`);
    }
  }

  // On every network, valid or not (releasing needs no spec): a claim left on one would
  // outlive the object that was its only handle.
  const release = async (key: string) => {
    for (const { id, spec } of networks) await ipam.releaseClaim(ipamNetworkName(id), spec, key);
    if (held.has(key)) round.released.push(key);
  };

  // Deleting the CRD deletes every IPAMClaim: that is a reinstall, not an instruction to
  // give every kept address away. The finalizers go, the claims stay, and the objects
  // come back with the CRD.
  let crdGoing: boolean | undefined;
  const crdIsGoing = async () => {
    if (crdGoing === undefined) {
      const crd = await client.request<{ metadata?: { deletionTimestamp?: string } }>({
        method: 'GET',
        path: CRD_PATH,
      });
      if (crd.status !== 200 && crd.status !== 404)
        throw new Error(`reading the IPAMClaim CRD: HTTP ${crd.status}`);
      crdGoing = crd.status === 404 || crd.body.metadata?.deletionTimestamp !== undefined;
    }
    return crdGoing;
  };

  for (const [key, obj] of objects) {
    const m = obj.metadata;
    const finalizers = m.finalizers ?? [];
    try {
      if (m.deletionTimestamp) {
        if (!finalizers.includes(CLAIM_FINALIZER)) continue;
        if (!(await crdIsGoing())) await release(key);
        await finalize(
          client,
          obj,
          finalizers.filter((f) => f !== CLAIM_FINALIZER),
        );
        continue;
      }
      const mine = held.get(key);
      if (!mine) continue;
      if (!finalizers.includes(CLAIM_FINALIZER))
        await finalize(client, obj, [...finalizers, CLAIM_FINALIZER]);
      await writeStatus(client, obj, mine, podOf);
    } catch (e) {
      errors.push(`IPAMClaim ${key}: ${message(e)}`);
    }
  }

  for (const [key, mine] of held) {
    if (objects.has(key)) continue;
    const slash = key.indexOf('/');
    const [namespace, name] = [key.slice(0, slash), key.slice(slash + 1)];
    const holder = mine.flatMap((h) => h.info.holders)[0];
    try {
      const created = await client.request<ClaimObj & { details?: { kind?: string } }>({
        method: 'POST',
        path: `${NPWG_PATH}/namespaces/${namespace}/ipamclaims`,
        body: {
          apiVersion: 'k8s.cni.cncf.io/v1alpha1',
          kind: 'IPAMClaim',
          metadata: { name, namespace, finalizers: [CLAIM_FINALIZER] },
          spec: {
            network: mine[0]!.net,
            interface: holder ? holder.slice(holder.lastIndexOf('/') + 1) : '',
          },
        },
      });
      if (created.status === 201) {
        round.created.push(key);
        await writeStatus(client, created.body, mine, podOf);
      } else if (created.status === 404 && created.body.details?.kind === 'namespaces') {
        // The namespace is gone, and every pod with it.
        await release(key);
      } else if (created.status !== 409) {
        // A namespace being deleted (403) gets no new objects: its claims wait for it to go.
        throw new Error(`HTTP ${created.status} ${JSON.stringify(created.body)}`);
      }
    } catch (e) {
      errors.push(`creating IPAMClaim ${key}: ${message(e)}`);
    }
  }
  return errors.length ? { ...round, errors } : round;
}

/** Sets the finalizer list if the object is unchanged since it was read (else next round). */
async function finalize(client: KubeClient, obj: ClaimObj, finalizers: string[]) {
  const m = obj.metadata;
  const path = `${NPWG_PATH}/namespaces/${m.namespace}/ipamclaims/${m.name}`;
  const status = await setFinalizers(client, path, m, finalizers);
  if (status !== 200) throw new Error(`setting finalizers: HTTP ${status}`);
}

/** status.ips (address/prefix, every network) and ownerPod, written when they change. */
async function writeStatus(client: KubeClient, obj: ClaimObj, mine: Held[], podOf: PodOfHandle) {
  const ips = mine.flatMap((h) => h.info.ips);
  const pod = mine
    .flatMap((h) => h.info.holders)
    .map(podOf)
    .find((p) => p !== undefined);
  const want = { ips, ...(pod ? { ownerPod: { name: pod } } : {}) };
  const have = obj.status ?? {};
  if (JSON.stringify(have.ips ?? []) === JSON.stringify(ips) && have.ownerPod?.name === pod) return;
  const m = obj.metadata;
  const res = await client.request({
    method: 'PATCH',
    path: `${NPWG_PATH}/namespaces/${m.namespace}/ipamclaims/${m.name}/status`,
    // A merge patch cannot remove a key by leaving it out: null does.
    body: { status: { ...want, ...(pod ? {} : { ownerPod: null }) } },
  });
  if (res.status !== 200) throw new Error(`writing status: HTTP ${res.status}`);
}
