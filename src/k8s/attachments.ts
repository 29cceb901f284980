// Attachment records: one object per pod interface, written by the agent after ADD and
// removed after DEL. The controller's GC and the webhook's "network in use" check find them
// by the labels below, so the agent must write them through this module. The owner
// reference to the pod lets Kubernetes' garbage collector delete them with the pod; the
// controller also deletes records whose pod is gone (for clusters without that collector,
// and for a pod re-created under the same name).
import { createHash } from 'node:crypto';
import type { KubeClient } from './client.js';
import { API_GROUP_PATH, ATTACHMENT_LABEL, type AttachedNetwork } from './names.js';

export interface AttachmentInput {
  pod: { name: string; namespace: string; uid: string };
  node: string;
  containerId: string;
  ifname: string;
  network: AttachedNetwork;
  ips: string[];
  mac?: string;
}

/**
 * The object name: stable per pod and interface, so a repeated ADD replaces it, and one per
 * pod and interface: readable, plus a hash of both, since the readable part alone is not
 * (net-1 and net.1 of one pod, or pod a's b-net1 and pod a-b's net1, shared a name, and the
 * controller's GC then freed a live interface's address).
 */
export const attachmentName = (pod: string, ifname: string): string => {
  const readable = `${pod}-${ifname.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`
    .slice(0, 240)
    .replace(/-+$/, '');
  const hash = createHash('sha256').update(`${pod}/${ifname}`).digest('hex').slice(0, 10);
  return `${readable}-${hash}`;
};

export function attachmentObject(a: AttachmentInput): Record<string, unknown> {
  return {
    apiVersion: 'tartan.io/v1alpha1',
    kind: 'Attachment',
    metadata: {
      name: attachmentName(a.pod.name, a.ifname),
      namespace: a.pod.namespace,
      labels: { [ATTACHMENT_LABEL[a.network.kind]]: a.network.name, 'tartan.io/node': a.node },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: a.pod.name, uid: a.pod.uid }],
    },
    spec: {
      pod: a.pod.name,
      podUID: a.pod.uid,
      node: a.node,
      containerId: a.containerId,
      ifname: a.ifname,
      network: {
        kind: a.network.kind,
        name: a.network.name,
        ...(a.network.namespace ? { namespace: a.network.namespace } : {}),
      },
      ips: a.ips,
      ...(a.mac ? { mac: a.mac } : {}),
    },
  };
}

/** Creates or replaces the record of one interface. */
export async function writeAttachment(client: KubeClient, a: AttachmentInput): Promise<void> {
  const obj = attachmentObject(a);
  const base = `${API_GROUP_PATH}/namespaces/${a.pod.namespace}/attachments`;
  const path = `${base}/${attachmentName(a.pod.name, a.ifname)}`;
  const res = await client.request({ method: 'POST', path: base, body: obj });
  if (res.status === 201) return;
  if (res.status !== 409) await client.must({ method: 'POST', path: base, body: obj });
  const cur = await client.must<{ metadata: { resourceVersion: string } }>({ method: 'GET', path });
  const metadata = { ...(obj.metadata as object), resourceVersion: cur.metadata.resourceVersion };
  await client.must({ method: 'PUT', path, body: { ...obj, metadata } });
}

/** Deletes the record; a record already gone is success (DEL is idempotent). */
export async function deleteAttachment(
  client: KubeClient,
  namespace: string,
  pod: string,
  ifname: string,
): Promise<void> {
  const path = `${API_GROUP_PATH}/namespaces/${namespace}/attachments/${attachmentName(pod, ifname)}`;
  const res = await client.request({ method: 'DELETE', path });
  if (res.status !== 200 && res.status !== 202 && res.status !== 404)
    await client.must({ method: 'DELETE', path });
}
