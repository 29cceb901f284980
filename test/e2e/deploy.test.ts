// deploy/agent.yaml and deploy/default-network.yaml against the real API server: every
// object passes a server-side dry run (?dryRun=All: defaulting, schema and CRD validation,
// admission, nothing stored), and what the node will run is checked beside it (the
// conflist the init container installs is a valid Tartan shim config, the default network
// a valid delegate network).
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as v from 'valibot';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePluginConfig } from '../../src/cni/config.js';
import { applyManifests, collectionPath, installCrds } from '../../src/k8s/apply.js';
import type { KubeClient } from '../../src/k8s/client.js';
import { NetworkSchema } from '../../src/network/schema.js';
import type { KubeHandle } from '../harness/kube.js';
import { startKubePrivileged } from '../harness/kubelet.js';

const ROOT = resolve(import.meta.dirname, '../..');

interface Doc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  data?: Record<string, string>;
  spec?: Record<string, unknown>;
}

async function docs(file: string): Promise<Doc[]> {
  return parseAllDocuments(await readFile(join(ROOT, file), 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    return d.toJS() as Doc;
  });
}

/** POST ?dryRun=All; ClusterNetwork is not in apply.ts' kind table, so its path is built here. */
function path(d: Doc): string {
  if (d.kind === 'ClusterNetwork') return '/apis/tartan.io/v1alpha1/clusternetworks';
  return collectionPath(d);
}

describe('deploy manifests: server-side dry run on a real kube-apiserver', () => {
  let kube: KubeHandle;
  let admin: KubeClient;

  beforeAll(async () => {
    kube = await startKubePrivileged();
    admin = kube.client();
    await installCrds(admin);
    // The namespace and ServiceAccount really exist (namespaced dry runs need the namespace).
    await applyManifests(admin, await docs('deploy/rbac/namespace.yaml'));
    await applyManifests(admin, await docs('deploy/rbac/agent.yaml'));
  });

  afterAll(async () => {
    await kube?.stop();
  });

  for (const file of ['deploy/agent.yaml', 'deploy/default-network.yaml'])
    it(`${file}: every object is accepted by a dry-run create`, async () => {
      const all = await docs(file);
      expect(all.length).toBeGreaterThan(0);
      for (const d of all) {
        const res = await admin.request({
          method: 'POST',
          path: `${path(d)}?dryRun=All&fieldValidation=Strict`,
          body: d,
        });
        expect(res.status, `${d.kind}/${d.metadata.name}: ${JSON.stringify(res.body)}`).toBe(201);
        // Nothing was stored.
        const get = await admin.request({ method: 'GET', path: `${path(d)}/${d.metadata.name}` });
        expect(get.status).toBe(404);
      }
    });

  it('a bad manifest is refused by the same dry run (the check is real)', async () => {
    const [ds] = (await docs('deploy/agent.yaml')).filter((d) => d.kind === 'DaemonSet');
    const bad = structuredClone(ds!) as Doc & {
      spec: { template: { spec: { volumes: unknown[] } } };
    };
    bad.spec.template.spec.volumes.push({ name: 'cni-bin', emptyDir: {} }); // duplicate name
    const res = await admin.request({ method: 'POST', path: `${path(bad)}?dryRun=All`, body: bad });
    expect(res.status).toBe(422);
    const net = (await docs('deploy/default-network.yaml'))[0]!;
    const badNet = { ...net, spec: { ...net.spec, ipv4: { cidr: '10.0.0.0/24' } } };
    const r2 = await admin.request({
      method: 'POST',
      path: `${path(net)}?dryRun=All`,
      body: badNet,
    });
    expect(r2.status).toBe(422);
  });

  it('the DaemonSet: host network, privileged, the node mounts, install and uninstall hooks', async () => {
    const all = await docs('deploy/agent.yaml');
    type C = {
      name: string;
      command?: string[];
      securityContext?: { privileged?: boolean };
      volumeMounts?: { name: string; mountPath: string; mountPropagation?: string }[];
      lifecycle?: { preStop?: { exec?: { command?: string[] } } };
    };
    const ds = all.find((d) => d.kind === 'DaemonSet') as unknown as {
      spec: {
        template: {
          spec: {
            hostNetwork?: boolean;
            serviceAccountName?: string;
            initContainers: C[];
            containers: C[];
            volumes: { name: string; hostPath?: { path: string } }[];
          };
        };
      };
    };
    const pod = ds.spec.template.spec;
    expect(pod.hostNetwork).toBe(true);
    expect(pod.serviceAccountName).toBe('tartan-agent');
    const agent = pod.containers.find((c) => c.name === 'agent')!;
    expect(agent.securityContext?.privileged).toBe(true);
    const hostPaths = Object.fromEntries(pod.volumes.map((v) => [v.name, v.hostPath?.path]));
    const mounted = new Set(agent.volumeMounts!.map((m) => hostPaths[m.name]));
    for (const p of [
      '/opt/cni/bin',
      '/etc/cni/net.d',
      '/run/tartan',
      '/var/lib/tartan',
      '/run/netns',
    ])
      expect(mounted.has(p), p).toBe(true);
    const netns = agent.volumeMounts!.find((m) => hostPaths[m.name] === '/run/netns')!;
    expect(netns.mountPropagation).toBe('HostToContainer');
    const install = pod.initContainers.find((c) => c.name === 'install-cni')!.command!.join(' ');
    expect(install).toContain('/host/opt/cni/bin/tartan');
    expect(install).toContain('/host/etc/cni/net.d/00-tartan.conflist');
    const preStop = agent.lifecycle?.preStop?.exec?.command?.join(' ') ?? '';
    expect(preStop).toContain(
      'rm -f /host/etc/cni/net.d/00-tartan.conflist /host/opt/cni/bin/tartan',
    );
  });

  it('the installed conflist is a valid shim config naming the default network', async () => {
    const cm = (await docs('deploy/agent.yaml')).find((d) => d.kind === 'ConfigMap')!;
    const text = cm.data!['00-tartan.conflist']!.replace('NODE_NAME', 'node-1');
    const list = JSON.parse(text) as {
      cniVersion: string;
      name: string;
      plugins: Record<string, unknown>[];
    };
    expect(list.plugins).toHaveLength(1);
    const plugin = parsePluginConfig({
      cniVersion: list.cniVersion,
      name: list.name,
      ...list.plugins[0],
    });
    expect(plugin.type).toBe('tartan');
    expect((plugin as Record<string, unknown>).agentSocket).toBe('/run/tartan/agent.sock');
    expect(plugin.nodeName).toBe('node-1');
    const net = v.parse(NetworkSchema, (await docs('deploy/default-network.yaml'))[0]);
    expect(plugin.defaultNetwork).toBe(net.metadata.name);
    expect(net.spec.type).toBe('delegate');
  });
});
