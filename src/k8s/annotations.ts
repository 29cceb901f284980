// A pod's interface requests, from Tartan's own annotation or the Network Plumbing WG one,
// parsed into one list of requests (syntax only: no API access). resolve.ts then checks
// which networks the pod may use. Every refusal names the annotation, the entry and what
// to write instead, because the person reading it wrote the pod spec, not this code.
//
//   tartan.io/interfaces: '[{"network":"oam","kind":"ClusterNetwork","ip":"10.0.0.5/24",
//                           "ip6":"none","ifname":"oam0","policyRoutes":[{"dst":"0.0.0.0/0"}]}]'
//   k8s.v1.cni.cncf.io/networks: 'net-a, other-ns/net-b@fast0'          (short form)
//   k8s.v1.cni.cncf.io/networks: '[{"name":"net-a","ips":["10.1.1.5/24"],"mac":"..",
//        "interface":"net7","default-route":["10.1.1.1"],"cni-args":{..},
//        "portMappings":[..],"bandwidth":{..}}]'                        (JSON form)
import * as v from 'valibot';
import {
  isReservedIfname,
  isUnicastMac,
  MAC_MESSAGE,
  MAX_INTERFACES,
  RESERVED_IFNAME_MESSAGE,
} from '../cni/config.js';
import { TartanError } from '../cni/errors.js';
import { deeperThan, MAX_DEPTH } from '../cni/protocol.js';
import { dict, issuesText } from '../cni/validation.js';
import { familyOf } from '../ipam/ip.js';

export const TARTAN_ANNOTATION = 'tartan.io/interfaces';
export const NPWG_ANNOTATION = 'k8s.v1.cni.cncf.io/networks';
export const NETWORK_STATUS_ANNOTATION = 'k8s.v1.cni.cncf.io/network-status';

export type NetworkKind = 'TenantNetwork' | 'ClusterNetwork' | 'NetworkAttachmentDefinition';

export interface NetworkRef {
  kind: NetworkKind;
  name: string;
  /** TenantNetwork and NetworkAttachmentDefinition: the namespace named, or the pod's. */
  namespace?: string;
  /** NPWG names may be a NetworkAttachmentDefinition or a Tartan network: resolved later. */
  npwg?: boolean;
  /** The request named the namespace ("ns/name"), so it cannot fall back to a ClusterNetwork. */
  explicitNamespace?: boolean;
}

