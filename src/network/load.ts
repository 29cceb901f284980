import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { TartanError } from '../cni/errors.js';
import { NetworkSchema, type Network } from './schema.js';
import { validateNetwork } from './validate.js';

/** Parses one network object; the message names the file and the field at fault. */
export function parseNetwork(raw: unknown, source: string): Network {
  const r = NetworkSchema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new TartanError('ERR_CONFIG', `invalid network in ${source}: ${issues.join('; ')}`);
  }
  validateNetwork(r.data, source);
  return r.data;
}

/** Loads every *.yaml, *.yml and *.json file of a directory; a file may hold several documents. */
export async function loadNetworks(dir: string): Promise<Map<string, Network>> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => /\.(ya?ml|json)$/.test(n)).sort();
  } catch (e) {
    throw new TartanError('ERR_CONFIG', `cannot read networks directory ${dir}`, { cause: e });
  }
  const out = new Map<string, Network>();
  for (const name of names) {
    const file = join(dir, name);
    const text = await readFile(file, 'utf8');
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
