// Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics: the holder
// renews every retryPeriod; anyone may take the Lease once renewTime + leaseDuration has
// passed; every write is a compare-and-swap on resourceVersion, so two candidates can
// never both win. A leader that cannot renew within renewDeadline steps down by itself
// before its Lease can expire, so there is no moment with two leaders acting.
import type { KubeClient } from '../k8s/client.js';

export interface LeaderOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
  now?: () => number;
}

interface Lease {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export interface LeaderElector {
  isLeader(): boolean;
  /** Stops campaigning; a leader releases the Lease so another takes over at once. */
  stop(): Promise<void>;
}

/** MicroTime: RFC 3339 with microseconds, as the API server wants for Lease times. */
const micro = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

export function startLeaderElection(o: LeaderOptions): LeaderElector {
  const leaseMs = o.leaseDurationMs ?? 15_000;
  const renewDeadline = o.renewDeadlineMs ?? 10_000;
  const period = o.retryPeriodMs ?? 2_000;
  const now = o.now ?? Date.now;
  const path = `/apis/coordination.k8s.io/v1/namespaces/${o.namespace}/leases`;
  let leader = false;
  let lastRenew = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const setLeader = (v: boolean) => {
    if (v === leader) return;
    leader = v;
    (v ? o.onStartedLeading : o.onStoppedLeading)?.();
  };

  const spec = (prev: Lease['spec'] | undefined, t: number): Lease['spec'] => {
    const taking = prev?.holderIdentity !== o.identity;
    return {
      holderIdentity: o.identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(leaseMs / 1000)),
      acquireTime: taking ? micro(t) : (prev?.acquireTime ?? micro(t)),
      renewTime: micro(t),
      leaseTransitions: (prev?.leaseTransitions ?? 0) + (taking && prev?.holderIdentity ? 1 : 0),
    };
  };

  async function tryAcquireOrRenew(): Promise<boolean> {
    const t = now();
    const cur = await o.client.request<Lease>({ method: 'GET', path: `${path}/${o.name}` });
    if (cur.status === 404) {
      const body = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: o.name, namespace: o.namespace },
        spec: spec(undefined, t),
      };
      return (await o.client.request({ method: 'POST', path, body })).status === 201;
    }
    if (cur.status !== 200) return false;
    const l = cur.body;
    const holder = l.spec.holderIdentity ?? '';
    const renewed = l.spec.renewTime ? Date.parse(l.spec.renewTime) : 0;
    const expired = renewed + (l.spec.leaseDurationSeconds ?? 0) * 1000 < t;
    if (holder !== o.identity && holder !== '' && !expired) return false;
    const res = await o.client.request({
      method: 'PUT',
      path: `${path}/${o.name}`,
      body: { ...l, spec: spec(l.spec, t) },
    });
    return res.status === 200; // 409: someone else wrote first
  }

  async function tick(): Promise<void> {
    try {
      if (await tryAcquireOrRenew()) {
        lastRenew = now();
        setLeader(true);
      } else setLeader(false);
    } catch {
      // The API is away: keep leading only while the Lease surely has not expired.
      if (leader && now() - lastRenew > renewDeadline) setLeader(false);
    }
    if (leader && now() - lastRenew > renewDeadline) setLeader(false);
  }

  const loop = () => {
    if (stopped) return;
    running = tick().finally(() => {
      if (!stopped) timer = setTimeout(loop, period);
    });
  };
  loop();

  return {
    isLeader: () => leader,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
      if (!leader) return;
      setLeader(false);
      // Release: an empty holder lets the next candidate take over on its next try.
      const cur = await o.client.request<Lease>({ method: 'GET', path: `${path}/${o.name}` });
      if (cur.status === 200 && cur.body.spec.holderIdentity === o.identity) {
        const released = {
          ...cur.body,
          spec: { ...cur.body.spec, holderIdentity: '', leaseDurationSeconds: 1 },
        };
        await o.client.request({ method: 'PUT', path: `${path}/${o.name}`, body: released });
      }
    },
  };
}
