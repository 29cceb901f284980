import { readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TartanError } from '../cni/errors.js';
import type { Network } from './schema.js';

/**
 * Loads every *.yaml, *.yml and *.json file of a directory; a file may hold several
 * documents. With a cache file, networks validated before are reused as long as no file
 * changed (name, size, mtime): parsing YAML and validating costs more than the rest of a
 * CNI ADD's user-space work. Synchronous file calls: a handful of small files, and the
 * CNI executable saves node:fs/promises and a thread-pool round trip per call.
 */
export async function loadNetworks(dir: string, cacheFile?: string): Promise<Map<string, Network>> {
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((n) => /\.(ya?ml|json)$/.test(n))
      .sort();
  } catch (e) {
    throw new TartanError('ERR_CONFIG', `cannot read networks directory ${dir}`, { cause: e });
  }
  let sig = '';
  if (cacheFile) {
    const stats = names.map((n) => statSync(join(dir, n)));
    sig = JSON.stringify([dir, names.map((n, i) => [n, stats[i]!.size, stats[i]!.mtimeMs])]);
    try {
      const c = JSON.parse(readFileSync(cacheFile, 'utf8')) as {
        sig: string;
        networks: Network[];
      };
      if (c.sig === sig) return new Map(c.networks.map((n) => [n.metadata.name, n]));
    } catch {
      // no cache or a stale/garbled one: parse the files
    }
  }
  const out = await parseDir(dir, names);
  if (cacheFile) {
    const tmp = `${cacheFile}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify({ sig, networks: [...out.values()] }));
      renameSync(tmp, cacheFile);
    } catch {
      // A cache that cannot be written only costs speed.
    }
  }
  return out;
}

async function parseDir(dir: string, names: string[]): Promise<Map<string, Network>> {
  // Only when the cache misses: the YAML parser and the network schema cost every CNI
  // process that loads them.
  const [{ parseAllDocuments }, { parseNetwork }] = await Promise.all([
    import('yaml'),
    import('./parse.js'),
  ]);
  const out = new Map<string, Network>();
  for (const name of names) {
    const file = join(dir, name);
    const text = readFileSync(file, 'utf8');
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length > 0)
        throw new TartanError('ERR_CONFIG', `cannot parse ${file}: ${doc.errors[0]?.message}`);
      const raw: unknown = doc.toJS();
      if (raw === null || raw === undefined) continue;
      const net = parseNetwork(raw, file);
      if (out.has(net.metadata.name))
        throw new TartanError('ERR_CONFIG', `network ${net.metadata.name} defined twice (${file})`);
      out.set(net.metadata.name, net);
    }
  }
  return out;
}