export interface PodInterfaceRequest {
  ref: NetworkRef;
  ifname: string;
  ip: string;
  ip6: string;
  mac?: string;
  defaultRoute?: boolean;
  /** NPWG default-route: the gateway(s) for the pod's default route(s). */
  defaultGateways?: string[];
  policyRoutes?: { dst: string; gw?: string }[];
  claim?: string;
  cniArgs?: Record<string, unknown>;
  portMappings?: { hostPort: number; containerPort: number; protocol?: string; hostIP?: string }[];
  bandwidth?: Record<string, number>;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

const ifname = v.pipe(
  v.string(),
  v.regex(IFNAME, 'must be 1-15 letters, digits, "_", "." or "-"'),
  v.check((n) => !isReservedIfname(n), RESERVED_IFNAME_MESSAGE),
);
const rate = v.optional(v.pipe(v.number(), v.safeInteger(), v.minValue(0)));
const route = v.strictObject({ dst: v.string(), gw: v.optional(v.string()) });
const pattern = (re: RegExp, message?: string) => v.pipe(v.string(), v.regex(re, message));
const port = v.pipe(v.number(), v.safeInteger(), v.minValue(1), v.maxValue(65535));

const TartanEntry = v.strictObject({
  network: pattern(DNS_SUBDOMAIN, 'must be a network name (lower-case DNS name)'),
  kind: v.optional(v.picklist(['TenantNetwork', 'ClusterNetwork']), 'TenantNetwork'),
  ifname: v.optional(ifname),
  ip: v.optional(v.string()),
  ip6: v.optional(v.string()),
  mac: v.optional(v.pipe(v.string(), v.check(isUnicastMac, MAC_MESSAGE))),
  defaultRoute: v.optional(v.boolean()),
  policyRoutes: v.optional(v.pipe(v.array(route), v.maxLength(64))),
  claim: v.optional(pattern(DNS_SUBDOMAIN, 'must be a lower-case DNS name')),
});

const NpwgEntry = v.strictObject({
  name: pattern(DNS_SUBDOMAIN, 'must be a lower-case DNS name'),
  namespace: v.optional(pattern(DNS_LABEL, 'must be a namespace name')),
  interface: v.optional(ifname),
  ips: v.optional(v.pipe(v.array(v.string()), v.maxLength(2))),
  mac: v.optional(v.pipe(v.string(), v.check(isUnicastMac, MAC_MESSAGE))),
  'default-route': v.optional(v.pipe(v.array(v.string()), v.maxLength(2))),
  'cni-args': v.optional(dict(v.string(), v.unknown())),
  portMappings: v.optional(
    v.array(
      v.strictObject({
        hostPort: port,
        containerPort: port,
        protocol: v.optional(v.picklist(['tcp', 'udp', 'sctp', 'TCP', 'UDP', 'SCTP'])),
        hostIP: v.optional(v.string()),
      }),
    ),
  ),
  // The bandwidth plugin's keys: a misspelt one would be passed on and ignored there.
  bandwidth: v.optional(
    v.strictObject({ ingressRate: rate, ingressBurst: rate, egressRate: rate, egressBurst: rate }),
  ),
  'ipam-claim-reference': v.optional(pattern(DNS_SUBDOMAIN)),
});

function bad(annotation: string, message: string): TartanError {
  return new TartanError('ERR_IFACE_REQUEST', `pod annotation ${annotation}: ${message}`);
}

/** The first problem only: the person fixing the pod spec goes one field at a time. */
function schemaProblem(annotation: string, where: string, issues: v.BaseIssue<unknown>[]) {
  return bad(annotation, issuesText(issues.slice(0, 1), where));
}

function parseJsonList(annotation: string, text: string): unknown[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw bad(annotation, `not valid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(raw)) throw bad(annotation, 'must be a JSON list of interface requests');
  if (deeperThan(raw, MAX_DEPTH))
    throw bad(annotation, `nested deeper than ${MAX_DEPTH} levels (cni-args included)`);
  return raw;
}

/** "dynamic" | "none" | an address of the family, with or without its prefix length. */
function checkAddress(annotation: string, where: string, family: 4 | 6, v: string): string {
  if (v === 'dynamic' || v === 'none') return v;
  const addr = v.includes('/') ? v.slice(0, v.indexOf('/')) : v;
  const len = v.includes('/') ? v.slice(v.indexOf('/') + 1) : undefined;
  if (familyOf(addr) !== family || (len !== undefined && !/^\d{1,3}$/.test(len)))
    throw bad(annotation, `${where}: "${v}" is not "dynamic", "none" or an IPv${family} address`);
  return v;
}

function fromTartan(text: string, podNamespace: string): PodInterfaceRequest[] {
  const A = TARTAN_ANNOTATION;
  return parseJsonList(A, text).map((item, i) => {
    const r = v.safeParse(TartanEntry, item);
    if (!r.success) throw schemaProblem(A, `entry ${i}`, r.issues);
    const e = r.output;
    const where = `entry ${i} (${e.network})`;
    return {
      ref:
        e.kind === 'ClusterNetwork'
          ? { kind: e.kind, name: e.network }
          : { kind: e.kind, name: e.network, namespace: podNamespace },
      ifname: e.ifname ?? '',
      ip: checkAddress(A, `${where} ip`, 4, e.ip ?? 'dynamic'),
      ip6: checkAddress(A, `${where} ip6`, 6, e.ip6 ?? 'dynamic'),
      ...(e.mac ? { mac: e.mac } : {}),
      ...(e.defaultRoute !== undefined ? { defaultRoute: e.defaultRoute } : {}),
      ...(e.policyRoutes ? { policyRoutes: e.policyRoutes } : {}),
      ...(e.claim ? { claim: e.claim } : {}),
    };
  });
}

function fromNpwgShort(text: string, podNamespace: string): PodInterfaceRequest[] {
  const A = NPWG_ANNOTATION;
  return text.split(',').map((part, i) => {
    const s = part.trim();
    const m = /^(?:([^/@]+)\/)?([^/@]+)(?:@(.+))?$/.exec(s);
    if (!m) throw bad(A, `entry ${i} "${s}" must be [namespace/]name[@interface]`);
    const [, ns, name, ifn] = m;
    if (ns !== undefined && !DNS_LABEL.test(ns))
      throw bad(A, `entry ${i} "${s}": "${ns}" is not a namespace name`);
    if (!DNS_SUBDOMAIN.test(name!))
      throw bad(A, `entry ${i} "${s}": "${name}" is not a network name`);
    if (ifn !== undefined && !v.is(ifname, ifn))
      throw bad(
        A,
        `entry ${i} "${s}": interface "${ifn}" ${isReservedIfname(ifn) ? RESERVED_IFNAME_MESSAGE : 'must be 1-15 letters, digits, "_", "." or "-"'}`,
      );
    return npwgRequest(name!, ns, podNamespace, { ifname: ifn ?? '' });
  });
}

function npwgRequest(
  name: string,
  ns: string | undefined,
  podNamespace: string,
  rest: Partial<PodInterfaceRequest>,
): PodInterfaceRequest {
  const ref: NetworkRef = {
    kind: 'NetworkAttachmentDefinition',
    name,
    namespace: ns ?? podNamespace,
    npwg: true,
    ...(ns === undefined ? {} : { explicitNamespace: true }),
  };
  return { ref, ifname: '', ip: 'dynamic', ip6: 'dynamic', ...rest };
}

function fromNpwgJson(text: string, podNamespace: string): PodInterfaceRequest[] {
  const A = NPWG_ANNOTATION;
  return parseJsonList(A, text).map((item, i) => {
    const r = v.safeParse(NpwgEntry, item);
    if (!r.success) throw schemaProblem(A, `entry ${i}`, r.issues);
    const e = r.output;
    const where = `entry ${i} (${e.name})`;
    // NPWG "ips" are static addresses in CIDR form, at most one per family here.
    let ip = 'dynamic';
    let ip6 = 'dynamic';
    for (const a of e.ips ?? []) {
      const fam = familyOf(a.includes('/') ? a.slice(0, a.indexOf('/')) : a);
      if (fam === undefined) throw bad(A, `${where}: ips: "${a}" is not an IP address`);
      if ((fam === 4 ? ip : ip6) !== 'dynamic')
        throw bad(A, `${where}: ips: more than one IPv${fam} address; one per family is supported`);
      if (fam === 4) ip = a;
      else ip6 = a;
    }
    for (const gw of e['default-route'] ?? [])
      if (familyOf(gw) === undefined)
        throw bad(A, `${where}: default-route: "${gw}" is not a gateway IP address`);
    return npwgRequest(e.name, e.namespace, podNamespace, {
      ifname: e.interface ?? '',
      ip,
      ip6,
      ...(e.mac ? { mac: e.mac } : {}),
      ...(e['default-route']?.length
        ? { defaultRoute: true, defaultGateways: e['default-route'] }
        : {}),
      ...(e['cni-args'] ? { cniArgs: e['cni-args'] } : {}),
      ...(e.portMappings ? { portMappings: e.portMappings } : {}),
      ...(e.bandwidth ? { bandwidth: e.bandwidth } : {}),
      ...(e['ipam-claim-reference'] ? { claim: e['ipam-claim-reference'] } : {}),
    });
  });
}

/**
 * The pod's secondary interface requests, in annotation order, with interface names given
 * (net1, net2, ... for unnamed ones, skipping names taken). eth0 is the cluster default
 * network's and cannot be requested.
 */
export function parsePodInterfaces(
  podNamespace: string,
  annotations: Record<string, string> | undefined,
): PodInterfaceRequest[] {
  const tartan = annotations?.[TARTAN_ANNOTATION];
  const npwg = annotations?.[NPWG_ANNOTATION];
  // Annotations are strings in the API; a runtime's pod-annotations capability is JSON of
  // any shape.
  for (const [name, value] of [
    [TARTAN_ANNOTATION, tartan],
    [NPWG_ANNOTATION, npwg],
  ] as const)
    if (value !== undefined && typeof value !== 'string')
      throw bad(name, `must be a string, not ${Array.isArray(value) ? 'a list' : typeof value}`);
  if (tartan !== undefined && npwg !== undefined)
    throw bad(
      `${TARTAN_ANNOTATION} and ${NPWG_ANNOTATION}`,
      'use one of the two annotations, not both: the order of the interfaces would be ambiguous',
    );
  let reqs: PodInterfaceRequest[] = [];
  let annotation = TARTAN_ANNOTATION;
  if (tartan !== undefined) reqs = fromTartan(tartan, podNamespace);
  else if (npwg !== undefined) {
    annotation = NPWG_ANNOTATION;
    const t = npwg.trim();
    if (t === '') return [];
    reqs =
      t.startsWith('[') || t.startsWith('{')
        ? fromNpwgJson(t, podNamespace)
        : fromNpwgShort(t, podNamespace);
  }
  if (reqs.length > MAX_INTERFACES)
    throw bad(
      annotation,
      `asks for ${reqs.length} interfaces; a pod has at most ${MAX_INTERFACES}`,
    );
  const taken = new Set<string>();
  for (const [i, r] of reqs.entries()) {
    if (r.ifname === '') continue;
    if (r.ifname === 'eth0' || r.ifname === 'lo')
      throw bad(
        annotation,
        `entry ${i}: interface "${r.ifname}" is reserved for the pod's ${r.ifname === 'lo' ? 'loopback' : 'cluster default network'}`,
      );
    if (taken.has(r.ifname))
      throw bad(annotation, `entry ${i}: interface "${r.ifname}" is requested twice`);
    taken.add(r.ifname);
  }
  let n = 1;
  for (const r of reqs) {
    if (r.ifname !== '') continue;
    while (taken.has(`net${n}`)) n++;
    r.ifname = `net${n}`;
    taken.add(r.ifname);
  }
  const defaults = reqs.filter((r) => r.defaultRoute);
  if (defaults.length > 1)
    throw bad(
      annotation,
      `default route requested on ${defaults.map((r) => r.ifname).join(' and ')}; at most one interface can hold it`,
    );
  return reqs;
}
