// The `tartan` plugin's network configuration (one entry of a conflist, as the runtime
// passes it on stdin) and the pod's interface requests.
import * as v from 'valibot';
import { TartanError } from './errors.js';
import { isSupportedVersion } from './spec.js';
import { dict, issuesText, problems } from './validation.js';

const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const MAC_RE = /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/;

/**
 * A MAC a pod interface can have: six octets, unicast (the group bit of the first octet
 * clear) and not all zero. The kernel refuses the others, but only once links are being
 * made; asked for up front, the error names the request.
 */
export const isUnicastMac = (s: string): boolean =>
  MAC_RE.test(s) && (parseInt(s.slice(0, 2), 16) & 1) === 0 && !/^(00:){5}00$/.test(s);
export const MAC_MESSAGE = 'must be a unicast MAC address like 02:00:00:00:00:01';

/**
 * Names no link can have: the kernel refuses "." and "..", and a link named "all" or
 * "default" would clash with /proc/sys/net/{ipv4,ipv6}/conf/{all,default}, so it refuses
 * those too, but only once the link is being made (and with nothing but an errno).
 */
export const isReservedIfname = (n: string): boolean =>
  n === '.' || n === '..' || n === 'all' || n === 'default';
export const RESERVED_IFNAME_MESSAGE =
  'must not be ".", "..", "all" or "default" (names the kernel keeps for itself)';

/**
 * Interfaces one pod may ask for. Telco pods have a handful; thousands (an annotation of a
 * few hundred KB) would hold the node's agent for minutes.
 */
export const MAX_INTERFACES = 64;

/**
 * Kubernetes' rule for node names (a DNS subdomain: dot-separated DNS labels, 253
 * characters at most). The IPAM keys a node's blocks by the name, and a cluster has no
 * node of any other.
 */
const NODE_NAME_RE =
  /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * Paths in the configuration: the runtime starts the plugin in a working directory of its
 * own (containerd: "/", podman: the user's), so a relative path would mean a different
 * file from one runtime, or one call, to the next.
 */
const absPath = v.pipe(v.string(), v.startsWith('/', 'must be an absolute path'));

export const InterfaceRequestSchema = v.strictObject({
  /** Network name (a ClusterNetwork or TenantNetwork in the networks directory or cluster). */
  network: v.pipe(
    v.string(),
    v.regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a DNS label'),
  ),
  ifname: v.optional(
    v.pipe(
      v.string(),
      v.regex(IFNAME_RE, 'must be 1-15 characters of letters, digits, "_", "." or "-"'),
      v.check((n) => !isReservedIfname(n), RESERVED_IFNAME_MESSAGE),
    ),
  ),
  /** "dynamic" (default), "none", or a fixed address. */
  ip: v.optional(v.string()),
  ip6: v.optional(v.string()),
  /** Persistent claim name: the address survives pod deletion until the claim is released. */
  claim: v.optional(v.pipe(v.string(), v.regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/))),
  /** Extra policy routes for this attachment, installed in the network's routing table. */
  policyRoutes: v.optional(v.array(v.object({ dst: v.string(), gw: v.optional(v.string()) }))),
  /** This interface holds the pod's default route (overrides the default network's). */
  defaultRoute: v.optional(v.boolean()),
  /** With defaultRoute: the gateways to use (one per family) instead of the network's. */
  defaultGateways: v.optional(v.array(v.string())),
  mac: v.optional(v.pipe(v.string(), v.check(isUnicastMac, MAC_MESSAGE))),
  // For a delegated network (NPWG 4.1.2.1): handed to its plugins as runtimeConfig
  // (portMappings, bandwidth capabilities) and as the configuration's args.cni.
  portMappings: v.optional(
    v.array(
      v.looseObject({
        hostPort: v.number(),
        containerPort: v.number(),
        protocol: v.optional(v.string()),
        hostIP: v.optional(v.string()),
      }),
    ),
  ),
  bandwidth: v.optional(v.record(v.string(), v.number())),
  cniArgs: v.optional(v.record(v.string(), v.unknown())),
});
export type InterfaceRequest = v.InferOutput<typeof InterfaceRequestSchema>;
const InterfaceRequestsSchema = v.array(InterfaceRequestSchema);

