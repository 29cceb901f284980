// The `tartan` plugin's network configuration (one entry of a conflist, as the runtime
// passes it on stdin) and the pod's interface requests.
import { z } from 'zod';
import { TartanError } from './errors.js';
import { isSupportedVersion } from './spec.js';

const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

export const InterfaceRequestSchema = z
  .object({
    /** Network name (a ClusterNetwork or TenantNetwork in the networks directory or cluster). */
    network: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a DNS label'),
    ifname: z
      .string()
      .regex(IFNAME_RE, 'must be 1-15 characters of letters, digits, "_", "." or "-"')
      .refine((n) => n !== '.' && n !== '..', 'must not be "." or ".."')
      .optional(),
    /** "dynamic" (default), "none", or a fixed address. */
    ip: z.string().optional(),
    ip6: z.string().optional(),
    /** Persistent claim name: the address survives pod deletion until the claim is released. */
    claim: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/)
      .optional(),
    /** Extra policy routes for this attachment, installed in the network's routing table. */
    policyRoutes: z.array(z.object({ dst: z.string(), gw: z.string().optional() })).optional(),
    /** This interface holds the pod's default route (overrides the default network's). */
    defaultRoute: z.boolean().optional(),
    mac: z
      .string()
      .regex(/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/)
      .optional(),
  })
  .strict();
export type InterfaceRequest = z.infer<typeof InterfaceRequestSchema>;

export const PluginConfigSchema = z
  .object({
    cniVersion: z.string(),
    name: z.string().min(1),
    type: z.string(),
    /** Directory of network definition files (YAML or JSON). */
    networksDir: z.string().default('/etc/tartan/networks'),
    /** IPAM datastore. */
    store: z
      .object({
        type: z.enum(['file', 'etcd', 'kubernetes']),
        path: z.string().optional(),
        endpoints: z.array(z.string()).optional(),
        prefix: z.string().optional(),
        namespace: z.string().optional(),
      })
      .default({ type: 'file', path: '/var/lib/tartan/ipam.db' }),
    /** Node-local state: attachment records and host parent reference counts. */
    stateDir: z.string().default('/var/lib/tartan'),
    nodeName: z.string().optional(),
    /** Network that becomes eth0; absent when a previous plugin in the chain made eth0. */
    defaultNetwork: z.string().optional(),
    /** Static interface requests (used when the runtime passes none). */
    // Validated by interfaceRequests, so a bad request gets its own error code.
    interfaces: z.array(z.unknown()).optional(),
    logFile: z.string().optional(),
    logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
    // Standard fields the runtime may add.
    args: z.record(z.string(), z.unknown()).optional(),
    runtimeConfig: z.record(z.string(), z.unknown()).optional(),
    capabilities: z.record(z.string(), z.boolean()).optional(),
    prevResult: z.unknown().optional(),
    'cni.dev/valid-attachments': z
      .array(z.object({ containerID: z.string(), ifname: z.string() }).passthrough())
      .optional(),
    'cni.dev/attachments': z.unknown().optional(),
  })
  .passthrough();
export type PluginConfig = z.infer<typeof PluginConfigSchema>;

export function parsePluginConfig(raw: unknown): PluginConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new TartanError('ERR_DECODE', 'network configuration must be a JSON object');
  const version = (raw as { cniVersion?: unknown }).cniVersion;
  if (typeof version !== 'string' || !isSupportedVersion(version))
    throw new TartanError('ERR_VERSION', `unsupported CNI version ${JSON.stringify(version)}`);
  const r = PluginConfigSchema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new TartanError('ERR_CONFIG', `invalid network configuration: ${issues.join('; ')}`);
  }
  return r.data;
}

export function parseInterfaceRequests(raw: unknown, source: string): InterfaceRequest[] {
  const r = z.array(InterfaceRequestSchema).safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `[${i.path.join('.')}] ${i.message}`);
    throw new TartanError(
      'ERR_IFACE_REQUEST',
      `invalid interface request in ${source}: ${issues.join('; ')}`,
    );
  }
  return r.data;
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
