// kubeconfig: the context, cluster and user it names, or an error (as kubectl), never another.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { loadKubeconfig } from './kubeconfig.js';

let dir = '';
let n = 0;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'tartan-unit-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const write = (text: string) => {
  const file = join(dir, `kubeconfig-${n++}`);
  writeFileSync(file, text);
  return file;
};

const config = (current: string, cluster: string) => `
apiVersion: v1
kind: Config
current-context: ${current}
clusters:
  - name: lab
    cluster: { server: https://lab.example:6443, certificate-authority-data: bGFiLWNh }
  - name: prod-eu
    cluster: { server: https://prod.example:6443, certificate-authority-data: cHJvZC1jYQ== }
users:
  - name: lab-user
    user: { token: lab-token }
  - name: prod-user
    user: { token: prod-token }
contexts:
  - name: lab
    context: { cluster: lab, user: lab-user }
  - name: prod
    context: { cluster: ${cluster}, user: prod-user }
`;

it('uses the current context, its cluster and its user', () => {
  const c = loadKubeconfig(write(config('prod', 'prod-eu')));
  expect(c).toMatchObject({ url: 'https://prod.example:6443', token: 'prod-token', ca: 'prod-ca' });
});

it('refuses a context, cluster or user that is named but missing', () => {
  // prod's cluster is misspelt: the first cluster (lab) must not get prod's token.
  expect(() => loadKubeconfig(write(config('prod', 'prod-us')))).toThrow(
    /no cluster named "prod-us"/,
  );
  expect(() => loadKubeconfig(write(config('staging', 'prod-eu')))).toThrow(
    /no context named "staging"/,
  );
});
