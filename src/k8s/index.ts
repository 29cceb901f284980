// Kubernetes API access and the pod-facing conventions shared by the agent, the controller
// and tartanctl. No program imports: programs import this.
export { createKubeClient, inClusterConnection, isTransient } from './client.js';
export type {
  KubeClient,
  KubeConnection,
  KubeRequest,
  KubeResponse,
  KubeStatus,
} from './client.js';
export { applyManifests, ensureCrds, ensureNamespace, installCrds } from './apply.js';
export { npwgCrds, tartanCrds } from './crds.js';
export {
  NETWORK_STATUS_ANNOTATION,
  NPWG_ANNOTATION,
  parsePodInterfaces,
  TARTAN_ANNOTATION,
} from './annotations.js';
export type { NetworkRef, PodInterfaceRequest } from './annotations.js';
export { resolvePodAttachments } from './resolve.js';
export type { NetworkLookup, PodAttachment, PodLike } from './resolve.js';
export { networkStatusOf, writeNetworkStatus, type NetworkStatus } from './network-status.js';
export * from './names.js';
export { attachmentObject, deleteAttachment, writeAttachment } from './attachments.js';
export type { AttachmentInput } from './attachments.js';
