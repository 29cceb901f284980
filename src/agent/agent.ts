// The node agent: serves the shim's CNI calls with the same core the executable runs
// in-process (executeCni -> runCni), keeping what is expensive to set up warm between
// calls (datastore connections, parsed networks), and owns the node-wide duties no single
// CNI call can: replaying DELs queued while it was down, repairing host parents, probes and
// metrics. Lifecycle: starting (DEL served, ADD waits) -> ready -> draining after SIGTERM
// (readiness fails, ADD refused with "try again later", DEL still served) -> stopped.
import { hostname } from 'node:os';
import { podOf, type PodSync } from './pods.js';
import { performance } from 'node:perf_hooks';
import type { Server as HttpServer } from 'node:http';
import type { Server } from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openHostState, type HostState } from '../attach/host-state.js';
import { needsNetworks } from '../attach/plugin.js';
import { CniCode, TartanError } from '../cni/errors.js';
import { parsePluginConfig, type PluginConfig } from '../cni/config.js';
import { errorResponse } from '../cni/protocol.js';
import { mark } from '../cni/trace.js';
import { createIpam, type Ipam } from '../ipam/index.js';
import { createKernel } from '../kernel/iproute.js';
import type { Network } from '../network/schema.js';
import type { Kernel } from '../kernel/types.js';
import { openStore, type Store, type StoreConfig } from '../store/index.js';
import { classify } from './classify.js';
import { executeCni } from './execute.js';
import { Gate } from './gate.js';
import { callFields, type Logger } from './log.js';
import { createMetrics, type AgentMetrics, type PoolUsage } from './metrics.js';
import type { ClusterView, PodNetworks } from './cluster.js';
import { fileNetworkSource, type NetworkSource } from './networks.js';
import { listPending, pendingDir, pendingName, removePending, stillPending } from './pending.js';
import { reconcileParents } from './reconcile.js';
import { serveHttp, serveSocket } from './server.js';
import { peerKernel, type ShimPeer } from './peer-kernel.js';
import { isWireRequest, WIRE_VERSIONS, type WireRequest, type WireResponse } from './wire.js';

export interface AgentOptions {
  socket: string;
  stateDir: string;
  networksDir: string;
  store: StoreConfig;
  /** "host:port", ":port", a unix socket path, or "" for none. */
  metricsAddress: string;
  maxConcurrent: number;
  maxQueue: number;
  /** How long an ADD waits for a starting agent before "try again later". */
  readyTimeoutMs: number;
  /** After SIGTERM: how long DELs are still served before the socket closes. */
  drainMs: number;
  reconcileIntervalMs: number;
  pendingIntervalMs: number;
  log: Logger;
  kernel?: Kernel;
  /** Network definitions; default: the networks directory. */
  networks?: NetworkSource;
  /**
   * In a cluster: networks are the API's objects (informers) and a pod's interfaces are
   * the ones its annotations ask for. Replaces `networks`.
   */
  cluster?: ClusterView;
  /** In a cluster: publishes network-status and Attachment objects for pods. */
  pods?: PodSync;
  /** In a cluster: opens the kubernetes IPAM store (TartanRecords) over the agent's connection. */
  kubernetesStore?: (namespace: string) => Store;
}

export type Phase = 'starting' | 'ready' | 'draining' | 'stopped';

const tryAgain = (msg: string, details = 'ERR_AGENT_NOT_READY') =>
  new TartanError('ERR_INTERNAL', `${msg}; try again later`, {
    cniCode: CniCode.TryAgainLater,
    details,
  });

export class Agent {
  phase: Phase = 'starting';
  /** Why the last warm-up attempt failed: ADDs are told, at once, rather than kept waiting. */
  private warmUpError: string | undefined;
  readonly metrics: AgentMetrics;
  private readonly gate: Gate;
  private readonly kernel: Kernel;
  private readonly networks: NetworkSource;
  private readonly extraNetworks = new Map<string, NetworkSource>();
  private readonly stores = new Map<string, Promise<Store>>();
  /** One IPAM per open store, so its node cache lasts across calls (ipam/cache.ts). */
  private readonly ipams = new WeakMap<Store, Ipam>();
  private readonly states = new Map<string, Promise<HostState>>();
  /** Per attachment (container/ifname): the last call's end, which the next one waits for. */
  private readonly lanes = new Map<string, Promise<void>>();
  private readyWaiters: Array<(ok: boolean) => void> = [];
  private socketServer: Server | undefined;
  private httpServer: HttpServer | undefined;
  private timers: NodeJS.Timeout[] = [];
  private replaying = false;

