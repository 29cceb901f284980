// A small Kubernetes REST client over node:https with client certificates.
// Why not @kubernetes/client-node: Tartan needs a handful of verbs on a few resources
// (get, list, create, replace, merge-patch, delete with preconditions) and exact control
// of status codes for compare-and-swap; the generated client pulls in ~40 packages and
// hides 409 vs 404. See docs/adr/0005-kubernetes-test-control-plane.md.
import { readFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { TartanError } from '../cni/errors.js';

export interface KubeConnection {
  /** https://host:port of the API server. */
  url: string;
  /** PEM: the CA that signed the API server's serving certificate. */
  ca: string;
  /** PEM: client certificate and key (tests, kubeconfigs with certificates). */
  cert?: string;
  key?: string;
  /** Bearer token, e.g. a projected service-account token; a function is asked per request
   * because kubelet rotates the token file. */
  token?: string | (() => string);
  /** Per-request deadline; an agent must fail in bounded time when the API is away. */
  timeoutMs?: number;
}

export interface KubeRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  body?: unknown;
  /** Content type for PATCH; default merge-patch. */
  patchType?: 'merge' | 'json' | 'strategic';
  /** Extra headers, e.g. Impersonate-User. */
  headers?: Record<string, string>;
}

export interface KubeResponse<T = unknown> {
  status: number;
  body: T;
}

/** The API server's Status object, as returned with every failure. */
export interface KubeStatus {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
}

export interface KubeClient {
  readonly url: string;
  request<T = unknown>(req: KubeRequest): Promise<KubeResponse<T>>;
  /** Like request, but any status >= 400 becomes an ERR_STORE TartanError with the API's message. */
  must<T = unknown>(req: KubeRequest): Promise<T>;
  /**
   * A watch (GET path with watch=1): calls onEvent per event until the server ends the
   * stream (resolves), the connection fails (rejects) or stop() is called (resolves).
   * A status >= 400 rejects with the API's message, its details the HTTP status.
   */
  watch(path: string, onEvent: (e: WatchEvent) => void): { done: Promise<void>; stop(): void };
  /** A client with the same connection that impersonates user (and groups). */
  impersonate(user: string, groups?: string[]): KubeClient;
  close(): void;
}

export interface WatchEvent<T = unknown> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

const PATCH_TYPES = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
} as const;

const DEFAULT_TIMEOUT_MS = 15_000;
const WATCH_IDLE_MS = 150_000;

export function createKubeClient(conn: KubeConnection): KubeClient {
  // keepAlive: every store operation is one request; a new TLS handshake each time would
  // cost more than the request itself.
  const agent = new Agent({
    ca: conn.ca,
    ...(conn.cert ? { cert: conn.cert, key: conn.key } : {}),
    keepAlive: true,
    maxSockets: 32,
  });
  const base = new URL(conn.url);
  const timeoutMs = conn.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const token = conn.token;
  const auth =
    token === undefined
      ? undefined
      : () => `Bearer ${typeof token === 'function' ? token() : token}`;
  return clientWith(agent, base, timeoutMs, {}, auth);
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The connection of a pod: KUBERNETES_SERVICE_HOST/PORT and its service-account token. */
export function inClusterConnection(dir = SA_DIR): KubeConnection {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host)
    throw new TartanError('ERR_CONFIG', 'not in a cluster: KUBERNETES_SERVICE_HOST is not set');
  let cached = { at: 0, token: '' };
  return {
    url: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readFileSync(`${dir}/ca.crt`, 'utf8'),
    // Re-read at most once a minute: kubelet refreshes the file well before expiry.
    token: () => {
      if (Date.now() - cached.at > 60_000)
        cached = { at: Date.now(), token: readFileSync(`${dir}/token`, 'utf8').trim() };
      return cached.token;
    },
  };
}

