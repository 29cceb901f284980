// A list-then-watch cache of one resource (client-go's reflector + store, in small): the
// agent reads networks and its node's pods from memory at ADD instead of asking the API
// server, and keeps working on the last known state while the API server is away.
//
// The loop: list (remember resourceVersion) -> watch from it -> on each event update the
// map -> when the server ends the watch, watch again from the last version seen -> on
// "410 Gone" (the version fell out of etcd's window) or any failure, list again after a
// backoff. A resource that does not exist (404: e.g. the NPWG CRD is not installed) is an
// empty list, retried at the slow pace.
import type { KubeClient, WatchEvent } from './client.js';

export interface KubeObject {
  metadata: { name: string; namespace?: string; resourceVersion?: string; uid?: string };
}

export interface Informer<T> {
  /** By "<namespace>/<name>" (namespaced) or "<name>". */
  get(key: string): T | undefined;
  values(): IterableIterator<T>;
  /** Resolves after the first complete list (or rejects when closed before). */
  synced(): Promise<void>;
  readonly hasSynced: boolean;
  /** Changes whenever the cache does: what a user derived from it can be keyed by. */
  readonly revision: number;
  close(): void;
}

export interface InformerOptions<T> {
  /** Turns an object from the API into what the cache holds (e.g. a parsed, validated spec). */
  transform: (o: KubeObject) => T;
  onError?: (what: string, e: Error) => void;
  /** Longest pause between failed attempts. */
  maxBackoffMs?: number;
}

const WATCH_SECONDS = 300;

export const keyOf = (o: KubeObject): string =>
  o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;

/** path: a collection, e.g. /api/v1/pods?fieldSelector=spec.nodeName%3Dn1 */
export function createInformer<T>(
  client: KubeClient,
  path: string,
  o: InformerOptions<T>,
): Informer<T> {
  const items = new Map<string, T>();
  let closed = false;
  let hasSynced = false;
  let revision = 0;
  let stopWatch: (() => void) | undefined;
  let wake: (() => void) | undefined;
  const waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const sep = path.includes('?') ? '&' : '?';
  const maxBackoff = o.maxBackoffMs ?? 5000;

  const put = (obj: KubeObject) => {
    revision++;
    try {
      items.set(keyOf(obj), o.transform(obj));
    } catch (e) {
      // Kept out of the cache; a user of the object gets "unknown" and the log says why.
      items.delete(keyOf(obj));
      o.onError?.(`${path}: ${keyOf(obj)}`, e as Error);
    }
  };

  const sleep = (ms: number) =>
    new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      wake = () => (clearTimeout(t), r());
    });

  async function list(): Promise<string> {
    const res = await client.request<{
      metadata?: { resourceVersion?: string };
      items?: KubeObject[];
      message?: string;
    }>({ method: 'GET', path });
    revision++;
    if (res.status === 404) {
      items.clear();
      return '';
    }
    if (res.status >= 400)
      throw new Error(`list ${path}: ${res.status} ${res.body?.message ?? ''}`.trim());
    items.clear();
    for (const obj of res.body.items ?? []) put(obj);
    return res.body.metadata?.resourceVersion ?? '';
  }

  /** Watches from rv until the stream ends; returns the last version seen, '' on 410. */
  async function watchFrom(rv: string): Promise<string> {
    let last = rv;
    let gone = false;
    const w = client.watch(
      `${path}${sep}watch=1&allowWatchBookmarks=true&timeoutSeconds=${WATCH_SECONDS}&resourceVersion=${encodeURIComponent(rv)}`,
      (e: WatchEvent) => {
        if (e.type === 'ERROR') {
          gone = true; // 410 Gone, or another watch error: list again
          return;
        }
        const obj = e.object as KubeObject;
        if (obj.metadata?.resourceVersion) last = obj.metadata.resourceVersion;
        if (e.type === 'ADDED' || e.type === 'MODIFIED') put(obj);
        else if (e.type === 'DELETED') {
          revision++;
          items.delete(keyOf(obj));
        }
      },
    );
    stopWatch = w.stop;
    try {
      await w.done;
    } finally {
      stopWatch = undefined;
    }
    return gone ? '' : last;
  }

  void (async () => {
    let failures = 0;
    let rv = '';
    while (!closed) {
      try {
        if (rv === '') {
          rv = await list();
          if (!hasSynced) {
            hasSynced = true;
            for (const w of waiters.splice(0)) w.resolve();
          }
          // A missing resource: look again later rather than watch a 404.
          if (rv === '') {
            await sleep(maxBackoff * 6);
            continue;
          }
        }
        const t0 = Date.now();
        rv = await watchFrom(rv);
        failures = 0;
        // A server that ends watches at once must not turn this into a busy loop.
        if (Date.now() - t0 < 1000 && !closed) await sleep(Math.min(1000, maxBackoff));
      } catch (e) {
        if (closed) break;
        o.onError?.(path, e as Error);
        rv = '';
        failures++;
        await sleep(Math.min(maxBackoff, 100 * 2 ** Math.min(failures, 10)));
      }
    }
  })();

  return {
    get: (key) => items.get(key),
    values: () => items.values(),
    get hasSynced() {
      return hasSynced;
    },
    get revision() {
      return revision;
    },
    synced: () =>
      hasSynced
        ? Promise.resolve()
        : new Promise((resolve, reject) => waiters.push({ resolve, reject })),
    close() {
      closed = true;
      stopWatch?.();
      wake?.();
      for (const w of waiters.splice(0)) w.reject(new Error(`informer ${path} closed`));
    },
  };
}
