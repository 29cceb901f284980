// Bounded, jittered retries around compare-and-swap. An attempt returns CONFLICT when a
// CAS lost a race; it is then re-run from fresh reads after a random delay ("full jitter":
// uniform in [0, min(cap, base * 2^attempt)]), which spreads writers that collided so they
// do not collide again in lock-step.
import { TartanError } from '../cni/errors.js';

export const CONFLICT: unique symbol = Symbol('conflict');
export type Conflict = typeof CONFLICT;

export interface RetryPolicy {
  maxRetries: number;
  random: () => number;
  sleep: (ms: number) => Promise<void>;
}

const BASE_MS = 1;
const CAP_MS = 64;

export async function retrying<T>(
  p: RetryPolicy,
  what: string,
  attempt: (n: number) => Promise<T | Conflict>,
): Promise<T> {
  for (let n = 0; ; n++) {
    const r = await attempt(n);
    if (r !== CONFLICT) return r;
    if (n >= p.maxRetries)
      throw new TartanError(
        'ERR_IPAM_CONTENTION',
        `${what}: still conflicting after ${p.maxRetries} retries; try again later`,
      );
    await p.sleep(p.random() * Math.min(CAP_MS, BASE_MS * 2 ** n));
  }
}
