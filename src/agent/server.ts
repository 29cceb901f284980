// The agent's two listeners: the CNI socket for the shim, and HTTP for probes and metrics.
//
// The socket is root-only by filesystem permissions: its directory is 0700 and the socket
// 0600, both owned by root, and it is created under umask 077 so there is no moment at
// which it is open wider. Node has no API for SO_PEERCRED, so the peer's uid is not
// checked again per connection; the directory alone already stops any non-root process
// (connect(2) needs search permission on it), which the test tier proves.
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from './log.js';
import type { ShimPeer } from './peer-kernel.js';
import {
  MAX_REQUEST,
  lineReader,
  type KernelReply,
  isWireRequest,
  type WireRequest,
  type WireResponse,
} from './wire.js';

const REQUEST_TIMEOUT_MS = 10_000;

export async function serveSocket(
  path: string,
  handle: (req: WireRequest, peer: ShimPeer | undefined) => Promise<WireResponse>,
  log: Logger,
): Promise<Server> {
  const dir = dirname(path);
  // Only a directory made here is made private: the socket is 0600 anyway, and an existing
  // one may be /run, which other services need to read.
  if (mkdirSync(dir, { recursive: true, mode: 0o700 }) !== undefined) chmodSync(dir, 0o700);
  if (existsSync(path)) {
    if (await answers(path)) throw new Error(`another agent is serving ${path}`);
    unlinkSync(path); // left by an agent that was killed
  }
  const server = createServer({ allowHalfOpen: true }, (sock) => connection(sock, handle, log));
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(umask);
  }
  chmodSync(path, 0o600);
  return server;
}

/**
 * One shim connection (wire.ts): the request is the first line, or everything up to the
 * shim's half-close (version 1); later lines answer the agent's kernel calls.
 */
function connection(
  sock: Socket,
  handle: (req: WireRequest, peer: ShimPeer | undefined) => Promise<WireResponse>,
  log: Logger,
): void {
  let req: WireRequest | undefined;
  let gone = false;
  // The agent waits for each kernel call's answer before it sends the next.
  const waiting = new Map<number, (r: KernelReply | undefined) => void>();
  const peer: ShimPeer = {
    send(frame) {
      if (gone || sock.destroyed || !sock.writable) return false;
      sock.write(JSON.stringify(frame) + '\n');
      return true;
    },
    reply: (id) =>
      gone ? Promise.resolve(undefined) : new Promise((resolve) => waiting.set(id, resolve)),
  };
  const hangUp = () => {
    gone = true;
    for (const resolve of waiting.values()) resolve(undefined);
    waiting.clear();
  };
  const refuse = (what: string, fields: Record<string, unknown>) => {
    log.warn(`${what}, connection closed`, fields);
    sock.destroy();
    return false;
  };
  const start = (text: string, v1: boolean): boolean => {
    try {
      const r = JSON.parse(text) as unknown;
      if (!isWireRequest(r))
        throw new Error('not a request: {v: integer, env: {name: string}, stdin: string}');
      req = r;
    } catch (e) {
      return refuse('malformed request', { error: (e as Error).message });
    }
    sock.setTimeout(0); // the call's own time is the shim's to bound (agentTimeoutSeconds)
    // The work goes on if the shim has gone meanwhile (killed by the runtime's timeout):
    // stopping half way would leave more to undo than finishing.
    void handle(req, v1 || req.v < 2 ? undefined : peer)
      .catch((e: unknown) => {
        // handle() answers every failure itself; this is a bug, not the caller's: say so.
        log.error('request handling failed', { error: (e as Error).message });
        return { code: 1, stdout: '' };
      })
      .then((r) => {
        if (!sock.destroyed) sock.end(JSON.stringify(r) + '\n');
      });
    return true;
  };
  const lines = lineReader((line) => {
    if (!req) return start(line, false);
    let r: KernelReply;
    try {
      r = JSON.parse(line) as KernelReply;
      if (typeof r !== 'object' || r === null || !Number.isInteger(r.id)) throw new Error('no id');
    } catch (e) {
      return refuse('malformed kernel reply from the shim', { error: (e as Error).message });
    }
    waiting.get(r.id)?.(r);
    waiting.delete(r.id);
    return true;
  });
  // A peer that connects and never finishes its request would hold its socket, and the
  // agent's shutdown, forever; the shim writes its request at once.
  sock.setTimeout(REQUEST_TIMEOUT_MS, () => {
    if (!req) refuse('no request within the time limit', { ms: REQUEST_TIMEOUT_MS });
  });
  sock.on('error', () => sock.destroy());
  sock.on('close', hangUp);
  sock.on('data', (d: Buffer) => {
    if (!sock.destroyed && !lines.push(d))
      refuse('request over the size limit', { limit: MAX_REQUEST });
  });
  sock.on('end', () => {
    const text = lines.rest();
    if (req)
      hangUp(); // a version 2 shim never half-closes before the answer: gone
    else if (text.trim() === '') sock.destroy();
    else start(text, true); // version 1: the request, then a half-close
  });
}

/** Whether something accepts connections on the socket (a live agent). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface HttpRoutes {
  healthz: () => boolean;
  readyz: () => boolean;
  metrics: () => Promise<{ contentType: string; body: string }>;
}

/** address: "host:port", ":port" or an absolute unix socket path. */
export async function serveHttp(
  address: string,
  routes: HttpRoutes,
  log: Logger,
): Promise<HttpServer> {
  const server = createHttpServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const probe = (ok: boolean) => {
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(ok ? 'ok\n' : 'not ready\n');
    };
    if (path === '/healthz') return probe(routes.healthz());
    if (path === '/readyz') return probe(routes.readyz());
    if (path === '/metrics') {
      routes.metrics().then(
        (m) => {
          res.writeHead(200, { 'content-type': m.contentType });
          res.end(m.body);
        },
        (e: Error) => {
          log.warn('metrics collection failed', { error: e.message });
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`${e.message}\n`);
        },
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = () => {
      server.off('error', reject);
      resolve();
    };
    if (address.startsWith('/')) {
      if (existsSync(address)) unlinkSync(address);
      server.listen(address, done);
    } else {
      const i = address.lastIndexOf(':');
      const host = i > 0 ? address.slice(0, i) : undefined;
      const port = Number(address.slice(i + 1));
      if (host) server.listen(port, host, done);
      else server.listen(port, done);
    }
  });
  return server;
}
