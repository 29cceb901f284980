// Runs kernel driver calls for test/kernel/netlink.test.ts in a process of its own, under
// Bun (bun:ffi, as in the CNI executable) or Node (koffi, as in the node agent). argv[2] is
// a JSON array of actions; stdout gets a JSON array of results, one per action, each with
// the process's open fd count before and after. The test starts this inside its own "host"
// netns (ip netns exec), never the real host's.
import { readdirSync, readlinkSync } from 'node:fs';
import { createKernel } from '../../src/kernel/iproute.js';
import { createNetlinkKernel } from '../../src/kernel/netlink/index.js';
import {
  runPosition,
  type Kernel,
  type RunPosition,
  type Step,
  type Target,
} from '../../src/kernel/types.js';

export type Driver = 'netlink' | 'iproute';
export type { Step } from '../../src/kernel/types.js';
export type Action =
  /** With ticks, the value is how many event loop turns happened while the run was on. */
  | { do: 'run'; driver: Driver; steps: Step[]; bestEffort?: boolean; ticks?: boolean }
  | { do: 'addresses'; driver: Driver; t: Target }
  /** Times `attach` n times (after one untimed round), undoing it with `detach` each time. */
  | { do: 'bench'; driver: Driver; n: number; attach: Step[]; detach: Step[] };
export interface Result {
  ok: boolean;
  code?: string;
  message?: string;
  /** Where a failed run stopped, if the driver said. */
  at?: RunPosition;
  value?: unknown;
  fds: [number, number];
  /** What the fds opened during the call (and still open) point at, if any. */
  newFds?: string[];
}

const kernels: Record<Driver, Kernel> = { netlink: createNetlinkKernel(), iproute: createKernel() };
const openFds = (): Map<string, string> =>
  new Map(
    readdirSync('/proc/self/fd').map((fd) => {
      try {
        return [fd, readlinkSync(`/proc/self/fd/${fd}`)];
      } catch {
        return [fd, '?'];
      }
    }),
  );
function fdReport(before: Map<string, string>): Pick<Result, 'fds' | 'newFds'> {
  const after = openFds();
  const added = [...after]
    .filter(([fd, to]) => before.get(fd) !== to)
    .map(([fd, to]) => `${fd}=${to}`);
  return { fds: [before.size, after.size], ...(added.length ? { newFds: added } : {}) };
}

async function perform(a: Action): Promise<unknown> {
  const k = kernels[a.driver];
  switch (a.do) {
    case 'run': {
      if (!a.ticks) return k.run(a.steps, { bestEffort: a.bestEffort === true });
      let ticks = 0;
      let on = true;
      const tick = () => {
        if (!on) return;
        ticks++;
        setImmediate(tick);
      };
      setImmediate(tick);
      try {
        await k.run(a.steps, { bestEffort: a.bestEffort === true });
      } finally {
        on = false;
      }
      return ticks;
    }
    case 'addresses':
      return k.addresses(a.t);
    case 'bench': {
      const times: number[] = [];
      for (let i = 0; i <= a.n; i++) {
        const t0 = performance.now();
        await k.run(a.attach);
        if (i > 0) times.push(performance.now() - t0);
        await k.run(a.detach, { bestEffort: true });
      }
      return times;
    }
  }
}

const results: Result[] = [];
for (const a of JSON.parse(process.argv[2] ?? '[]') as Action[]) {
  const before = openFds();
  try {
    const value = await perform(a);
    results.push({ ok: true, ...(value === undefined ? {} : { value }), ...fdReport(before) });
  } catch (e) {
    const err = e as { code?: string; message?: string };
    const at = runPosition(e);
    results.push({
      ok: false,
      ...(err.code === undefined ? {} : { code: err.code }),
      message: String(err.message ?? e),
      ...(at ? { at } : {}),
      ...fdReport(before),
    });
  }
}
process.stdout.write(JSON.stringify(results));
