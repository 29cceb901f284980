// Control: the real kubelet + containerd CRI + reference bridge/host-local conflist, no
// Tartan. If this fails, the cluster harness is at fault, not Tartan.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCniBinDir } from '../harness/clients/containerd.js';
import { addrsIn, ipv4Of, linkDel, mkTmp, pingFrom, removeDir } from '../harness/clients/util.js';
import { CLUSTER_TIMEOUT_MS, startCluster, type Cluster } from '../harness/kubelet.js';

const NS = 'tt-e2e-control';

describe('e2e control: kubelet + containerd + reference bridge', () => {
  let dir = '';
  let cluster: Cluster | undefined;
  const bridge = `tt-e2e-cbr${process.pid % 10000}`;

  beforeAll(async () => {
    dir = mkTmp('tartan-e2e-ctl-');
    const confDir = join(dir, 'net.d');
    mkdirSync(confDir);
    writeFileSync(
      join(confDir, '10-ref.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'tt-e2e-ref',
        plugins: [
          {
            type: 'bridge',
            bridge,
            isGateway: false,
            ipam: {
              type: 'host-local',
              ranges: [[{ subnet: '10.87.1.0/24' }]],
              dataDir: join(dir, 'ipam'),
            },
          },
        ],
      }),
    );
    cluster = await startCluster({
      cniBinDir: makeCniBinDir(join(dir, 'bin')),
      cniConfDir: confDir,
    });
    await cluster.namespace(NS);
  }, CLUSTER_TIMEOUT_MS);

  afterAll(async () => {
    try {
      await cluster?.stop();
    } finally {
      await linkDel(bridge);
      if (dir) removeDir(dir);
    }
  }, CLUSTER_TIMEOUT_MS);

  it('two pods become Running with an IP from the bridge and reach each other', async () => {
    const c = cluster!;
    for (const n of ['a', 'b']) await c.createPod(NS, { metadata: { name: `tt-e2e-${n}` } });
    const a = await c.waitPodRunning(NS, 'tt-e2e-a');
    const b = await c.waitPodRunning(NS, 'tt-e2e-b');
    expect(a.status?.podIP).toMatch(/^10\.87\.1\.\d+$/);
    expect(b.status?.podIP).toMatch(/^10\.87\.1\.\d+$/);
    const sa = await c.sandbox(a);
    expect(ipv4Of(await addrsIn(sa.netns), 'eth0')).toEqual([`${a.status!.podIP}/24`]);
    const ping = await pingFrom(sa.netns, b.status!.podIP!);
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    for (const n of ['a', 'b']) await c.deletePod(NS, `tt-e2e-${n}`);
  });
});
