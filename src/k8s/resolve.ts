// From a pod's parsed requests to the attachments the plugin executes, enforcing tenancy:
// a pod uses its own namespace's TenantNetworks (and NetworkAttachmentDefinitions) and the
// ClusterNetworks that admit its namespace, nothing else. The lookups are injected, so the
// webhook (API reads) and unit tests (maps) share this code.
import { TartanError } from '../cni/errors.js';
import type { InterfaceRequest } from '../cni/config.js';
import { policyRoutesProblem } from '../network/policy-routes.js';
import { nadConfigProblem } from '../network/validate.js';
import type { NetworkSpec } from '../network/schema.js';
import { parsePodInterfaces, type NetworkRef, type PodInterfaceRequest } from './annotations.js';

export interface NetworkLookup {
  tenantNetwork(namespace: string, name: string): Promise<{ spec: NetworkSpec } | undefined>;
  clusterNetwork(name: string): Promise<{ spec: NetworkSpec } | undefined>;
  /** NetworkAttachmentDefinition; undefined when absent (or the CRD is not installed). */
  nad(namespace: string, name: string): Promise<{ spec?: { config?: string } } | undefined>;
}

export interface PodAttachment {
  /** What the network really is, after NPWG names were looked up. */
  network: { kind: NetworkRef['kind']; name: string; namespace?: string };
  /** Tartan networks: their spec. */
  spec?: NetworkSpec;
  /** NetworkAttachmentDefinitions: the CNI config (JSON text) to delegate to. */
  nadConfig?: string;
  /** The request in the CNI core's shape. */
  request: InterfaceRequest;
  cniArgs?: Record<string, unknown>;
  portMappings?: PodInterfaceRequest['portMappings'];
  bandwidth?: Record<string, number>;
}

export interface PodLike {
  metadata: { name?: string; namespace?: string; annotations?: Record<string, string> };
}

const refused = (pod: string, msg: string) =>
  new TartanError('ERR_IFACE_REQUEST', `pod ${pod}: ${msg}`);

export async function resolvePodAttachments(
  pod: PodLike,
  lookup: NetworkLookup,
): Promise<PodAttachment[]> {
  const ns = pod.metadata.namespace ?? 'default';
  const who = `${ns}/${pod.metadata.name ?? '(unnamed)'}`;
  const reqs = parsePodInterfaces(ns, pod.metadata.annotations);
  const out: PodAttachment[] = [];
  for (const r of reqs) {
    const ref = r.ref;
    if (ref.namespace !== undefined && ref.namespace !== ns)
      throw refused(
        who,
        `may not use ${ref.namespace}/${ref.name}: networks of namespace ${ref.namespace} belong to another tenant ` +
          `(a pod may use its own namespace's networks and the ClusterNetworks that admit it)`,
      );
    const done = (a: Omit<PodAttachment, 'request'>, spec?: NetworkSpec) =>
      out.push({ ...a, request: toRequest(who, ns, r, spec) });
    const extras = {
      ...(r.cniArgs ? { cniArgs: r.cniArgs } : {}),
      ...(r.portMappings ? { portMappings: r.portMappings } : {}),
      ...(r.bandwidth ? { bandwidth: r.bandwidth } : {}),
    };
    if (ref.kind === 'NetworkAttachmentDefinition') {
      const nad = await lookup.nad(ns, ref.name);
      if (nad) {
        // Refused here, where the webhook sees it too, not at every ADD on the node.
        const problem = nadConfigProblem(nad.spec?.config);
        if (problem)
          throw new TartanError(
            'ERR_CONFIG',
            `pod ${who}: NetworkAttachmentDefinition ${ns}/${ref.name}: ${problem}`,
          );
        done({
          network: { kind: ref.kind, name: ref.name, namespace: ns },
          nadConfig: nad.spec?.config ?? '',
          ...extras,
        });
        continue;
      }
    }
    if (ref.kind === 'TenantNetwork' || ref.kind === 'NetworkAttachmentDefinition') {
      const tn = await lookup.tenantNetwork(ns, ref.name);
      if (tn) {
        done(
          {
            network: { kind: 'TenantNetwork', name: ref.name, namespace: ns },
            spec: tn.spec,
            ...extras,
          },
          tn.spec,
        );
        continue;
      }
      if (ref.kind === 'TenantNetwork')
        throw new TartanError(
          'ERR_UNKNOWN_NETWORK',
          `pod ${who}: no TenantNetwork "${ref.name}" in namespace ${ns} (for a ClusterNetwork write "kind": "ClusterNetwork")`,
        );
      if (ref.explicitNamespace)
        throw new TartanError(
          'ERR_UNKNOWN_NETWORK',
          `pod ${who}: no NetworkAttachmentDefinition or TenantNetwork "${ref.name}" in namespace ${ns}`,
        );
    }
    const cn = await lookup.clusterNetwork(ref.name);
    if (!cn)
      throw new TartanError(
        'ERR_UNKNOWN_NETWORK',
        ref.kind === 'ClusterNetwork'
          ? `pod ${who}: no ClusterNetwork "${ref.name}"`
          : `pod ${who}: no NetworkAttachmentDefinition or TenantNetwork "${ref.name}" in namespace ${ns}, and no ClusterNetwork "${ref.name}"`,
      );
    const allowed = cn.spec.namespaces;
    if (allowed?.length && !allowed.includes(ns))
      throw refused(
        who,
        `ClusterNetwork "${ref.name}" does not admit namespace ${ns} (it admits: ${allowed.join(', ')})`,
      );
    done(
      { network: { kind: 'ClusterNetwork', name: ref.name }, spec: cn.spec, ...extras },
      cn.spec,
    );
  }
  return out;
}

