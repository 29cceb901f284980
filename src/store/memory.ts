// In-process store for unit and property tests. Same contract as the real ones.
import type { Entry, Store } from './types.js';

export function createMemoryStore(): Store & { dump(): Map<string, Entry> } {
  const data = new Map<string, Entry>();
  let counter = 0;
  const clone = <T>(v: T): T => structuredClone(v);
  return {
    kind: 'memory',
    async get<T>(key: string) {
      const e = data.get(key);
      return e ? ({ ...e, value: clone(e.value) } as Entry<T>) : undefined;
    },
    async list<T>(prefix: string) {
      return [...data.values()]
        .filter((e) => e.key.startsWith(prefix))
        .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
        .map((e) => ({ ...e, value: clone(e.value) }) as Entry<T>);
    },
    async create(key, value) {
      if (data.has(key)) return undefined;
      const rev = String(++counter);
      data.set(key, { key, value: clone(value), rev });
      return rev;
    },
    async update(key, value, rev) {
      const e = data.get(key);
      if (!e || e.rev !== rev) return undefined;
      const next = String(++counter);
      data.set(key, { key, value: clone(value), rev: next });
      return next;
    },
    async delete(key, rev) {
      const e = data.get(key);
      if (!e || e.rev !== rev) return false;
      data.delete(key);
      return true;
    },
    async close() {},
    dump: () => data,
  };
}