  constructor(private readonly o: AgentOptions) {
    this.gate = new Gate(o.maxConcurrent, o.maxQueue);
    this.kernel = o.kernel ?? createKernel();
    this.networks =
      o.cluster ??
      o.networks ??
      fileNetworkSource(o.networksDir, join(o.stateDir, 'networks.cache.json'));
    this.metrics = createMetrics({
      gate: () => this.gate.stats(),
      ready: () => this.phase === 'ready',
      pendingDels: () => listPending(pendingDir(o.stateDir)).length,
      pools: () => this.pools(),
    });
  }

  /** Listens at once (so shims wait rather than fail), then warms up and turns ready. */
  async start(): Promise<void> {
    this.socketServer = await serveSocket(
      this.o.socket,
      (r, peer) => this.handle(r, 'socket', peer),
      this.o.log,
    );
    if (this.o.metricsAddress)
      this.httpServer = await serveHttp(
        this.o.metricsAddress,
        {
          healthz: () => this.phase !== 'stopped',
          readyz: () => this.phase === 'ready',
          metrics: async () => ({
            contentType: this.metrics.registry.contentType,
            body: await this.metrics.registry.metrics(),
          }),
        },
        this.o.log,
      );
    this.o.log.info('listening', { socket: this.o.socket, metrics: this.o.metricsAddress });
    void this.warmUp();
  }

  private async warmUp(): Promise<void> {
    for (let attempt = 1; this.phase === 'starting'; attempt++) {
      try {
        await this.storeFor(this.o.store, true);
        await this.stateFor(this.o.stateDir);
        // Before ready: a pod whose DEL was queued must be gone before new ADDs arrive.
        // DELs need no network object, so they go first even while the API server is away.
        await this.replayPending();
        // A parent that cannot be repaired now (e.g. its NIC is down) must not keep every
        // other network on the node from working: logged, retried by the periodic pass.
        await this.reconcile().catch(() => undefined);
        if (this.o.cluster) await this.o.cluster.synced();
        await this.networks.networks();
        this.becomeReady();
        return;
      } catch (e) {
        this.warmUpError = (e as Error).message;
        this.o.log.error('warm-up failed, retrying', { attempt, error: this.warmUpError });
        await new Promise((r) => setTimeout(r, Math.min(5000, 250 * attempt)));
      }
    }
  }

  private becomeReady(): void {
    if (this.phase !== 'starting') return;
    this.phase = 'ready';
    for (const w of this.readyWaiters.splice(0)) w(true);
    this.timers.push(
      setInterval(() => void this.reconcile().catch(() => undefined), this.o.reconcileIntervalMs),
      setInterval(() => void this.replayPending(), this.o.pendingIntervalMs),
    );
    const m = process.memoryUsage();
    const mib = (n: number) => Math.round((n / 1048576) * 10) / 10;
    this.o.log.info('ready', {
      rssMiB: mib(m.rss),
      heapUsedMiB: mib(m.heapUsed),
      heapTotalMiB: mib(m.heapTotal),
      externalMiB: mib(m.external),
    });
  }

