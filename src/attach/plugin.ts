// One CNI command, end to end: configuration -> dependencies -> pipeline -> wire result.
// The `tartan` executable calls this in-process; the node agent calls the same function.
import { join } from 'node:path';
import {
  checkNetworkName,
  explicitRequests,
  parseCniArgs,
  parsePluginConfig,
  POD_ANNOTATIONS_CAPABILITY,
  staticRequests,
  type InterfaceRequest,
  type PluginConfig,
} from '../cni/config.js';
import { CniCode, TartanError } from '../cni/errors.js';
import { mark } from '../cni/trace.js';
import type { CniEnv } from '../cni/protocol.js';
import { versionResponse } from '../cni/protocol.js';
import { compareVersions, fromAnyVersion, SUPPORTED_VERSIONS, toVersion } from '../cni/spec.js';
import { createIpam, type Ipam } from '../ipam/index.js';
import { createProcessKernel } from '../kernel/index.js';
import type { Kernel } from '../kernel/types.js';
import { loadNetworks } from '../network/load.js';
import type { Network } from '../network/schema.js';
import { openStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import { delegateGc, delegateStatus, type DelegateEnv } from './delegate.js';
import { ensureStateDir, openHostState, type HostState } from './host-state.js';
import { add, check, del, gc, type Deps } from './pipeline.js';

export interface Overrides {
  kernel?: Kernel;
  store?: Store;
  /**
   * The IPAM over `store`, kept by the agent across calls so that its node cache (the
   * node's blocks, ipam/cache.ts) and its checked network metadata stay warm; default: a
   * fresh one for this call.
   */
  ipam?: Ipam;
  /**
   * The process exits right after this call (the CNI executable): leave the databases
   * open. Closing the last connection of a WAL database checkpoints it with fsyncs, on
   * every pod; the WAL is checkpointed and truncated instead once it is large (trimWal).
   */
  oneShot?: boolean;
  /** The plugin configuration as the agent already parsed it from this call's stdin. */
  conf?: PluginConfig;
  /** The node's attachment records, kept open by the agent; default: opened for this call. */
  state?: HostState;
  /** The networks, by core name (the agent's cache or informers); default: the networks directory. */
  networks?: Map<string, Network>;
  /** ADD: the pod's requests (from its annotations); default: CNI args, then the conflist. */
  requests?: InterfaceRequest[];
}

/** The commands that look networks up (DEL and CHECK work from the attachment records). */
export const needsNetworks = (command: string): boolean =>
  command === 'ADD' || command === 'GC' || command === 'STATUS';

export async function runCni(
  env: CniEnv,
  raw: Record<string, unknown>,
  o: Overrides = {},
): Promise<Record<string, unknown> | undefined> {
  if (env.command === 'VERSION') return versionResponse(raw.cniVersion);
  mark('start');
  const conf = o.conf ?? parsePluginConfig(raw);
  // New in CNI 1.1.0: a configuration of an older version cannot ask for them (libcni's
  // skel answers the same).
  if (
    (env.command === 'GC' || env.command === 'STATUS') &&
    compareVersions(conf.cniVersion, '1.1.0') < 0
  )
    throw new TartanError(
      'ERR_VERSION',
      `${env.command} is not defined for CNI version ${conf.cniVersion}`,
    );
  if (env.command === 'ADD' || env.command === 'CHECK') checkNetworkName(conf);
  // Before anything is opened: a refusal must not depend on the datastore being there.
  if (env.command === 'CHECK' && compareVersions(conf.cniVersion, '0.4.0') < 0)
    throw new TartanError('ERR_VERSION', `CHECK is not defined for CNI version ${conf.cniVersion}`);
  if (env.command !== 'STATUS') return run(env, conf, o);
  // CNI 1.1: a plugin that cannot serve ADD answers STATUS with code 50, whatever the
  // reason (networks directory, datastore, node state), not with that reason's own code.
  try {
    return await run(env, conf, o);
  } catch (e) {
    // 50 (not available) and 51 (limited connectivity, from a delegate) are STATUS answers.
    if (e instanceof TartanError && (e.cniCode === CniCode.PluginNotReady || e.cniCode === 51))
      throw e;
    throw new TartanError('ERR_INTERNAL', `not ready: ${(e as Error).message}`, {
      cause: e,
      cniCode: CniCode.PluginNotReady,
      ...(e instanceof TartanError ? { details: e.code } : {}),
    });
  }
}

async function run(
  env: CniEnv,
  conf: PluginConfig,
  o: Overrides,
): Promise<Record<string, unknown> | undefined> {
  const needNetworks = needsNetworks(env.command);
  // The node state directory first, for every command (the networks cache and the IPAM
  // file store may live in it), so that one that cannot be made fails ADD, DEL, CHECK and
  // GC alike: not a directory is code 7, anything else 105.
  ensureStateDir(conf.stateDir);
  const networks =
    o.networks ??
    (needNetworks
      ? await loadNetworks(conf.networksDir, join(conf.stateDir, 'networks.cache.json'))
      : new Map<string, Network>());
  mark('config and networks');
  let store: Store | undefined;
  let state: HostState | undefined;
  try {
    store = o.store ?? (await openStore(conf.store));
    state = o.state ?? (await openHostState(conf.stateDir));
    mark('stores open');
    const deps: Deps = {
      kernel: o.kernel ?? (await createProcessKernel()),
      ipam: o.ipam ?? createIpam(store),
      state,
      // node:os only when needed: evaluating it costs the CNI binary ~0.2 ms.
      node: conf.nodeName ?? process.getBuiltinModule('node:os').hostname(),
      network: (n) => networks.get(n),
    };
    return await dispatch(env, conf, deps, networks, o.requests);
  } finally {
    if (!o.oneShot) {
      if (!o.state) state?.close();
      if (!o.store) await store?.close();
    } else {
      if (!o.state) state?.trimWal();
      store?.trimWal?.();
    }
  }
}

/**
 * The pod's requests without an agent: what the runtime passed for this call, else the
 * pod's own annotation (tartan.io/interfaces or NPWG, through the runtime's pod-annotations
 * capability) resolved against the network files with the cluster's tenancy rules, else
 * the configuration's list.
 */
async function requestsFor(
  conf: PluginConfig,
  cniArgs: Map<string, string>,
  networks: Map<string, Network>,
): Promise<InterfaceRequest[]> {
  const explicit = explicitRequests(conf, cniArgs);
  if (explicit) return explicit;
  const ann = conf.runtimeConfig?.[POD_ANNOTATIONS_CAPABILITY] as
    Record<string, string> | undefined;
  if (
    typeof ann !== 'object' ||
    ann === null ||
    (!ann['tartan.io/interfaces'] && !ann['k8s.v1.cni.cncf.io/networks'])
  )
    return staticRequests(conf);
  // Loaded only here: most calls never pay for the annotation parser.
  const { resolvePodAttachments } = await import('../k8s/resolve.js');
  const of = (kind: Network['kind'], name: string, ns?: string) => {
    const n = networks.get(name);
    if (!n || n.kind !== kind || (ns !== undefined && n.metadata.namespace !== ns))
      return undefined;
    return { spec: n.spec };
  };
  const pod = {
    metadata: {
      name: cniArgs.get('K8S_POD_NAME') ?? '(unnamed)',
      namespace: cniArgs.get('K8S_POD_NAMESPACE') ?? 'default',
      annotations: ann,
    },
  };
  const atts = await resolvePodAttachments(pod, {
    tenantNetwork: async (ns, name) => of('TenantNetwork', name, ns),
    clusterNetwork: async (name) => of('ClusterNetwork', name),
    nad: async () => undefined, // NetworkAttachmentDefinitions live in the API: the agent's
  });
  return atts.map((t) => t.request);
}

/** GC and STATUS concern no attachment. */
const bareEnv = (cniPath: string[]): DelegateEnv => ({
  containerId: '',
  netns: '',
  ifname: '',
  cniArgs: undefined,
  cniPath,
  runtimeConfig: undefined,
});

async function dispatch(
  env: CniEnv,
  conf: PluginConfig,
  deps: Deps,
  networks: Map<string, Network>,
  requests: InterfaceRequest[] | undefined,
): Promise<Record<string, unknown> | undefined> {
  switch (env.command) {
    case 'ADD': {
      const result = await add(deps, {
        cniNetwork: conf.name,
        containerId: env.containerId,
        ifname: env.ifname,
        netns: env.netns,
        cniVersion: conf.cniVersion,
        cniArgs: env.args,
        cniPath: env.path,
        runtimeConfig: conf.runtimeConfig,
        defaultNetwork: conf.defaultNetwork,
        requests: requests ?? (await requestsFor(conf, parseCniArgs(env.args), networks)),
        prevResult:
          conf.prevResult === undefined ? undefined : fromAnyVersion(conf.prevResult, 'prevResult'),
      });
      return toVersion(result, conf.cniVersion);
    }
    case 'DEL':
      await del(deps, {
        containerId: env.containerId,
        ifname: env.ifname,
        netns: env.netns || undefined,
        cniPath: env.path,
        cniArgs: env.args,
      });
      return undefined;
    case 'CHECK':
      await check(deps, {
        prevResult:
          conf.prevResult === undefined ? undefined : fromAnyVersion(conf.prevResult, 'prevResult'),
        containerId: env.containerId,
        ifname: env.ifname,
        netns: env.netns,
        cniPath: env.path,
        cniArgs: env.args,
      });
      return undefined;
    case 'STATUS':
      try {
        await deps.ipam.usage('tartan-status-probe', {
          type: 'bridge',
          ipv4: { cidr: '192.0.2.0/30' },
        });
      } catch (e) {
        throw new TartanError('ERR_STORE', `IPAM datastore unavailable: ${(e as Error).message}`, {
          cniCode: CniCode.PluginNotReady,
        });
      }
      {
        // A delegated default network is what every ADD needs: its plugins' STATUS is ours
        // (the spec). Secondary networks are not asked: one of them must not stop every pod.
        // A default network not defined (yet) fails every ADD just the same.
        const d = conf.defaultNetwork ? networks.get(conf.defaultNetwork) : undefined;
        if (conf.defaultNetwork && !d)
          throw new TartanError(
            'ERR_UNKNOWN_NETWORK',
            `defaultNetwork ${conf.defaultNetwork} is not defined`,
          );
        if (d?.spec.type === 'delegate')
          await delegateStatus(d.spec.delegate!, bareEnv(env.path), SUPPORTED_VERSIONS);
      }
      return undefined;
    case 'GC': {
      // No list is not an empty list: without one nothing is known to be stale (libcni
      // sends none when the runtime gives no GC arguments).
      const listed = conf['cni.dev/valid-attachments'] ?? conf['cni.dev/attachments'];
      const { errors } = listed
        ? await gc(
            deps,
            listed.map((a) => ({ containerId: a.containerID, ifname: a.ifname })),
            env.path,
            conf.name,
          )
        : { errors: [] as string[] };
      // Addresses: the handles of the interfaces still recorded on this node are alive;
      // anything else this node holds is marked now and freed at a later GC (grace period).
      const live = deps.state
        .listAttachments()
        .flatMap((r) =>
          r.interfaces.map((i) => ({ containerId: r.containerId, ifname: i.ifname })),
        );
      for (const net of networks.values())
        if (net.spec.ipv4 || net.spec.ipv6)
          await deps.ipam.gc({
            network: net.metadata.name,
            spec: net.spec,
            node: deps.node,
            valid: live,
          });
      // Delegates collect their own leftovers (the spec: GC is forwarded, with a list or
      // without): what is valid for one is what Tartan still records on its network.
      for (const net of networks.values()) {
        if (net.spec.type !== 'delegate') continue;
        const valid = deps.state
          .listAttachments()
          .flatMap((r) =>
            r.interfaces
              .filter((i) => i.network === net.metadata.name)
              .map((i) => ({ containerID: r.containerId, ifname: i.ifname })),
          );
        try {
          await delegateGc(net.spec.delegate!, valid, bareEnv(env.path), SUPPORTED_VERSIONS);
        } catch (e) {
          errors.push(`network ${net.metadata.name}: ${(e as Error).message}`);
        }
      }
      if (errors.length > 0)
        throw new TartanError(
          'ERR_INTERNAL',
          `GC left work undone (will be retried): ${errors.join('; ')}`,
        );
      return undefined;
    }
    default:
      throw new TartanError('ERR_ENV', `unsupported command ${env.command}`);
  }
}
