// The datastore layer behind one contract (types.ts). Backends are loaded on demand, so a
// process that opens the file store never evaluates etcd3 and its gRPC stack; the Bun CNI
// binary does not even carry them (etcdBesideBinary).
import { TartanError } from '../cni/errors.js';
import type { Store, StoreConfig } from './types.js';

export type { Entry, Store, StoreConfig } from './types.js';
export { createMemoryStore } from './memory.js';

/**
 * kubernetes: how this process opens the kubernetes store (the node agent, over its own API
 * connection). Passed in rather than imported, so the CNI executable carries no API client.
 */
export async function openStore(
  cfg: StoreConfig,
  kubernetes?: (namespace: string) => Store,
): Promise<Store> {
  switch (cfg.type) {
    case 'file': {
      if (!cfg.path) throw new TartanError('ERR_CONFIG', 'file store: "path" is required');
      const { createFileStore } = await import('./file.js');
      return createFileStore(cfg.path);
    }
    case 'etcd': {
      if (!cfg.endpoints?.length) {
        throw new TartanError('ERR_CONFIG', 'etcd store: "endpoints" is required');
      }
      const { createEtcdStore } =
        process.env.TARTAN_BUILD === 'cni' ? await etcdBesideBinary() : await import('./etcd.js');
      return createEtcdStore({
        endpoints: cfg.endpoints,
        ...(cfg.prefix === undefined ? {} : { prefix: cfg.prefix }),
      });
    }
    case 'kubernetes':
      if (!kubernetes)
        throw new TartanError(
          'ERR_CONFIG',
          'kubernetes store: only the node agent has an API connection (set agentSocket, and run tartan-agent with --in-cluster or --kubeconfig)',
        );
      return kubernetes(cfg.namespace ?? 'tartan-system');
    default:
      throw new TartanError(
        'ERR_CONFIG',
        `unknown store type ${JSON.stringify((cfg as { type: unknown }).type)}`,
      );
  }
}

/**
 * The CNI binary (built with TARTAN_BUILD=cni) carries no etcd client: etcd3 and gRPC in its
 * bundle cost every ADD ~1.5 ms of start-up. It loads them from beside itself (ADR 0009).
 */
async function etcdBesideBinary(): Promise<typeof import('./etcd.js')> {
  const file = `${process.execPath.slice(0, process.execPath.lastIndexOf('/'))}/tartan-etcd.cjs`;
  try {
    return (await import(file)) as typeof import('./etcd.js');
  } catch (e) {
    throw new TartanError(
      'ERR_CONFIG',
      `etcd store: this binary loads its etcd client from ${file} (with tartan-etcd/proto beside it): ${(e as Error).message}`,
      { cause: e },
    );
  }
}
