import {
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
  type Stats,
} from 'node:fs';
import { join } from 'node:path';
import { TartanError } from '../cni/errors.js';
import type { Network } from './schema.js';

/** Set by scripts/build.mjs for each build of a program; tests run unbuilt. */
const BUILD = process.env.TARTAN_BUILD_ID ?? 'unbuilt';

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
    throw new TartanError('ERR_CONFIG', `cannot read networks directory ${dir}: ${why(e)}`, {
      cause: e,
    });
  }
  let sig = '';
  if (cacheFile) {
    const stats = names.map((n) => fileStat(join(dir, n)));
    // The build is part of it: another build may accept less (a newer schema), and a file
    // it would refuse must not live on in a cache an older build wrote.
    sig = JSON.stringify([BUILD, dir, names.map((n, i) => [n, stats[i]!.size, stats[i]!.mtimeMs])]);
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
    // Not read blindly: a FIFO or a device named *.yaml would block or never end.
    fileStat(file);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new TartanError('ERR_CONFIG', `cannot read network file ${file}: ${why(e)}`, {
        cause: e,
      });
    }
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length > 0)
        throw new TartanError('ERR_CONFIG', `cannot parse ${file}: ${doc.errors[0]?.message}`);
      let raw: unknown;
      try {
        // Throws for what only shows when resolved: too many aliases (an alias bomb).
        raw = doc.toJS();
      } catch (e) {
        throw new TartanError('ERR_CONFIG', `cannot parse ${file}: ${(e as Error).message}`, {
          cause: e,
        });
      }
      if (raw === null || raw === undefined) continue;
      const net = parseNetwork(raw, file);
      if (out.has(net.metadata.name))
        throw new TartanError('ERR_CONFIG', `network ${net.metadata.name} defined twice (${file})`);
      out.set(net.metadata.name, net);
    }
  }
  return out;
}

/** A network file's stat; one that cannot be reached, or is not a regular file, is named. */
function fileStat(file: string): Stats {
  let st: Stats;
  try {
    st = statSync(file);
  } catch (e) {
    throw new TartanError('ERR_CONFIG', `cannot read network file ${file}: ${why(e)}`, {
      cause: e,
    });
  }
  if (!st.isFile())
    throw new TartanError(
      'ERR_CONFIG',
      `cannot read network file ${file}: ${st.isDirectory() ? 'it is a directory' : 'it is not a regular file'}`,
    );
  return st;
}

/** Why a file system call failed, in words (the path is in the message around it). */
function why(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ENOENT':
      return 'it does not exist (or is a symbolic link to nothing)';
    case 'ENOTDIR':
      return 'it is not a directory';
    case 'EISDIR':
      return 'it is a directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ELOOP':
      return 'too many levels of symbolic links';
    default:
      return e instanceof Error ? e.message : String(e);
  }
}
