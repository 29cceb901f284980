// The agent runs calls for one attachment in the order they reached it, even when the
// earlier one waits for I/O before its turn (in a cluster, reading the pod from the API).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { createFakeKernel } from '../kernel/fake.js';
import { parseNetwork } from '../network/parse.js';
import { Agent } from './agent.js';
import type { ClusterView } from './cluster.js';
import { createLogger } from './log.js';

let dir = '';
afterEach(() => rmSync(dir, { recursive: true, force: true }));

it('runs a DEL after the ADD that arrived before it, though the ADD prepares longer', async () => {
  dir = mkdtempSync(join(tmpdir(), 'tartan-unit-'));
  const k = createFakeKernel(['lo', 'eth1']);
  k.addNetns('/p');
  const mv = parseNetwork(
    {
      apiVersion: 'tartan.io/v1alpha1',
      kind: 'ClusterNetwork',
      metadata: { name: 'mv' },
      spec: { type: 'macvlan', device: 'eth1', ipv4: { cidr: '10.5.0.0/24' } },
    },
    'test',
  );
  const networks = new Map([['mv', mv]]);
  const cluster: ClusterView = {
    networks: async () => networks,
    attachable: async () => networks,
    close: () => undefined,
    synced: async () => undefined,
    // The pod is not in the informer yet: read from the API server, a few ms.
    forPod: async () => {
      await new Promise((r) => setTimeout(r, 30));
      return { networks, requests: [{ network: 'mv' }] };
    },
  };
  const stateDir = join(dir, 'state');
  const store = { type: 'file' as const, path: join(dir, 'ipam.db') };
  const agent = new Agent({
    socket: '',
    stateDir,
    networksDir: join(dir, 'nets'),
    store,
    metricsAddress: '',
    maxConcurrent: 8,
    maxQueue: 100,
    readyTimeoutMs: 1000,
    drainMs: 0,
    reconcileIntervalMs: 60_000,
    pendingIntervalMs: 60_000,
    log: createLogger({ write: () => undefined }),
    kernel: k,
    cluster,
  });
  agent.phase = 'ready';
  const call = (command: string) =>
    agent.handle({
      v: 2,
      env: {
        CNI_COMMAND: command,
        CNI_CONTAINERID: 'c1',
        CNI_NETNS: '/p',
        CNI_IFNAME: 'eth0',
        CNI_PATH: '/usr/lib/cni',
        CNI_ARGS: 'K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p',
      },
      stdin: JSON.stringify({
        cniVersion: '1.1.0',
        name: 'tartan',
        type: 'tartan',
        stateDir,
        store,
      }),
    });
  const [add, del] = await Promise.all([call('ADD'), call('DEL')]);
  expect(add.code, add.stdout).toBe(0);
  expect(del.code, del.stdout).toBe(0);
  // The DEL ran second: it found the ADD's record and removed its link.
  expect(k.ns('/p').links.has('eth0')).toBe(false);
  expect(k.ops.filter((o) => o.t.ns === '/p').map((o) => o.op.op)).toContain('link-del');
});
