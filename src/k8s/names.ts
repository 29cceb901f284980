// Names shared by the agent, the controller and the webhook, so that each finds what the
// others wrote: the IPAM network name of a network object, attachment labels, store keys.
export const API_GROUP_PATH = '/apis/tartan.io/v1alpha1';

export interface NetworkId {
  kind: 'ClusterNetwork' | 'TenantNetwork';
  name: string;
  namespace?: string;
}

/**
 * The IPAM network name (keys ipam/<enc(name)>/...). ClusterNetwork names cannot hold "/",
 * so "<namespace>/<name>" keeps every TenantNetwork apart from them and from each other.
 */
export const ipamNetworkName = (n: NetworkId): string =>
  n.kind === 'TenantNetwork' ? `${n.namespace}/${n.name}` : n.name;

/** A pod interface's network: a Tartan network or a delegated NetworkAttachmentDefinition. */
export interface AttachedNetwork {
  kind: NetworkId['kind'] | 'NetworkAttachmentDefinition';
  name: string;
  namespace?: string;
}

/** Prefix of a delegated NetworkAttachmentDefinition's name in the core ("nad:<ns>/<name>"). */
export const NAD_PREFIX = 'nad:';

/** The network behind a core (IPAM) network name: the inverse of ipamNetworkName. */
export function networkOfCoreName(n: string): AttachedNetwork {
  const nad = n.startsWith(NAD_PREFIX);
  const rest = nad ? n.slice(NAD_PREFIX.length) : n;
  const i = rest.indexOf('/');
  if (i < 0) return { kind: 'ClusterNetwork', name: rest };
  const kind = nad ? 'NetworkAttachmentDefinition' : 'TenantNetwork';
  return { kind, namespace: rest.slice(0, i), name: rest.slice(i + 1) };
}

/** Labels on Attachment objects, for listing a network's attachments. */
export const ATTACHMENT_LABEL = {
  ClusterNetwork: 'tartan.io/cluster-network',
  TenantNetwork: 'tartan.io/tenant-network',
  NetworkAttachmentDefinition: 'tartan.io/network-attachment-definition',
} as const;

export const networkPath = (n: NetworkId): string =>
  n.kind === 'ClusterNetwork'
    ? `${API_GROUP_PATH}/clusternetworks/${n.name}`
    : `${API_GROUP_PATH}/namespaces/${n.namespace}/tenantnetworks/${n.name}`;

/** Attachments of a network: across namespaces for a ClusterNetwork, in its own for a TenantNetwork. */
export const attachmentsPath = (n: NetworkId): string => {
  const sel = encodeURIComponent(`${ATTACHMENT_LABEL[n.kind]}=${n.name}`);
  return n.kind === 'ClusterNetwork'
    ? `${API_GROUP_PATH}/attachments?labelSelector=${sel}`
    : `${API_GROUP_PATH}/namespaces/${n.namespace}/attachments?labelSelector=${sel}`;
};

/** Store keys of the VLAN / VNI reservations (one record per id: create-if-absent is the lock). */
export const segmentKeys = {
  vlan: (device: string, id: number) => `segments/vlan/${encodeURIComponent(device)}/${id}`,
  vni: (id: number) => `segments/vni/${id}`,
  all: 'segments/',
};
