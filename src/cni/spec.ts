// CNI spec types (https://github.com/containernetworking/cni/blob/main/SPEC.md) and the
// conversion of Tartan's internal result (always the 1.1.0 shape) to older versions.
import { digits, parse4, parse6 } from './addr.js';
import { TartanError } from './errors.js';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const LATEST_VERSION = '1.1.0';

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface CniIp {
  address: string; // CIDR notation
  gateway?: string;
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIp[];
  routes?: CniRoute[];
  dns?: CniDns;
}

export function isSupportedVersion(v: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Numeric comparison of dotted versions. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Picks the highest version offered by a conflist's cniVersions that this plugin speaks. */
export function negotiateVersion(
  offered: string[],
  supported: readonly string[] = SUPPORTED_VERSIONS,
): string {
  const common = offered.filter((v) => supported.includes(v)).sort(compareVersions);
  const best = common.at(-1);
  if (!best)
    throw new TartanError(
      'ERR_VERSION',
      `none of the offered CNI versions [${offered.join(', ')}] is supported (supported: ${supported.join(', ')})`,
    );
  return best;
}

const ipVersion = (cidr: string) => (cidr.includes(':') ? '6' : '4');

/** Converts an internal result to the wire shape of the requested spec version. */
export function toVersion(r: CniResult, version: string): Record<string, unknown> {
  if (!isSupportedVersion(version))
    throw new TartanError('ERR_VERSION', `unsupported CNI version ${version}`);
  const v1 = compareVersions(version, '1.0.0') >= 0;
  const v11 = compareVersions(version, '1.1.0') >= 0;
  const interfaces = r.interfaces?.map((i) => {
    const o: Record<string, unknown> = { name: i.name };
    if (i.mac !== undefined) o.mac = i.mac;
    if (v11 && i.mtu !== undefined) o.mtu = i.mtu;
    if (i.sandbox !== undefined) o.sandbox = i.sandbox;
    if (v11 && i.socketPath !== undefined) o.socketPath = i.socketPath;
    if (v11 && i.pciID !== undefined) o.pciID = i.pciID;
    return o;
  });
  const ips = r.ips?.map((ip) => {
    const o: Record<string, unknown> = {};
    if (!v1) o.version = ipVersion(ip.address);
    o.address = ip.address;
    if (ip.gateway !== undefined) o.gateway = ip.gateway;
    if (ip.interface !== undefined) o.interface = ip.interface;
    return o;
  });
  // Before 1.1.0 a route has no table: a policy table's route, stripped of it, would read
  // as a route of the main table (a second default route, say). It is left out instead.
  const routes = r.routes
    ?.filter((rt) => v11 || rt.table === undefined)
    .map((rt) => {
      if (v11) return { ...rt };
      const o: Record<string, unknown> = { dst: rt.dst };
      if (rt.gw !== undefined) o.gw = rt.gw;
      return o;
    });
  const out: Record<string, unknown> = { cniVersion: version };
  if (interfaces && interfaces.length > 0) out.interfaces = interfaces;
  if (ips && ips.length > 0) out.ips = ips;
  if (routes && routes.length > 0) out.routes = routes;
  out.dns = r.dns ?? {};
  return out;
}

/** Reads a result of any supported version (from a delegate or prevResult) into the internal shape. */
/** An address with or without /prefix, of either family (what results carry). */
function isAddress(s: unknown, withPrefix: boolean): boolean {
  if (typeof s !== 'string') return false;
  const slash = s.indexOf('/');
  if (withPrefix !== slash >= 0) return false;
  const ip = withPrefix ? s.slice(0, slash) : s;
  const bytes = ip.includes(':') ? parse6(ip) : parse4(ip);
  if (!bytes) return false;
  if (!withPrefix) return true;
  const len = digits(s.slice(slash + 1), 10, 3);
  return len >= 0 && len <= bytes.length * 8;
}

/**
 * A result of any supported version (a prevResult, a delegate's output) in the internal
 * shape. Like the reference libraries, which decode it into typed structures, it refuses
 * a result whose lists are not lists of objects or whose addresses do not parse
 * (ERR_DECODE, naming `what` and the field): passed on, it would reach the runtime.
 */
export function fromAnyVersion(raw: unknown, what = 'result'): CniResult {
  const bad = (msg: string): never => {
    throw new TartanError('ERR_DECODE', `${what}: ${msg}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('not a JSON object');
  const o = raw as Record<string, unknown>;
  // A result of a version without ips/interfaces (0.1.0, 0.2.0: ip4/ip6) would read as
  // empty here, and the earlier plugin's addresses would vanish from the chain's result.
  if (typeof o.cniVersion === 'string' && !isSupportedVersion(o.cniVersion))
    throw new TartanError(
      'ERR_VERSION',
      `${what}: CNI version ${JSON.stringify(o.cniVersion)} is not supported`,
    );
  const list = (key: string): Record<string, unknown>[] => {
    const x = o[key];
    if (x === undefined || x === null) return [];
    if (!Array.isArray(x)) return bad(`${key} is not a list`);
    for (const [i, e] of x.entries())
      if (typeof e !== 'object' || e === null || Array.isArray(e))
        bad(`${key}[${i}] is not an object`);
    return x as Record<string, unknown>[];
  };
  const out: CniResult = { cniVersion: LATEST_VERSION };
  out.interfaces = list('interfaces').map((i, n) => {
    if (typeof i.name !== 'string' || i.name === '') bad(`interfaces[${n}].name is missing`);
    const iface: CniInterface = { name: i.name as string };
    if (typeof i.mac === 'string') iface.mac = i.mac;
    if (typeof i.mtu === 'number') iface.mtu = i.mtu;
    if (typeof i.sandbox === 'string') iface.sandbox = i.sandbox;
    if (typeof i.socketPath === 'string') iface.socketPath = i.socketPath;
    if (typeof i.pciID === 'string') iface.pciID = i.pciID;
    return iface;
  });
  out.ips = list('ips').map((ip, n) => {
    if (!isAddress(ip.address, true))
      bad(`ips[${n}].address ${JSON.stringify(ip.address)} is not an address/prefix`);
    const e: CniIp = { address: ip.address as string };
    // null is "absent", as Go's decoder (libcni) reads it.
    if (ip.gateway !== undefined && ip.gateway !== null) {
      if (!isAddress(ip.gateway, false))
        bad(`ips[${n}].gateway ${JSON.stringify(ip.gateway)} is not an address`);
      e.gateway = ip.gateway as string;
    }
    if (ip.interface !== undefined && ip.interface !== null) {
      const k = ip.interface;
      if (!Number.isInteger(k) || (k as number) < 0 || (k as number) >= out.interfaces!.length)
        bad(`ips[${n}].interface ${JSON.stringify(k)} names no interface of the result`);
      e.interface = k as number;
    }
    return e;
  });
  out.routes = list('routes').map((rt, n) => {
    if (!isAddress(rt.dst, true))
      bad(`routes[${n}].dst ${JSON.stringify(rt.dst)} is not an address/prefix`);
    const e: CniRoute = { dst: rt.dst as string };
    for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const)
      if (typeof rt[k] === 'number') e[k] = rt[k] as number;
    if (rt.gw !== undefined && rt.gw !== null) {
      if (!isAddress(rt.gw, false))
        bad(`routes[${n}].gw ${JSON.stringify(rt.gw)} is not an address`);
      e.gw = rt.gw as string;
    }
    return e;
  });
  if (o.dns !== undefined && o.dns !== null) out.dns = dnsOf(o.dns, bad);
  return out;
}

/** The spec's DNS object, checked field by field: a runtime decodes it into fixed types. */
function dnsOf(x: unknown, bad: (msg: string) => never): CniDns {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return bad('dns is not an object');
  const d = x as Record<string, unknown>;
  const out: CniDns = {};
  for (const k of ['nameservers', 'search', 'options'] as const) {
    const v = d[k];
    if (v === undefined || v === null) continue;
    if (!Array.isArray(v) || v.some((e) => typeof e !== 'string'))
      bad(`dns.${k} is not a list of strings`);
    out[k] = v as string[];
  }
  if (d.domain !== undefined && d.domain !== null) {
    if (typeof d.domain !== 'string') bad('dns.domain is not a string');
    out.domain = d.domain as string;
  }
  return out;
}

/** Appends the interfaces, IPs and routes of b to a, re-indexing b's IP interface references. */
export function mergeResults(a: CniResult, b: CniResult): CniResult {
  const base = a.interfaces?.length ?? 0;
  return {
    cniVersion: LATEST_VERSION,
    interfaces: [...(a.interfaces ?? []), ...(b.interfaces ?? [])],
    ips: [
      ...(a.ips ?? []),
      ...(b.ips ?? []).map((ip) =>
        ip.interface === undefined ? ip : { ...ip, interface: ip.interface + base },
      ),
    ],
    routes: [...(a.routes ?? []), ...(b.routes ?? [])],
    dns: mergeDns(a.dns, b.dns),
  };
}

function mergeDns(a: CniDns | undefined, b: CniDns | undefined): CniDns {
  if (!a) return b ?? {};
  if (!b) return a;
  const u = (x?: string[], y?: string[]) =>
    x || y ? [...new Set([...(x ?? []), ...(y ?? [])])] : undefined;
  const out: CniDns = {};
  const ns = u(a.nameservers, b.nameservers);
  if (ns) out.nameservers = ns;
  const s = u(a.search, b.search);
  if (s) out.search = s;
  const o = u(a.options, b.options);
  if (o) out.options = o;
  const d = a.domain ?? b.domain;
  if (d) out.domain = d;
  return out;
}
