// Where the agent gets network definitions. Today: the networks directory, re-read only
// when a file in it changed. In a cluster an informer over ClusterNetwork/TenantNetwork
// objects (src/k8s) implements the same interface; nothing else in the agent changes.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadNetworks } from '../network/load.js';
import type { Network } from '../network/schema.js';

export interface NetworkSource {
  /** The current definitions; cheap when nothing changed. */
  networks(): Promise<Map<string, Network>>;
  close(): void;
}

/**
 * Keeps the parsed directory in memory and revalidates it with one readdir and a stat per
 * file (the same signature loadNetworks keys its on-disk cache with): cheaper than an
 * inotify watch that a directory replaced as a whole (rm -r; mkdir) silently ends.
 */
export function fileNetworkSource(dir: string, cacheFile?: string): NetworkSource {
  let memo: { sig: string; nets: Map<string, Network> } | undefined;
  return {
    async networks() {
      const sig = signature(dir);
      if (memo && sig !== undefined && memo.sig === sig) return memo.nets;
      const nets = await loadNetworks(dir, cacheFile);
      if (sig !== undefined) memo = { sig, nets };
      return nets;
    },
    close() {
      memo = undefined;
    },
  };
}

/**
 * Synchronous on purpose: a readdir and a few stats take microseconds, while each trip
 * through libuv's thread pool costs ~0.1 ms, and every ADD asks (once per call: agent.ts).
 */
function signature(dir: string): string | undefined {
  try {
    const names = readdirSync(dir)
      .filter((n) => /\.(ya?ml|json)$/.test(n))
      .sort();
    const stats = names.map((n) => statSync(join(dir, n)));
    return JSON.stringify(
      names.map((n, i) => [n, stats[i]!.size, stats[i]!.mtimeMs, stats[i]!.ino]),
    );
  } catch {
    return undefined; // unreadable: let loadNetworks report it
  }
}
