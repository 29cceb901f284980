// The datastore layer behind one contract (types.ts). Backends are loaded on demand, so a
// process that opens the file store never evaluates etcd3 and its gRPC stack. Bundlers
// still inline the './etcd.js' chunk named here (Bun parsing it costs ~10 ms of CPU per
// exec, measured on a compiled binary), so the Bun CNI binary, which needs only the
// local store, imports createFileStore from './file.js' directly instead of openStore.
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
      const { createEtcdStore } = await import('./etcd.js');
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
