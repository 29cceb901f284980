// The agent's two listeners: the CNI socket for the shim, and HTTP for probes and metrics.
//
// The socket is root-only by filesystem permissions: its directory is 0700 and the socket
// 0600, both owned by root, and it is created under umask 077 so there is no moment at
// which it is open wider. Node has no API for SO_PEERCRED, so the peer's uid is not
// checked again per connection; the directory alone already stops any non-root process
// (connect(2) needs search permission on it), which the test tier proves.
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from './log.js';
import { MAX_REQUEST, type WireRequest, type WireResponse } from './wire.js';

export async function serveSocket(
  path: string,
  handle: (req: WireRequest) => Promise<WireResponse>,
  log: Logger,
): Promise<Server> {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  if (existsSync(path)) {
    if (await answers(path)) throw new Error(`another agent is serving ${path}`);
    unlinkSync(path); // left by an agent that was killed
  }
  const server = createServer({ allowHalfOpen: true }, (sock) => {
    const chunks: Buffer[] = [];
    let size = 0;
    sock.on('error', () => sock.destroy());
    sock.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_REQUEST) {
        log.warn('request over the size limit, connection closed', { bytes: size });
        sock.destroy();
        return;
      }
      chunks.push(d);
    });
    sock.on('end', () => {
      let req: WireRequest;
      try {
        req = JSON.parse(Buffer.concat(chunks).toString('utf8')) as WireRequest;
        if (typeof req !== 'object' || req === null || typeof req.stdin !== 'string')
          throw new Error('not a request object');
        if (typeof req.env !== 'object' || req.env === null) throw new Error('no env');
      } catch (e) {
        log.warn('malformed request, connection closed', { error: (e as Error).message });
        sock.destroy();
        return;
      }
      // The work goes on if the shim has gone meanwhile (killed by the runtime's timeout):
      // stopping half way would leave more to undo than finishing.
      void handle(req).then((r) => {
        if (!sock.destroyed) sock.end(JSON.stringify(r));
      });
    });
  });
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