  private waitReady(): Promise<boolean> {
    if (this.phase === 'ready') return Promise.resolve(true);
    if (this.phase !== 'starting' || this.warmUpError !== undefined) return Promise.resolve(false);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.readyWaiters = this.readyWaiters.filter((w) => w !== done);
        resolve(false);
      }, this.o.readyTimeoutMs);
      const done = (ok: boolean) => {
        clearTimeout(t);
        resolve(ok);
      };
      this.readyWaiters.push(done);
    });
  }

  /** The turn of one call among those for the same attachment, in arrival order. */
  private lane(key: string): { turn: Promise<void> | undefined; done(): void } {
    const turn = this.lanes.get(key);
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    this.lanes.set(key, mine);
    return {
      turn,
      done: () => {
        done();
        if (this.lanes.get(key) === mine) this.lanes.delete(key);
      },
    };
  }

  /**
   * One CNI call from the shim (or the pending-DEL queue). Never rejects. Without netlink
   * of its own, the agent asks the shim (the peer) to apply this call's kernel steps
   * (peer-kernel.ts).
   */
  async handle(
    req: WireRequest,
    via = 'socket',
    peer?: ShimPeer,
    /** A queued DEL run in its attachment's turn (by the ADD holding it, or at warm-up). */
    inTurn = false,
  ): Promise<WireResponse> {
    const t0 = performance.now();
    mark('agent: request');
    const kernel =
      peer && this.kernel.driver !== 'netlink' ? peerKernel(peer, this.kernel) : undefined;
    const vars = req.env ?? {};
    const command = vars.CNI_COMMAND ?? '';
    const log = this.o.log.with({ ...callFields(vars), via });
    let raw: Record<string, unknown> | undefined;
    try {
      raw = JSON.parse(req.stdin) as Record<string, unknown>;
    } catch {
      raw = undefined; // executeCni reports it
    }
    const key =
      command === 'ADD' || command === 'DEL' || command === 'CHECK'
        ? `${vars.CNI_CONTAINERID}/${vars.CNI_IFNAME}`
        : undefined;
    // Taken before any await: calls for one attachment go in the order they reached the
    // agent, not the order in which their preparation (readiness, classification) ends. A
    // DEL sent right after its ADD (a runtime giving up on a slow ADD) must not overtake it,
    // find no record, and leave the ADD's interface and address behind.
    const lane = key === undefined || inTurn ? undefined : this.lane(key);
    let r: WireResponse & { error?: unknown };
    try {
      if (lane?.turn) await lane.turn;
      if (!WIRE_VERSIONS.includes(req.v))
        throw tryAgain(
          `shim speaks wire version ${req.v}, this agent ${WIRE_VERSIONS.join(' and ')}`,
          'ERR_AGENT_VERSION',
        );
      if (command === 'ADD' && !(await this.waitReady()))
        throw tryAgain(
          this.phase !== 'starting'
            ? 'the node agent is shutting down'
            : this.warmUpError !== undefined
              ? `the node agent is not ready: ${this.warmUpError}`
              : `the node agent is not ready after ${this.o.readyTimeoutMs} ms`,
        );
      let conf: PluginConfig | undefined;
      try {
        conf = raw ? parsePluginConfig(raw) : undefined;
      } catch {
        conf = undefined; // executeCni reports it
      }
      // A DEL the shim queued for this attachment while the agent was away came first: run
      // it now, in this turn. Left for a later replay, it would undo this ADD.
      if (command === 'ADD' && conf) await this.queuedDelFirst(conf.stateDir, vars);
      // One look at the networks directory per call: classify asks, then the core.
      let nets: Promise<Map<string, Network>> | undefined;
      const deps = {
        state: (dir: string) => this.stateFor(dir),
        networks: (c: PluginConfig) => (nets ??= this.networksFor(c).networks()),
      };
      const pod = podOf(vars.CNI_ARGS);
      // In a cluster an ADD attaches what the pod's annotations ask for, on the networks
      // the informers hold; GC and STATUS see every network. DEL and CHECK use the records.
      let resolved: PodNetworks | undefined;
      if (this.o.cluster && conf) {
        if (command === 'ADD' && pod) resolved = await this.o.cluster.forPod(pod);
        else if (command === 'ADD') resolved = { networks: await this.o.cluster.attachable() };
        else if (command === 'GC' || command === 'STATUS')
          resolved = { networks: await this.o.cluster.networks() };
      }
      let seen = this.gate.finished;
      let exclusive = await classify(command, vars, conf, deps, resolved);
      for (;;) {
        const out = await this.gate.run({ key, exclusive, tag: command }, async () => {
          if (command === 'ADD' && this.phase !== 'ready')
            throw tryAgain('the node agent is shutting down');
          // Asked again in this attachment's turn if any call ended since the first answer
          // (written when calls for one attachment could overlap here; since each waits for
          // the previous one's end (lane), what ends meanwhile is another attachment's).
          if (!exclusive && this.gate.finished !== seen) {
            seen = this.gate.finished;
            nets = undefined;
            if (await classify(command, vars, conf, deps, resolved)) return undefined;
          }
          const store = conf ? await this.storeFor(conf.store) : undefined;
          const publish = this.o.pods && conf ? pod : undefined;
          const cid = vars.CNI_CONTAINERID ?? '';
          const ifname = vars.CNI_IFNAME ?? '';
          // DEL removes the record: read it first to know which Attachments to delete.
          const before =
            publish && command === 'DEL'
              ? (await this.stateFor(conf!.stateDir)).getAttachment(cid, ifname)
              : undefined;
          // The agent's open records and parsed networks, not a fresh open and parse per call.
          const state = conf
            ? await this.stateFor(conf.stateDir).catch(() => undefined)
            : undefined;
          const networks =
            resolved?.networks ??
            (conf && needsNetworks(command)
              ? await deps.networks(conf).catch(() => undefined)
              : undefined);
          const res = await executeCni(
            vars,
            { text: req.stdin },
            {
              kernel: kernel ?? this.kernel,
              ...(conf ? { conf } : {}),
              ...(store ? { store, ipam: this.ipamFor(store) } : {}),
              ...(state ? { state } : {}),
              ...(networks ? { networks } : {}),
              ...(resolved?.requests ? { requests: resolved.requests } : {}),
            },
          );
          // Published in the background: a slow or absent API server must never hold up a
          // pod's ADD or DEL (the datapath is done either way; failures are logged).
          if (publish && res.code === 0 && command === 'ADD') {
            const rec = (await this.stateFor(conf!.stateDir)).getAttachment(cid, ifname);
            if (rec) void this.o.pods!.added(publish, rec, conf!.nodeName ?? hostname());
          }
          if (publish && res.code === 0 && before) void this.o.pods!.deleted(publish, before);
          return res;
        });
        if (out) {
          r = out;
          break;
        }
        exclusive = true;
      }
    } catch (e) {
      r = { code: 1, stdout: JSON.stringify(errorResponse(e, raw?.cniVersion)) + '\n', error: e };
    }
    lane?.done();
    mark('agent: answered');
    const seconds = (performance.now() - t0) / 1000;
    const remote = kernel !== undefined && kernel.remote() > 0;
    // After the answer is on its way (the caller writes it when this resolves): the log line
    // and the histogram cost ~0.2 ms of every call, which the pod need not wait for.
    setImmediate(() => {
      const cniCode = r.code === 0 ? undefined : codeOf(r);
      if (command !== 'VERSION') this.metrics.observe(command || 'unknown', seconds, cniCode);
      const fields = {
        ms: Math.round(seconds * 1000),
        code: cniCode ?? 0,
        // Where this call's kernel steps ran: in the shim over netlink, or here (netlink or
        // iproute2, as the agent's driver is).
        kernel: remote ? 'shim' : 'agent',
      };
      if (r.code === 0) log.info(`${command} done`, fields);
      else
        log.warn(`${command} failed`, {
          ...fields,
          error: r.error instanceof Error ? r.error.message : String(r.error),
          ...(vars.TARTAN_DEBUG && r.error instanceof Error ? { stack: r.error.stack } : {}),
        });
    });
    return { code: r.code, stdout: r.stdout };
  }

  /** Runs the queued DEL of an ADD's attachment, if any; if it fails, so does the ADD. */
  private async queuedDelFirst(stateDir: string, vars: Record<string, string>): Promise<void> {
    const file = join(
      pendingDir(stateDir),
      await pendingName(vars.CNI_CONTAINERID ?? '', vars.CNI_IFNAME ?? ''),
    );
    if (!existsSync(file)) return; // the common case: one stat per ADD
    const p = listPending(pendingDir(stateDir)).find((x) => x.file === file);
    if (!p || !isWireRequest(p.req) || p.req.env.CNI_COMMAND !== 'DEL') return;
    const r = await this.handle(p.req, 'pending-del', undefined, true);
    if (r.code !== 0)
      throw tryAgain(`a DEL of this attachment queued earlier failed: ${r.stdout.trim()}`);
    removePending(p);
  }

  /** Replays DELs the shim queued while the agent was down; failures stay queued. */
  async replayPending(): Promise<number> {
    if (this.replaying) return 0;
    this.replaying = true;
    let done = 0;
    // The agent's own state directory and any other a configuration has named since it
    // started: a shim queues a DEL under its call's stateDir.
    const dirs = new Set([this.o.stateDir, ...this.states.keys()]);
    try {
      for (const p of [...dirs].flatMap((d) => listPending(pendingDir(d)))) {
        if (this.phase === 'stopped') break;
        if (!isWireRequest(p.req) || p.req.env.CNI_COMMAND !== 'DEL') {
          this.o.log.error('dropping unreadable pending DEL', { file: p.file });
          removePending(p);
          continue;
        }
        // In the attachment's turn, and only if still queued then: an ADD of the attachment
        // runs its queued DEL first (queuedDelFirst), and this replay must not run it again
        // after that ADD. While starting, an ADD in its turn waits for readiness having done
        // nothing: the replay goes first rather than wait for it (and readiness for it).
        const env = p.req.env;
        const lane =
          this.phase === 'starting'
            ? undefined
            : this.lane(`${env.CNI_CONTAINERID}/${env.CNI_IFNAME}`);
        try {
          if (lane?.turn) await lane.turn;
          if (!stillPending(p)) continue;
          const r = await this.handle(p.req, 'pending-del', undefined, true);
          if (r.code === 0) {
            removePending(p);
            done++;
          }
        } finally {
          lane?.done();
        }
      }
    } finally {
      this.replaying = false;
    }
    return done;
  }

  /** One reconciler pass over the agent's node state, alone (see gate.ts). */
  async reconcile(): Promise<void> {
    const state = await this.stateFor(this.o.stateDir);
    const rep = await this.gate
      .run({ exclusive: true, tag: 'reconcile' }, () =>
        reconcileParents(this.kernel, state, this.o.log),
      )
      .catch((e: unknown) => {
        this.o.log.error('host parent reconciliation failed', { error: (e as Error).message });
        throw e;
      });
    this.metrics.parentRepair('created', rep.created.length);
    this.metrics.parentRepair('removed', rep.removed.length);
  }

  /** SIGTERM: fail readiness and new ADDs, keep serving DEL for drainMs, then stop. */
  async drain(): Promise<void> {
    if (this.phase === 'draining' || this.phase === 'stopped') return;
    this.phase = 'draining';
    this.o.log.info('draining', { ms: this.o.drainMs });
    for (const w of this.readyWaiters.splice(0)) w(false);
    this.gate.rejectWaiting('ADD', tryAgain('the node agent is shutting down'));
    await new Promise((r) => setTimeout(r, this.o.drainMs));
    await this.stop();
  }

  async stop(): Promise<void> {
    if (this.phase === 'stopped') return;
    this.phase = 'stopped';
    for (const t of this.timers) clearInterval(t);
    // Stop accepting; calls already admitted finish (their shims are waiting).
    await new Promise((r) => (this.socketServer ? this.socketServer.close(r) : r(undefined)));
    for (let i = 0; i < 600 && this.gate.stats().running + this.gate.stats().queued > 0; i++)
      await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => (this.httpServer ? this.httpServer.close(r) : r(undefined)));
    for (const s of this.stores.values()) await s.then((x) => x.close()).catch(() => undefined);
    for (const s of this.states.values()) await s.then((x) => x.close()).catch(() => undefined);
    this.networks.close();
    this.o.log.info('stopped');
  }

  private storeFor(cfg: StoreConfig, mustOpen = false): Promise<Store | undefined> {
    const key = JSON.stringify(cfg);
    let p = this.stores.get(key);
    if (!p) {
      p = openStore(cfg, this.o.kubernetesStore);
      this.stores.set(key, p);
      // A store that does not open is not kept: the next call tries again, and the core
      // reports the failure with its own code.
      p.catch(() => this.stores.delete(key));
    }
    return mustOpen ? p : p.catch(() => undefined);
  }

  private ipamFor(store: Store): Ipam {
    let ipam = this.ipams.get(store);
    if (!ipam) this.ipams.set(store, (ipam = createIpam(store)));
    return ipam;
  }

  private stateFor(dir: string): Promise<HostState> {
    let p = this.states.get(dir);
    if (!p) {
      p = openHostState(dir);
      this.states.set(dir, p);
      p.catch(() => this.states.delete(dir));
    }
    return p;
  }

  private networksFor(conf: PluginConfig): NetworkSource {
    if (this.o.cluster || conf.networksDir === this.o.networksDir) return this.networks;
    let s = this.extraNetworks.get(conf.networksDir);
    if (!s) {
      s = fileNetworkSource(conf.networksDir, join(conf.stateDir, 'networks.cache.json'));
      this.extraNetworks.set(conf.networksDir, s);
    }
    return s;
  }

  private async pools(): Promise<PoolUsage[]> {
    const store = await this.storeFor(this.o.store, true);
    if (!store) return [];
    const ipam = createIpam(store);
    const out: PoolUsage[] = [];
    for (const net of (await this.networks.networks()).values()) {
      if (!net.spec.ipv4 && !net.spec.ipv6) continue;
      for (const u of await ipam.usage(net.metadata.name, net.spec))
        out.push({
          network: net.metadata.name,
          family: u.family,
          capacity: Number(u.capacity),
          inUse: u.inUse,
        });
    }
    return out;
  }
}

function codeOf(r: WireResponse & { error?: unknown }): number {
  if (r.error instanceof TartanError) return r.error.cniCode;
  try {
    const c = (JSON.parse(r.stdout) as { code?: unknown }).code;
    return typeof c === 'number' ? c : CniCode.Internal;
  } catch {
    return CniCode.Internal;
  }
}
