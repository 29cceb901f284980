// A per-instance copy of the records under `nodes/<node>/` that this instance allocates for,
// so that the common allocation is one compare-and-swap instead of a list and a CAS (about
// 3x the allocations per second on etcd, see bench/ipam.ts).
//
// What makes it safe:
// - Nothing is trusted without the store agreeing: an allocation writes a cached block with
//   its cached revision, so the CAS succeeds only if the block did not change since; any
//   failed CAS drops the node's copy and the retry reads afresh.
// - The store handed to the IPAM is wrapped so every write this instance makes (releases,
//   GC, claims, borrowing into another node's block) updates or drops the copy.
// - A copy that says "this handle already holds an address" is never believed: the
//   allocation re-reads before returning it (another process may have released it).
// What it assumes: a handle's pod lives on one node, and one process allocates for a node
// at a time (its agent; a CNI process without an agent starts with an empty copy). If two
// processes did allocate for the same handle at once, that handle could get two addresses:
// never one address twice, and release-by-handle or GC frees both.
import type { Entry, Store } from '../store/types.js';

const NODE_KEY = /^(ipam\/[^/]+\/v[46]\/nodes\/[^/]+\/)(?:blocks|borrowed)\/[^/]+$/;

export class NodeCache {
  private readonly nodes = new Map<string, Map<string, Entry>>();

  get(prefix: string): Entry[] | undefined {
    const m = this.nodes.get(prefix);
    return m && [...m.values()];
  }

  put(prefix: string, entries: readonly Entry[]): void {
    this.nodes.set(prefix, new Map(entries.map((e) => [e.key, e])));
  }

  drop(prefix: string): void {
    this.nodes.delete(prefix);
  }

  /** The store, with every write of this instance reflected in the cached copies. */
  wrap(store: Store): Store {
    const prefixOf = (key: string) => NODE_KEY.exec(key)?.[1];
    const after = (key: string, ok: boolean, change: (m: Map<string, Entry>) => void) => {
      const prefix = prefixOf(key);
      const m = prefix === undefined ? undefined : this.nodes.get(prefix);
      if (!m) return;
      if (ok) change(m);
      else this.nodes.delete(prefix!);
    };
    return {
      kind: store.kind,
      get: (key) => store.get(key),
      list: (prefix, o) => store.list(prefix, o),
      create: async (key, value) => {
        const rev = await store.create(key, value);
        after(key, rev !== undefined, (m) => m.set(key, { key, value, rev: rev! }));
        return rev;
      },
      update: async (key, value, rev) => {
        const next = await store.update(key, value, rev);
        after(key, next !== undefined, (m) => {
          // Our write went in on top of `rev`: the copy stays exact only if it was at `rev`.
          if (m.get(key)?.rev === rev) m.set(key, { key, value, rev: next! });
          else this.nodes.delete(prefixOf(key)!);
        });
        return next;
      },
      delete: async (key, rev) => {
        const ok = await store.delete(key, rev);
        after(key, ok, (m) => m.delete(key));
        return ok;
      },
      close: () => store.close(),
    };
  }
}
