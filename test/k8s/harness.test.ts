// The control-plane harness itself: the version built, the certificates and kubeconfig
// it hands out, RBAC really on, clean stop by PID, and a loud failure without the binary.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { createKubeClient } from '../../src/k8s/client.js';
import { startKube } from '../harness/kube.js';

const ROOT = resolve(import.meta.dirname, '../..');
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('startKube', () => {
  it('serves the pinned version over TLS with client certificates, and stops cleanly', async () => {
    const kube = await startKube();
    const dir = dirname(kube.kubeconfigPath);
    const etcdPid = kube.etcd.pid;
    try {
      expect(kube.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const admin = kube.client();
      const v = await admin.must<{ gitVersion: string }>({ method: 'GET', path: '/version' });
      const pinned = (await readFile(join(ROOT, 'scripts/build-kube.sh'), 'utf8')).match(
        /KUBE_VERSION:-(v[\d.]+)/,
      )![1];
      expect(v.gitVersion).toBe(pinned);
      // The kubeconfig carries the same credentials.
      const cfg = parse(await readFile(kube.kubeconfigPath, 'utf8')) as {
        clusters: { cluster: { server: string; 'certificate-authority-data': string } }[];
        users: { user: { 'client-certificate-data': string; 'client-key-data': string } }[];
      };
      const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');
      const fromCfg = createKubeClient({
        url: cfg.clusters[0]!.cluster.server,
        ca: b64(cfg.clusters[0]!.cluster['certificate-authority-data']),
        cert: b64(cfg.users[0]!.user['client-certificate-data']),
        key: b64(cfg.users[0]!.user['client-key-data']),
      });
      expect(
        (await fromCfg.request({ method: 'GET', path: '/api/v1/namespaces/default' })).status,
      ).toBe(200);
      fromCfg.close();
      // Without a client certificate the caller is anonymous, and RBAC refuses it.
      const anon = await fetch(`${kube.url}/api/v1/namespaces`).catch((e: Error) => e);
      expect(anon).toBeInstanceOf(Error); // self-signed CA: refused before HTTP even starts
      const someone = admin.impersonate('someone');
      expect((await someone.request({ method: 'GET', path: '/api/v1/namespaces' })).status).toBe(
        403,
      );
    } finally {
      await kube.stop();
    }
    expect(alive(kube.pid)).toBe(false);
    expect(alive(etcdPid)).toBe(false);
    expect(existsSync(dir)).toBe(false);
  });

  it('fails loudly, naming the build script, when the binary is missing', async () => {
    await expect(startKube({ bin: '/nonexistent/kube-apiserver' })).rejects.toThrow(
      'kube-apiserver not built: run "bash scripts/build-kube.sh" (no /nonexistent/kube-apiserver)',
    );
  });
});
