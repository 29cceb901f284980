// What the cluster learns from the agent about a pod's interfaces: after ADD the NPWG
// network-status annotation on the pod and one Attachment object per interface (owned by
// the pod); after DEL the Attachments go. Best effort: the datapath is already in place or
// already gone, so a failure here is logged, never turned into a CNI error.
import type { AttachmentRecord } from '../attach/records.js';
import { parseCniArgs } from '../cni/config.js';
import { deleteAttachment, writeAttachment } from '../k8s/attachments.js';
import type { KubeClient } from '../k8s/client.js';
import { NAD_PREFIX, networkOfCoreName } from '../k8s/names.js';
import { networkStatusOf, writeNetworkStatus } from '../k8s/network-status.js';
import type { Logger } from './log.js';

export interface PodRef {
  namespace: string;
  name: string;
  uid: string | undefined;
}

/** The pod a CNI call is for, from the K8S_* keys runtimes put in CNI_ARGS. */
export function podOf(cniArgs: string | undefined): PodRef | undefined {
  let args: Map<string, string>;
  try {
    args = parseCniArgs(cniArgs);
  } catch {
    return undefined;
  }
  const namespace = args.get('K8S_POD_NAMESPACE');
  const name = args.get('K8S_POD_NAME');
  if (!namespace || !name) return undefined;
  return { namespace, name, uid: args.get('K8S_POD_UID') };
}

const npwgName = (n: string) => (n.startsWith(NAD_PREFIX) ? n.slice(NAD_PREFIX.length) : n);

export interface PodSync {
  added(pod: PodRef, rec: AttachmentRecord, node: string): Promise<void>;
  deleted(pod: PodRef, rec: AttachmentRecord): Promise<void>;
}

export function podSync(client: KubeClient, log: Logger): PodSync {
  return {
    async added(pod, rec, node) {
      try {
        const uid =
          pod.uid ??
          (
            await client.must<{ metadata: { uid: string } }>({
              method: 'GET',
              path: `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`,
            })
          ).metadata.uid;
        const result = rec.result ?? { cniVersion: '1.1.0' };
        // NPWG names: "<namespace>/<name>" for TenantNetworks and NADs, a ClusterNetwork's name.
        const statuses = rec.interfaces.map((i, n) =>
          networkStatusOf(npwgName(i.network), i.ifname, result, {
            default: n === 0,
          }),
        );
        await writeNetworkStatus(client, pod.namespace, pod.name, statuses);
        for (const [n, i] of rec.interfaces.entries())
          await writeAttachment(client, {
            pod: { name: pod.name, namespace: pod.namespace, uid },
            node,
            containerId: rec.containerId,
            ifname: i.ifname,
            network: networkOfCoreName(i.network),
            ips: statuses[n]?.ips ?? [],
            ...(statuses[n]?.mac ? { mac: statuses[n]!.mac! } : {}),
          });
      } catch (e) {
        log.warn("could not publish the pod's interfaces to the API server", {
          pod: `${pod.namespace}/${pod.name}`,
          error: (e as Error).message,
        });
      }
    },
    async deleted(pod, rec) {
      for (const i of rec.interfaces) {
        try {
          await deleteAttachment(client, pod.namespace, pod.name, i.ifname);
        } catch (e) {
          log.warn('could not delete an Attachment', {
            pod: `${pod.namespace}/${pod.name}`,
            ifname: i.ifname,
            error: (e as Error).message,
          });
        }
      }
    },
  };
}
