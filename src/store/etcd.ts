// etcd store, for hosts without Kubernetes and for clusters whose IPAM outgrows CRDs.
// Each write is one etcd transaction comparing the key's mod_revision, which is exactly
// the single-key compare-and-swap of the Store contract; mod_revision is cluster-wide
// and never reused, so it serves as the opaque rev.
import { Etcd3, Range, type IKeyValue, type Namespace } from 'etcd3';
import { TartanError } from '../cni/errors.js';
import { decodeValue, encodeValue } from './codec.js';
import type { Entry, Store } from './types.js';

export interface EtcdStoreOptions {
  endpoints: string[];
  /** Namespace for every key; default "/tartan/". */
  prefix?: string;
  /** Per-request deadline. A CNI ADD must fail in bounded time when etcd is away. */
  timeoutMs?: number;
  /** Keys per range request of a list (default 250: ~2 MB even of full /26 blocks). */
  pageSize?: number;
}

const DEFAULT_PREFIX = '/tartan/';
const DEFAULT_TIMEOUT_MS = 10_000;
const REV = /^[1-9][0-9]{0,18}$/;

export async function createEtcdStore(opts: EtcdStoreOptions): Promise<Store> {
  if (opts.endpoints.length === 0) {
    throw new TartanError('ERR_STORE', 'etcd store: no endpoints configured');
  }
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const pageSize = opts.pageSize ?? 250;
  const where = `etcd ${opts.endpoints.join(',')}`;
  // The client's default policy retries a failed call up to 3 times. A retried write whose
  // first attempt did commit then reports a conflict: the caller re-reads, which the
  // contract already demands of it, and at worst leaves an allocation for GC to reclaim.
  const client = new Etcd3({
    hosts: opts.endpoints,
    dialTimeout: timeoutMs,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
  });
  const ns: Namespace = client.namespace(opts.prefix ?? DEFAULT_PREFIX);

  const guard = async <T>(op: string, key: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof TartanError) throw e;
      const msg = e instanceof Error ? e.message : String(e);
      throw new TartanError('ERR_STORE', `${where}: ${op} "${key}": ${msg}`, { cause: e });
    }
  };
  const entry = <T>(key: string, kv: IKeyValue): Entry<T> => ({
    key,
    rev: kv.mod_revision,
    value: decodeValue(where, key, kv.mod_revision, kv.value.toString('utf8')) as T,
  });

  return {
    kind: 'etcd',
    get: (key) =>
      guard('get', key, async () => {
        const res = await ns.get(key).exec();
        const kv = res.kvs[0];
        return kv ? entry(key, kv) : undefined;
      }),
    list: <T>(prefix: string) =>
      guard('list', prefix, async () => {
        // In pages, all at the first page's revision (one consistent view): one answer for a
        // network's records passes gRPC's 4 MiB message limit at ~30,000 addresses.
        const out: Entry<T>[] = [];
        const end = Range.prefix(prefix).end;
        let start = Buffer.from(prefix, 'utf8');
        let revision: string | undefined;
        for (;;) {
          let q = ns.getAll().inRange({ start, end }).sort('Key', 'Ascend').limit(pageSize);
          if (revision) q = q.revision(revision);
          const res = await q.exec();
          revision ??= res.header.revision;
          // The multi-key range strips the namespace from the returned keys.
          for (const kv of res.kvs) out.push(entry<T>(kv.key.toString('utf8'), kv));
          const last = res.kvs.at(-1);
          if (!res.more || !last) return out;
          start = Buffer.concat([last.key, Buffer.from([0])]);
        }
      }),
    create: (key, value) =>
      guard('create', key, async () => {
        const json = encodeValue(key, value);
        const res = await ns.if(key, 'Create', '==', 0).then(ns.put(key).value(json)).commit();
        // Every write of one transaction gets the transaction's revision.
        return res.succeeded ? res.header.revision : undefined;
      }),
    update: (key, value, rev) =>
      guard('update', key, async () => {
        const json = encodeValue(key, value);
        if (!REV.test(rev)) return undefined;
        const res = await ns.if(key, 'Mod', '==', rev).then(ns.put(key).value(json)).commit();
        return res.succeeded ? res.header.revision : undefined;
      }),
    delete: (key, rev) =>
      guard('delete', key, async () => {
        if (!REV.test(rev)) return false;
        const res = await ns.if(key, 'Mod', '==', rev).then(ns.delete().key(key)).commit();
        return res.succeeded;
      }),
    close: async () => client.close(),
  };
}
