// Writes deploy/crds/*.yaml from src/k8s/crds.ts and deploy/webhooks.yaml from
// src/controller/registration.ts (tests fail when they drift):
//   npx vite-node test/k8s/gen-deploy.ts
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { webhookConfigurations } from '../../src/controller/registration.js';
import { npwgCrds, tartanCrds } from '../../src/k8s/crds.js';

const deploy = join(resolve(import.meta.dirname, '../..'), 'deploy');
const dir = join(deploy, 'crds');
const header = (what: string) =>
  `# ${what}\n# Generated from src/k8s/crds.ts by test/k8s/gen-deploy.ts: edit that, not this file.\n`;
const yaml = (docs: unknown[]) =>
  docs.map((d) => '---\n' + stringify(d, { lineWidth: 0, aliasDuplicateObjects: false })).join('');
await writeFile(
  join(dir, 'tartan.yaml'),
  header('Tartan CRDs (tartan.io/v1alpha1)') + yaml(tartanCrds()),
);
await writeFile(
  join(dir, 'npwg.yaml'),
  header('Network Plumbing WG CRDs: apply only where the cluster lacks them (e.g. no Multus)') +
    yaml(npwgCrds()),
);
const hooks = webhookConfigurations(
  { service: { namespace: 'tartan-system', name: 'tartan-webhook' } },
  '',
);
await writeFile(
  join(deploy, 'webhooks.yaml'),
  `# Tartan's admission webhooks (fail closed). The controller fills in caBundle from the CA of
# its serving certificate (ca.crt in the tartan-webhook-tls Secret) at start-up.
# Generated from src/controller/registration.ts by test/k8s/gen-deploy.ts.
` + yaml([hooks.validating, hooks.mutating]),
);
