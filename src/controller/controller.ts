// The controller process's core: campaign for the Lease and, while leading, reconcile
// every intervalMs. The webhook (webhook.ts) runs in every replica, leader or not: an
// admission decision must not wait for an election.
import type { KubeClient } from '../k8s/client.js';
import type { Store } from '../store/types.js';
import { startLeaderElection, type LeaderElector } from './leader.js';
import { reconcileOnce, type ReconcileDeps } from './reconcile.js';
import { reconcileSegments } from './segments.js';

export interface ControllerOptions {
  client: KubeClient;
  store: Store;
  namespace: string;
  identity: string;
  intervalMs?: number;
  gcGraceMs?: number;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log?: (msg: string) => void;
}

export interface Controller {
  isLeader(): boolean;
  stop(): Promise<void>;
}

export function startController(o: ControllerOptions): Controller {
  const log = o.log ?? (() => {});
  const deps: ReconcileDeps = {
    client: o.client,
    store: o.store,
    ...(o.gcGraceMs === undefined ? {} : { gcGraceMs: o.gcGraceMs }),
    sightings: new Map(),
  };
  let timer: NodeJS.Timeout | undefined;
  let round: Promise<void> = Promise.resolve();
  // Said once, not every round, while the IPAMClaim CRD is missing.
  let claimsSkipped = false;

  const run = () => {
    if (!elector.isLeader()) return;
    round = (async () => {
      const failed = (what: string, e: unknown) =>
        log(`${what} failed: ${e instanceof Error ? e.message : String(e)}`);
      // Each its own try: one failing must not stop the other.
      try {
        const r = await reconcileOnce(deps);
        const { created, released, skipped, errors } = r.claims;
        if (r.released || r.staleAttachments || r.finalized)
          log(
            `released ${r.released} addresses, ${r.staleAttachments} stale attachments, ${r.finalized} TenantNetworks finalized`,
          );
        if (created.length || released.length)
          log(
            `IPAMClaims created: ${created.join(' ') || '-'}; released: ${released.join(' ') || '-'}`,
          );
        for (const e of errors ?? []) log(`claims: ${e}`);
        if (skipped && !claimsSkipped) log(`claims not reconciled: ${skipped}`);
        claimsSkipped = skipped !== undefined;
      } catch (e) {
        failed('reconcile', e);
      }
      try {
        const freed = await reconcileSegments(o.client, o.store, o.gcGraceMs ?? 5 * 60_000);
        if (freed.length) log(`segments released: ${freed.join(' ')}`);
      } catch (e) {
        failed('segment reconcile', e);
      }
    })().finally(() => {
      if (elector.isLeader()) timer = setTimeout(run, o.intervalMs ?? 30_000);
    });
  };

  // The callbacks run after the first Lease request resolves, so elector is set by then.
  const elector: LeaderElector = startLeaderElection({
    client: o.client,
    namespace: o.namespace,
    name: 'tartan-controller',
    identity: o.identity,
    ...(o.leaseDurationMs === undefined ? {} : { leaseDurationMs: o.leaseDurationMs }),
    ...(o.renewDeadlineMs === undefined ? {} : { renewDeadlineMs: o.renewDeadlineMs }),
    ...(o.retryPeriodMs === undefined ? {} : { retryPeriodMs: o.retryPeriodMs }),
    onStartedLeading: () => {
      log(`${o.identity} is the leader`);
      run();
    },
    onStoppedLeading: () => {
      log(`${o.identity} stopped leading`);
      if (timer) clearTimeout(timer);
    },
  });

  return {
    isLeader: () => elector.isLeader(),
    async stop() {
      await elector.stop();
      if (timer) clearTimeout(timer);
      await round;
    },
  };
}