const AttachmentsSchema = v.array(v.looseObject({ containerID: v.string(), ifname: v.string() }));

export const PluginConfigSchema = v.looseObject({
  cniVersion: v.string(),
  // Checked against libcni's rule by checkNetworkName, for ADD and CHECK only.
  name: v.pipe(v.string(), v.minLength(1)),

  type: v.string(),
  /** Directory of network definition files (YAML or JSON). */
  networksDir: v.optional(absPath, '/etc/tartan/networks'),
  /** IPAM datastore. */
  store: v.optional(
    v.object({
      type: v.picklist(['file', 'etcd', 'kubernetes']),
      path: v.optional(absPath),
      endpoints: v.optional(v.array(v.string())),
      prefix: v.optional(v.string()),
      namespace: v.optional(v.string()),
    }),
    { type: 'file', path: '/var/lib/tartan/ipam.db' },
  ),
  /** Node-local state: attachment records and host parent reference counts. */
  stateDir: v.optional(absPath, '/var/lib/tartan'),
  // Checked by checkNetworkName, for ADD and CHECK only.
  nodeName: v.optional(v.string()),
  /** Network that becomes eth0; absent when a previous plugin in the chain made eth0. */
  defaultNetwork: v.optional(v.string()),
  /** Static interface requests (used when the runtime passes none). */
  // Validated by interfaceRequests, so a bad request gets its own error code.
  interfaces: v.optional(v.array(v.unknown())),
  logFile: v.optional(absPath),
  logLevel: v.optional(v.picklist(['debug', 'info', 'warn', 'error']), 'info'),
  // Standard fields the runtime may add.
  args: v.optional(dict(v.string(), v.unknown())),
  runtimeConfig: v.optional(dict(v.string(), v.unknown())),
  capabilities: v.optional(dict(v.string(), v.boolean())),
  prevResult: v.optional(v.unknown()),
  'cni.dev/valid-attachments': v.optional(AttachmentsSchema),
  // The same list under its name in the CNI 1.1.0 spec text (libcni sends both since v1.2.3).
  'cni.dev/attachments': v.optional(AttachmentsSchema),
});
export type PluginConfig = v.InferOutput<typeof PluginConfigSchema>;

export function parsePluginConfig(raw: unknown): PluginConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new TartanError('ERR_DECODE', 'network configuration must be a JSON object');
  const version = (raw as { cniVersion?: unknown }).cniVersion;
  // Present but not text is a decoding error (libcni fails to decode it), absent or
  // unknown a version one.
  if (version !== undefined && typeof version !== 'string')
    throw new TartanError(
      'ERR_DECODE',
      `cniVersion must be a string, got ${JSON.stringify(version)}`,
    );
  if (typeof version !== 'string' || !isSupportedVersion(version))
    throw new TartanError('ERR_VERSION', `unsupported CNI version ${JSON.stringify(version)}`);
  const r = v.safeParse(PluginConfigSchema, raw);
  if (!r.success)
    throw new TartanError('ERR_CONFIG', `invalid network configuration: ${issuesText(r.issues)}`);
  return r.output;
}

/**
 * libcni's rule for network names (its skel refuses others with code 7), and Kubernetes'
 * for the node name (the IPAM refused "", "-" or one with a "/" only after the fact, and
 * took the others). Held to ADD and CHECK: a DEL, GC or STATUS of a configuration that
 * older versions took must still work, or the runtime retries the DEL for ever and STATUS
 * reports the node not ready.
 */
