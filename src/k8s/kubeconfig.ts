// Reads the parts of a kubeconfig tartanctl needs: the current context's server, CA and
// client credentials (inline data or files, or a bearer token).
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import type { KubeConnection } from './client.js';

interface Named<T> {
  name: string;
  [k: string]: unknown;
  value?: T;
}

type Cfg = {
  'current-context'?: string;
  contexts?: Array<Named<never> & { context?: { cluster?: string; user?: string } }>;
  clusters?: Array<Named<never> & { cluster?: Record<string, string> }>;
  users?: Array<Named<never> & { user?: Record<string, string> }>;
};

export function loadKubeconfig(path: string): KubeConnection {
  const cfg = parse(readFileSync(path, 'utf8')) as Cfg;
  // As kubectl: a context, cluster or user that is named must exist. Falling back to the
  // first one would send one cluster's credentials to another, or act on the wrong cluster.
  const named = <T extends { name?: string }>(
    list: T[] | undefined,
    name: string,
    what: string,
  ) => {
    const found = list?.find((x) => x.name === name);
    if (!found) throw new Error(`${path}: no ${what} named "${name}"`);
    return found;
  };
  const current = cfg['current-context'];
  const ctx = current ? named(cfg.contexts, current, 'context') : cfg.contexts?.[0];
  const cluster = ctx?.context?.cluster
    ? named(cfg.clusters, ctx.context.cluster, 'cluster')
    : cfg.clusters?.[0];
  const user = ctx?.context?.user ? named(cfg.users, ctx.context.user, 'user') : cfg.users?.[0];
  const c = cluster?.cluster ?? {};
  const u = user?.user ?? {};
  const base = dirname(path);
  const pem = (data?: string, file?: string) =>
    data
      ? Buffer.from(data, 'base64').toString('utf8')
      : file
        ? readFileSync(resolve(base, file), 'utf8')
        : undefined;
  const server = c.server;
  const ca = pem(c['certificate-authority-data'], c['certificate-authority']);
  if (!server || !ca)
    throw new Error(`kubeconfig ${path}: the current context needs a server and a CA`);
  const cert = pem(u['client-certificate-data'], u['client-certificate']);
  const key = pem(u['client-key-data'], u['client-key']);
  return {
    url: server,
    ca,
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(u.token ? { token: u.token } : {}),
  };
}
