// The Tartan node agent (DaemonSet): serves the `tartan` shim's CNI calls over a root-only
// unix socket, replays DELs queued while it was down, repairs host parents, and serves
// /healthz, /readyz and /metrics. SIGTERM drains: readiness fails, DEL is still served.
//
//   tartan-agent [--cni-conf FILE] [--socket PATH] [--state-dir DIR] [--networks-dir DIR]
//                [--store-path FILE] [--metrics ADDR] [--max-concurrent N] [--max-queue N]
//                [--ready-timeout-ms N] [--drain-ms N] [--reconcile-ms N] [--pending-ms N]
//                [--kubeconfig FILE | --in-cluster] [--node-name NAME]
//                [--kernel-driver auto|netlink|iproute2]
//
// With --kubeconfig or --in-cluster the agent works from the cluster: networks are the
// ClusterNetwork/TenantNetwork objects, a pod gets the interfaces its annotations ask for,
// and the agent publishes network-status and Attachment objects. The node's name comes
// from --node-name, else $NODE_NAME (the DaemonSet's downward API), else the conflist.
//
// The agent speaks rtnetlink itself (koffi; docs/adr/0010-agent-netlink.md). With
// --kernel-driver iproute2, or where koffi cannot load (auto), it asks each call's shim to do
// the kernel steps over netlink and runs iproute2 when the shim cannot.
//
// --cni-conf reads the same conflist (or plugin config) the shim gets, so the agent and the
// shim agree on socket, state directory, networks and store; flags override it.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Agent } from '../agent/agent.js';
import { hostname } from 'node:os';
import { clusterView } from '../agent/cluster.js';
import { podSync } from '../agent/pods.js';
import { createKubeClient, inClusterConnection } from '../k8s/client.js';
import { loadKubeconfig } from '../k8s/kubeconfig.js';
import { kubernetesStoreWith } from '../store/kubernetes.js';
import { createLogger, type Level } from '../agent/log.js';
import { createProcessKernel } from '../kernel/index.js';
import { createKernel } from '../kernel/iproute.js';
import { DEFAULT_SOCKET, DEFAULT_STATE_DIR } from '../agent/wire.js';
import type { StoreConfig } from '../store/types.js';

const { values: a } = parseArgs({
  options: {
    'cni-conf': { type: 'string' },
    socket: { type: 'string' },
    'state-dir': { type: 'string' },
    'networks-dir': { type: 'string' },
    'store-path': { type: 'string' },
    metrics: { type: 'string' },
    'max-concurrent': { type: 'string' },
    'max-queue': { type: 'string' },
    'ready-timeout-ms': { type: 'string' },
    'drain-ms': { type: 'string' },
    'reconcile-ms': { type: 'string' },
    'pending-ms': { type: 'string' },
    'log-level': { type: 'string' },
    kubeconfig: { type: 'string' },
    'in-cluster': { type: 'boolean' },
    'node-name': { type: 'string' },
    'kernel-driver': { type: 'string' },
  },
  strict: true,
});

/** The tartan entry of a conflist, or a single plugin config. */
function pluginConf(file: string | undefined): Record<string, unknown> {
  if (!file) return {};
  const v = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const plugins = v.plugins as Record<string, unknown>[] | undefined;
  return (plugins ?? [v]).find((p) => p.type === 'tartan') ?? {};
}

const num = (s: string | undefined, d: number) => {
  if (s === undefined) return d;
  const n = Number(s);
  if (!Number.isFinite(n) || n < 0) throw new Error(`not a number: ${s}`);
  return n;
};

const c = pluginConf(a['cni-conf']);
const str = (k: string) => (typeof c[k] === 'string' ? (c[k] as string) : undefined);
const stateDir = a['state-dir'] ?? str('stateDir') ?? DEFAULT_STATE_DIR;
const store: StoreConfig = a['store-path']
  ? { type: 'file', path: a['store-path'] }
  : ((c.store as StoreConfig | undefined) ?? { type: 'file', path: `${stateDir}/ipam.db` });
const log = createLogger({ level: (a['log-level'] as Level | undefined) ?? 'info' });

const driver = a['kernel-driver'] ?? 'auto';
if (!['auto', 'netlink', 'iproute2'].includes(driver))
  throw new Error(`--kernel-driver: auto, netlink or iproute2, not ${driver}`);
const kernel = driver === 'iproute2' ? createKernel() : await createProcessKernel();
if (driver === 'netlink' && kernel.driver !== 'netlink')
  throw new Error('--kernel-driver netlink: koffi cannot load libc here');
log.info('kernel driver', { driver: kernel.driver });

const kube =
  a.kubeconfig || a['in-cluster']
    ? createKubeClient(a.kubeconfig ? loadKubeconfig(a.kubeconfig) : inClusterConnection())
    : undefined;
const node = a['node-name'] ?? process.env.NODE_NAME ?? str('nodeName') ?? hostname();

const agent = new Agent({
  kernel,
  socket: a.socket ?? str('agentSocket') ?? DEFAULT_SOCKET,
  stateDir,
  networksDir: a['networks-dir'] ?? str('networksDir') ?? '/etc/tartan/networks',
  store,
  metricsAddress: a.metrics ?? ':9464',
  maxConcurrent: num(a['max-concurrent'], 8),
  maxQueue: num(a['max-queue'], 512),
  readyTimeoutMs: num(a['ready-timeout-ms'], 20_000),
  drainMs: num(a['drain-ms'], 10_000),
  reconcileIntervalMs: num(a['reconcile-ms'], 60_000),
  pendingIntervalMs: num(a['pending-ms'], 10_000),
  log,
  // In a cluster: networks and pod requests from the API, and the pods learn about their
  // interfaces (network-status, Attachments).
  ...(kube
    ? {
        cluster: clusterView(kube, node, log),
        pods: podSync(kube, log),
        kubernetesStore: (namespace: string) => kubernetesStoreWith(kube, { namespace }),
      }
    : {}),
});

let stopping = false;
const shutdown = (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info('signal', { signal });
  agent.drain().then(
    () => process.exit(0),
    (e: Error) => {
      log.error('drain failed', { error: e.message });
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
// Files the agent creates (state, pending queue) are root's alone.
process.umask(0o077);

agent.start().catch((e: Error) => {
  log.error('cannot start', { error: e.message });
  process.exit(1);
});
