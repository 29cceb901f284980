// What the cluster learns from the agent about a pod's interfaces: after ADD the NPWG
// network-status annotation on the pod and one Attachment object per interface (owned by
// the pod); after DEL the Attachments go. The datapath is already in place or already gone,
// so a failure here is never a CNI error: while the API server is away (restarting, cut
// off) each write is retried with backoff for a while, then logged and left to the
// controller, which deletes Attachments whose pod is gone.
import type { AttachmentRecord } from '../attach/records.js';
import { isTartanError } from '../cni/errors.js';
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

/** API answers that another try cannot change (the pod is gone, the request is refused). */
const FINAL = new Set(['NotFound', 'Forbidden', 'Unauthorized', 'Invalid', 'BadRequest', 'Gone']);

export interface RetryPolicy {
  firstDelayMs: number;
  maxDelayMs: number;
  /** Give up after this long (for a DEL's clean-up: the controller's GC covers what is left). */
  giveUpMs: number;
}

const DEFAULT_RETRY: RetryPolicy = { firstDelayMs: 500, maxDelayMs: 15_000, giveUpMs: 600_000 };
/**
 * An ADD's publication does not give up while its pod lives: its Attachments are what keep
 * the controller's GC from freeing the pod's addresses after its grace period, so an agent
 * cut off from the API server for longer must still publish them when it is back. Its DEL
 * cancels it; a final answer (the pod is gone) ends it.
 */
const PUBLISH_RETRY: RetryPolicy = { firstDelayMs: 500, maxDelayMs: 60_000, giveUpMs: Infinity };

export function podSync(
  client: KubeClient,
  log: Logger,
  retry: RetryPolicy = DEFAULT_RETRY,
  publishRetry: RetryPolicy = PUBLISH_RETRY,
): PodSync {
  /** Publications still being retried, by pod and container: a DEL cancels its ADD's. */
  const publishing = new Map<string, { cancelled: boolean; done: Promise<void> }>();
  const keyOf = (pod: PodRef, rec: AttachmentRecord) =>
    `${pod.namespace}/${pod.name}/${rec.containerId}`;

  /** Runs fn until it succeeds, fails for good, or the policy gives up; never rejects. */
  async function persist(
    what: string,
    fields: Record<string, unknown>,
    fn: () => Promise<void>,
    cancelled = () => false,
    policy = retry,
  ) {
    const end = Date.now() + policy.giveUpMs;
    for (
      let delay = policy.firstDelayMs;
      !cancelled();
      delay = Math.min(delay * 2, policy.maxDelayMs)
    ) {
      try {
        await fn();
        return;
      } catch (e) {
        const final = isTartanError(e) && e.details !== undefined && FINAL.has(e.details);
        if (final || Date.now() + delay > end) {
          log.warn(`could not ${what}`, { ...fields, error: (e as Error).message });
          return;
        }
        log.debug(`${what}: retrying`, { ...fields, ms: delay, error: (e as Error).message });
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  const publish = (pod: PodRef, rec: AttachmentRecord, node: string, cancelled: () => boolean) =>
    persist(
      "publish the pod's interfaces",
      { pod: `${pod.namespace}/${pod.name}` },
      async () => {
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
      },
      cancelled,
      publishRetry,
    );

  return {
    async added(pod, rec, node) {
      const key = keyOf(pod, rec);
      const entry = { cancelled: false, done: Promise.resolve() };
      entry.done = publish(pod, rec, node, () => entry.cancelled);
      publishing.set(key, entry);
      await entry.done;
      if (publishing.get(key) === entry) publishing.delete(key);
    },
    async deleted(pod, rec) {
      // An ADD's publication still retrying must not write Attachments after these go.
      const pending = publishing.get(keyOf(pod, rec));
      if (pending) {
        pending.cancelled = true;
        await pending.done;
      }
      await Promise.all(
        rec.interfaces.map((i) =>
          persist(
            'delete an Attachment',
            { pod: `${pod.namespace}/${pod.name}`, ifname: i.ifname },
            () => deleteAttachment(client, pod.namespace, pod.name, i.ifname),
          ),
        ),
      );
    },
  };
}