function clientWith(
  agent: Agent,
  base: URL,
  timeoutMs: number,
  extraHeaders: Record<string, string>,
  auth?: () => string,
): KubeClient {
  const request = <T>(req: KubeRequest): Promise<KubeResponse<T>> =>
    new Promise((resolve, reject) => {
      const payload = req.body === undefined ? undefined : JSON.stringify(req.body);
      const headers: Record<string, string> = { accept: 'application/json', ...extraHeaders };
      if (auth) headers.authorization = auth();
      if (payload !== undefined) {
        headers['content-type'] =
          req.method === 'PATCH' ? PATCH_TYPES[req.patchType ?? 'merge'] : 'application/json';
        headers['content-length'] = String(Buffer.byteLength(payload));
      }
      Object.assign(headers, req.headers);
      const r = httpsRequest(
        {
          agent,
          protocol: base.protocol,
          hostname: base.hostname,
          port: base.port,
          method: req.method,
          path: req.path,
          headers,
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => reject(transport(base, req, e)));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let body: unknown = text;
            try {
              body = text === '' ? undefined : JSON.parse(text);
            } catch {
              // Not JSON (e.g. a plain-text /readyz answer): hand back the text.
            }
            resolve({ status: res.statusCode ?? 0, body: body as T });
          });
        },
      );
      r.on('timeout', () => r.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      r.on('error', (e) => reject(transport(base, req, e)));
      r.end(payload);
    });

  const watch = (path: string, onEvent: (e: WatchEvent) => void) => {
    let stopped = false;
    let r: ReturnType<typeof httpsRequest> | undefined;
    let finish = () => {};
    const done = new Promise<void>((resolve, reject) => {
      finish = resolve;
      const headers: Record<string, string> = { accept: 'application/json', ...extraHeaders };
      if (auth) headers.authorization = auth();
      const req: KubeRequest = { method: 'GET', path };
      r = httpsRequest(
        {
          agent,
          protocol: base.protocol,
          hostname: base.hostname,
          port: base.port,
          method: 'GET',
          path,
          headers,
          // The server ends a watch after its timeoutSeconds; silence far beyond that means
          // the connection is dead (bookmarks arrive about once a minute).
          timeout: WATCH_IDLE_MS,
        },
        (res) => {
          if ((res.statusCode ?? 0) >= 400) {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              let body: unknown;
              try {
                body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
              } catch {
                body = undefined;
              }
              const status = res.statusCode ?? 0;
              const e = apiError(base, req, { status, body });
              reject(new TartanError('ERR_STORE', e.message, { details: String(status) }));
            });
            return;
          }
          // One JSON object per line (the API server's watch framing).
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            buf += c;
            for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
              const line = buf.slice(0, i).trim();
              buf = buf.slice(i + 1);
              if (line !== '' && !stopped) onEvent(JSON.parse(line) as WatchEvent);
            }
          });
          res.on('end', () => resolve());
          res.on('error', (e) => (stopped ? resolve() : reject(transport(base, req, e))));
        },
      );
      r.on('timeout', () => r!.destroy(new Error(`watch silent for ${WATCH_IDLE_MS} ms`)));
      r.on('error', (e) => (stopped ? resolve() : reject(transport(base, req, e))));
      r.end();
    });
    return {
      done,
      stop() {
        stopped = true;
        r?.destroy();
        finish();
      },
    };
  };

  const client: KubeClient = {
    url: base.origin,
    request,
    watch,
    async must<T>(req: KubeRequest): Promise<T> {
      const res = await request<T>(req);
      if (res.status >= 400) throw apiError(base, req, res);
      return res.body;
    },
    impersonate(user, groups = []) {
      const h: Record<string, string> = { ...extraHeaders, 'Impersonate-User': user };
      // Node joins repeated header values with ", ", which the API server splits again.
      if (groups.length) h['Impersonate-Group'] = groups.join(', ');
      return clientWith(agent, base, timeoutMs, h, auth);
    },
    close: () => agent.destroy(),
  };
  return client;
}

function transport(base: URL, req: KubeRequest, e: Error): TartanError {
  return new TartanError(
    'ERR_STORE',
    `Kubernetes API ${base.origin}: ${req.method} ${req.path}: ${e.message}`,
    { cause: e },
  );
}

export function apiError(base: URL | string, req: KubeRequest, res: KubeResponse): TartanError {
  const origin = typeof base === 'string' ? base : base.origin;
  const st = res.body as KubeStatus | undefined;
  const msg = typeof st === 'object' && st?.message ? st.message : JSON.stringify(res.body);
  return new TartanError(
    'ERR_STORE',
    `Kubernetes API ${origin}: ${req.method} ${req.path}: ${res.status} ${msg}`,
    { details: typeof st === 'object' ? st?.reason : undefined },
  );
}

/** 429, 5xx and 0 (no status): worth another try after a pause. */
export const isTransient = (status: number) => status === 429 || status === 0 || status >= 500;