/** The CNI core's request; fixed addresses are checked against the network's families here. */
function toRequest(
  who: string,
  ns: string,
  r: PodInterfaceRequest,
  spec: NetworkSpec | undefined,
): InterfaceRequest {
  const fam = (v: string, has: boolean, f: 4 | 6) => {
    if (v === 'dynamic') return has ? 'dynamic' : 'none';
    if (v !== 'none' && !has)
      throw refused(
        who,
        `${r.ifname}: fixed IPv${f} address ${v} asked of ${r.ref.name}, which has no IPv${f} range`,
      );
    return v;
  };
  const routes = spec && r.policyRoutes ? policyRoutesProblem(spec, r.policyRoutes) : undefined;
  if (routes) throw refused(who, `${r.ifname || r.ref.name}: ${routes}`);
  return {
    network: r.ref.name,
    // An empty name means "not asked": the plugin names it (net1, net2, ...).
    ...(r.ifname ? { ifname: r.ifname } : {}),
    ip: spec ? fam(r.ip, spec.ipv4 !== undefined, 4) : r.ip,
    ip6: spec ? fam(r.ip6, spec.ipv6 !== undefined, 6) : r.ip6,
    // Claims are namespaced (NPWG IPAMClaims are namespaced objects): a pod of another
    // namespace naming the same claim on a shared network must not take this one's address.
    ...(r.claim ? { claim: `${ns}/${r.claim}` } : {}),
    ...(r.policyRoutes ? { policyRoutes: r.policyRoutes } : {}),
    ...(r.defaultRoute !== undefined ? { defaultRoute: r.defaultRoute } : {}),
    ...(r.defaultGateways ? { defaultGateways: r.defaultGateways } : {}),
    ...(r.mac ? { mac: r.mac } : {}),
    ...(r.portMappings ? { portMappings: r.portMappings } : {}),
    ...(r.bandwidth ? { bandwidth: r.bandwidth } : {}),
    ...(r.cniArgs ? { cniArgs: r.cniArgs } : {}),
  };
}
