import { afterEach, describe, expect, it } from 'vitest';
import type { KubeClient, KubeRequest, KubeResponse, WatchEvent } from './client.js';
import { createInformer, type Informer, type KubeObject } from './informer.js';

/** A client whose lists answer from `lists` in turn and whose watches the test drives. */
function scripted(lists: Array<KubeResponse | Error>) {
  const paths: string[] = [];
  const watches: Array<{
    path: string;
    emit(e: WatchEvent): void;
    end(): void;
    fail(e: Error): void;
  }> = [];
  const client = {
    url: 'https://api.test',
    async request<T>(req: KubeRequest): Promise<KubeResponse<T>> {
      paths.push(req.path);
      const next = lists.shift();
      if (!next) return new Promise(() => {}); // no more lists: hang (the test is over)
      if (next instanceof Error) throw next;
      return next as KubeResponse<T>;
    },
    watch(path: string, onEvent: (e: WatchEvent) => void) {
      let settle: { resolve: () => void; reject: (e: Error) => void } | undefined;
      const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
      watches.push({
        path,
        emit: onEvent,
        end: () => settle!.resolve(),
        fail: (e) => settle!.reject(e),
      });
      return { done, stop: () => settle!.resolve() };
    },
  } as unknown as KubeClient;
  return { client, paths, watches };
}

const obj = (name: string, rv: string, spec = 1): KubeObject & { spec: number } => ({
  metadata: { name, namespace: 'ns', resourceVersion: rv },
  spec,
});
const list = (rv: string, items: KubeObject[]): KubeResponse => ({
  status: 200,
  body: { metadata: { resourceVersion: rv }, items },
});

const until = async (ok: () => boolean) => {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(ok()).toBe(true);
};

let inf: Informer<{ spec: number }> | undefined;
afterEach(() => inf?.close());

const open = (client: KubeClient, errors: string[] = []) =>
  (inf = createInformer(client, '/apis/x/v1/things', {
    transform: (o) => ({ spec: (o as unknown as { spec: number }).spec }),
    onError: (what, e) => errors.push(`${what}: ${e.message}`),
    maxBackoffMs: 10,
  }));

describe('informer', () => {
  it('lists, then applies watch events from the listed version', async () => {
    const s = scripted([list('10', [obj('a', '9'), obj('b', '10')])]);
    const i = open(s.client);
    await i.synced();
    expect([...i.values()]).toHaveLength(2);
    await until(() => s.watches.length === 1);
    expect(s.watches[0]!.path).toMatch(/[?&]watch=1&.*resourceVersion=10$/);
    const r0 = i.revision;
    s.watches[0]!.emit({ type: 'MODIFIED', object: obj('a', '11', 2) });
    s.watches[0]!.emit({ type: 'DELETED', object: obj('b', '12') });
    s.watches[0]!.emit({ type: 'ADDED', object: obj('c', '13') });
    expect(i.get('ns/a')).toEqual({ spec: 2 });
    expect(i.get('ns/b')).toBeUndefined();
    expect(i.get('ns/c')).toEqual({ spec: 1 });
    expect(i.revision).toBeGreaterThan(r0);
    // The server ends the watch: the next one starts from the last version seen.
    s.watches[0]!.end();
    await until(() => s.watches.length === 2);
    expect(s.watches[1]!.path).toMatch(/resourceVersion=13$/);
  });

  it('lists again after 410 Gone, and the new list replaces the cache', async () => {
    const s = scripted([list('10', [obj('a', '9'), obj('b', '10')]), list('50', [obj('a', '40')])]);
    const i = open(s.client);
    await i.synced();
    await until(() => s.watches.length === 1);
    s.watches[0]!.emit({ type: 'ERROR', object: { code: 410, reason: 'Expired' } });
    s.watches[0]!.end();
    await until(() => s.watches.length === 2);
    expect(s.paths).toHaveLength(2);
    expect([...i.values()]).toHaveLength(1);
    expect(s.watches[1]!.path).toMatch(/resourceVersion=50$/);
  });

  it('keeps the cache through failures, reports them, and lists again', async () => {
    const errors: string[] = [];
    const s = scripted([
      new Error('connection refused'),
      { status: 503, body: { message: 'starting' } },
      list('10', [obj('a', '9')]),
      list('20', [obj('a', '19', 3)]),
    ]);
    const i = open(s.client, errors);
    await i.synced();
    expect(errors).toEqual([
      '/apis/x/v1/things: connection refused',
      '/apis/x/v1/things: list /apis/x/v1/things: 503 starting',
    ]);
    await until(() => s.watches.length === 1);
    s.watches[0]!.fail(new Error('socket hang up'));
    // While it lists again the last known state still answers.
    expect(i.get('ns/a')).toEqual({ spec: 1 });
    await until(() => i.get('ns/a')?.spec === 3);
    expect(errors.at(-1)).toMatch(/socket hang up/);
  });

  it('treats a missing resource (404, CRD not installed) as empty, and a bad object as absent', async () => {
    const errors: string[] = [];
    const s = scripted([{ status: 404, body: {} }]);
    const i = open(s.client, errors);
    await i.synced();
    expect([...i.values()]).toEqual([]);

    const t = scripted([list('5', [obj('good', '4'), obj('bad', '5')])]);
    inf = createInformer(t.client, '/things', {
      transform: (o) => {
        if (o.metadata.name === 'bad') throw new Error('spec.mtu: too small');
        return { spec: 1 };
      },
      onError: (what, e) => errors.push(`${what}: ${e.message}`),
      maxBackoffMs: 10,
    });
    await inf.synced();
    expect(inf.get('ns/good')).toEqual({ spec: 1 });
    expect(inf.get('ns/bad')).toBeUndefined();
    expect(errors).toEqual(['/things: ns/bad: spec.mtu: too small']);
  });

  it('rejects synced() when closed before the first list', async () => {
    const s = scripted([]);
    const i = open(s.client);
    const p = i.synced();
    i.close();
    await expect(p).rejects.toThrow(/closed/);
  });
});
