// The repository's deploy/ manifests applied to a test API server, as an operator would.
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { applyManifests } from '../../src/k8s/apply.js';
import type { KubeClient } from '../../src/k8s/client.js';

export const DEPLOY_DIR = resolve(import.meta.dirname, '../../deploy');

/** Every document of a YAML file, as plain objects. */
export async function yamlDocs(path: string): Promise<unknown[]> {
  return parseAllDocuments(await readFile(path, 'utf8')).map((d) => d.toJS() as unknown);
}

/** deploy/rbac/*.yaml: the namespace first, then the service accounts and their roles. */
export async function applyDeployRbac(client: KubeClient): Promise<void> {
  const dir = join(DEPLOY_DIR, 'rbac');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml') && f !== 'namespace.yaml');
  await applyManifests(client, await yamlDocs(join(dir, 'namespace.yaml')));
  for (const f of files.sort()) await applyManifests(client, await yamlDocs(join(dir, f)));
}