export function checkNetworkName(conf: PluginConfig): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(conf.name))
    throw new TartanError(
      'ERR_CONFIG',
      `invalid network configuration: name ${JSON.stringify(conf.name.slice(0, 64))} must start with a letter or digit and hold only letters, digits, "_", "." and "-"`,
    );
  if (conf.nodeName !== undefined && !NODE_NAME_RE.test(conf.nodeName))
    throw new TartanError(
      'ERR_CONFIG',
      `invalid network configuration: nodeName ${JSON.stringify(conf.nodeName.slice(0, 64))} must be a node name: at most 253 characters of lower-case letters, digits, "-" and ".", each part between dots starting and ending with a letter or digit`,
    );
}

export function parseInterfaceRequests(raw: unknown, source: string): InterfaceRequest[] {
  const r = v.safeParse(InterfaceRequestsSchema, raw);
  if (!r.success) {
    const issues = problems(r.issues).map((p) => `[${p.path}] ${p.message}`);
    throw new TartanError(
      'ERR_IFACE_REQUEST',
      `invalid interface request in ${source}: ${issues.join('; ')}`,
    );
  }
  return r.output;
}

/** Parses CNI_ARGS ("K=V;K2=V2"). Values cannot contain "=" or ";" (libcni rejects them). */
export function parseCniArgs(s: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!s) return out;
  for (const pair of s.split(';')) {
    if (pair === '') continue;
    const i = pair.indexOf('=');
    if (i <= 0) throw new TartanError('ERR_ENV', `CNI_ARGS: invalid pair ${JSON.stringify(pair)}`);
    out.set(pair.slice(0, i), pair.slice(i + 1));
  }
  return out;
}

/**
 * The pod's interface requests, from (first match wins): runtimeConfig.tartan.interfaces,
 * args.tartan.interfaces (conventions doc), CNI_ARGS TARTAN_INTERFACES (base64url JSON) or
 * TARTAN_NETWORKS (comma-separated names, dynamic addresses), the config's static list.
 */
export function interfaceRequests(
  conf: PluginConfig,
  cniArgs: Map<string, string>,
): InterfaceRequest[] {
  return explicitRequests(conf, cniArgs) ?? staticRequests(conf);
}

/** containerd passes the pod's annotations to a plugin that declares this capability. */
export const POD_ANNOTATIONS_CAPABILITY = 'io.kubernetes.cri.pod-annotations';

/** The requests the runtime passed for this call, or undefined when it passed none. */
export function explicitRequests(
  conf: PluginConfig,
  cniArgs: Map<string, string>,
): InterfaceRequest[] | undefined {
  const rc = conf.runtimeConfig?.tartan as { interfaces?: unknown } | undefined;
  if (rc?.interfaces !== undefined)
    return parseInterfaceRequests(rc.interfaces, 'runtimeConfig.tartan');
  const args = (conf.args?.tartan ?? conf.args?.cni) as { interfaces?: unknown } | undefined;
  if (args?.interfaces !== undefined) return parseInterfaceRequests(args.interfaces, 'args.tartan');
  const b64 = cniArgs.get('TARTAN_INTERFACES');
  if (b64 !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(b64, 'base64url').toString('utf8'));
    } catch (e) {
      throw new TartanError(
        'ERR_IFACE_REQUEST',
        'CNI_ARGS TARTAN_INTERFACES is not base64url JSON',
        { cause: e },
      );
    }
    return parseInterfaceRequests(parsed, 'CNI_ARGS TARTAN_INTERFACES');
  }
  const names = cniArgs.get('TARTAN_NETWORKS');
  if (names !== undefined)
    return parseInterfaceRequests(
      names
        .split(',')
        .filter((n) => n !== '')
        .map((network) => ({ network })),
      'CNI_ARGS TARTAN_NETWORKS',
    );
  return undefined;
}

/** The configuration's own list (the same for every pod). */
export function staticRequests(conf: PluginConfig): InterfaceRequest[] {
  return conf.interfaces === undefined
    ? []
    : parseInterfaceRequests(conf.interfaces, 'the configuration');
}
