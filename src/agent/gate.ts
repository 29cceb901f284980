// Admission for CNI work in the agent: at most `maxConcurrent` calls run, at most
// `maxQueue` wait (beyond that the caller gets "try again later" instead of the agent
// growing without bound under a burst, multus' OOM), calls for one (container, interface)
// run one after the other in arrival order, and "exclusive" calls run alone.
//
// Exclusive exists because of SQLite under a synchronous driver: a call that changes host
// parents holds the node state's write transaction across kernel work (awaits). Any other
// call in this process that wrote the node state meanwhile, through its own connection,
// would sleep in SQLite's busy handler on the event loop thread, so the holder could never
// finish: a deadlock until busy_timeout. Calls that touch no parent only write in single
// synchronous statements and may overlap freely.
import { CniCode, TartanError } from '../cni/errors.js';

interface Waiter {
  key: string | undefined;
  exclusive: boolean;
  start: () => void;
  reject: (e: unknown) => void;
  tag: string;
}

export interface GateStats {
  running: number;
  queued: number;
}

export class Gate {
  private running = 0;
  private done = 0;
  private exclusiveRunning = false;
  private readonly busyKeys = new Set<string>();
  private readonly queue: Waiter[] = [];

  constructor(
    private readonly maxConcurrent: number,
    private readonly maxQueue: number,
  ) {}

  stats(): GateStats {
    return { running: this.running, queued: this.queue.length };
  }

  /** How many calls have finished so far: unchanged means none ran to its end meanwhile. */
  get finished(): number {
    return this.done;
  }

  /** Runs fn when admitted; rejects at once (code 11) when the queue is full. */
  run<T>(
    o: { key?: string | undefined; exclusive?: boolean; tag?: string },
    fn: () => Promise<T>,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const w: Waiter = {
        key: o.key,
        exclusive: o.exclusive === true,
        tag: o.tag ?? '',
        reject,
        start: () => {
          this.running++;
          if (w.exclusive) this.exclusiveRunning = true;
          if (w.key !== undefined) this.busyKeys.add(w.key);
          fn()
            .then(resolve, reject)
            .finally(() => {
              this.running--;
              this.done++;
              if (w.exclusive) this.exclusiveRunning = false;
              if (w.key !== undefined) this.busyKeys.delete(w.key);
              this.pump();
            });
        },
      };
      if (this.queue.length >= this.maxQueue) {
        reject(
          new TartanError(
            'ERR_INTERNAL',
            `the node agent has ${this.queue.length} calls waiting already; try again later`,
            { cniCode: CniCode.TryAgainLater, details: 'ERR_AGENT_BUSY' },
          ),
        );
        return;
      }
      this.queue.push(w);
      this.pump();
    });
  }

  /** Fails every waiting call whose tag matches (e.g. queued ADDs when draining starts). */
  rejectWaiting(tag: string, e: unknown): void {
    for (let i = this.queue.length - 1; i >= 0; i--)
      if (this.queue[i]!.tag === tag) this.queue.splice(i, 1)[0]!.reject(e);
  }

  private pump(): void {
    for (let i = 0; i < this.queue.length;) {
      if (this.exclusiveRunning || this.running >= this.maxConcurrent) return;
      const w = this.queue[i]!;
      const keyFree = w.key === undefined || !this.busyKeys.has(w.key);
      if (w.exclusive) {
        // Writer preference: nothing queued behind an exclusive call overtakes it.
        if (this.running > 0 || !keyFree) return;
      } else if (!keyFree) {
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      w.start();
    }
  }
}
