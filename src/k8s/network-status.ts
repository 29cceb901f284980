// The NPWG k8s.v1.cni.cncf.io/network-status annotation, built from CNI results and written
// back on the pod after ADD (as Multus does), so that tools and users see every interface.
import type { CniResult } from '../cni/spec.js';
import type { KubeClient } from './client.js';
import { NETWORK_STATUS_ANNOTATION } from './annotations.js';

export interface NetworkStatus {
  /** "<namespace>/<name>" of the network, or the name of a ClusterNetwork. */
  name: string;
  interface?: string;
  ips?: string[];
  mac?: string;
  mtu?: number;
  default?: boolean;
  dns?: CniResult['dns'];
  gateway?: string[];
  'device-info'?: Record<string, unknown>;
}

/** The entry for one interface of a CNI result (the one named ifname, inside the sandbox). */
export function networkStatusOf(
  name: string,
  ifname: string,
  result: CniResult,
  opts: { default?: boolean; deviceInfo?: Record<string, unknown> } = {},
): NetworkStatus {
  const ifaces = result.interfaces ?? [];
  let idx = ifaces.findIndex(
    (i) => i.name === ifname && i.sandbox !== undefined && i.sandbox !== '',
  );
  if (idx < 0) idx = ifaces.findIndex((i) => i.name === ifname);
  const iface = idx >= 0 ? ifaces[idx] : undefined;
  // An ip without an interface index belongs to the only interface there is.
  const mine = (result.ips ?? []).filter(
    (ip) => ip.interface === idx || (ip.interface === undefined && ifaces.length <= 1),
  );
  const gateways = mine.flatMap((ip) => (ip.gateway ? [ip.gateway] : []));
  const dns = result.dns && Object.keys(result.dns).length ? result.dns : undefined;
  return {
    name,
    interface: ifname,
    ips: mine.map((ip) => ip.address.split('/')[0]!),
    ...(iface?.mac ? { mac: iface.mac } : {}),
    ...(iface?.mtu ? { mtu: iface.mtu } : {}),
    default: opts.default ?? false,
    dns: dns ?? {},
    ...(gateways.length && opts.default ? { gateway: gateways } : {}),
    ...(opts.deviceInfo ? { 'device-info': opts.deviceInfo } : {}),
  };
}

/** Merge-patches the annotation onto the pod (other annotations are left alone). */
export async function writeNetworkStatus(
  client: KubeClient,
  namespace: string,
  pod: string,
  statuses: NetworkStatus[],
): Promise<void> {
  await client.must({
    method: 'PATCH',
    path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}`,
    body: {
      metadata: { annotations: { [NETWORK_STATUS_ANNOTATION]: JSON.stringify(statuses, null, 2) } },
    },
  });
}
