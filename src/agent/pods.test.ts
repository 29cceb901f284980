// Publication of a pod's interfaces (network-status, Attachments) against an API that is
// away for a while: an ADD's publication outlasts the clean-up's give-up window.
import { describe, expect, it } from 'vitest';
import type { KubeClient, KubeRequest, KubeResponse } from '../k8s/client.js';
import type { AttachmentRecord } from '../attach/records.js';
import { createLogger } from './log.js';
import { podSync } from './pods.js';

describe('pod publication', () => {
  it("an ADD's Attachments are written when the API comes back, however long it was away", async () => {
    let down = true;
    const posted: string[] = [];
    const request = async (req: KubeRequest): Promise<KubeResponse> => {
      if (down) throw new Error('connect ECONNREFUSED');
      if (req.method === 'POST') posted.push(req.path);
      return { status: req.method === 'POST' ? 201 : 200, body: {} };
    };
    const client = {
      url: 'https://fake',
      request,
      must: async (req: KubeRequest) => (await request(req)).body,
      watch: () => {
        throw new Error('not used');
      },
      impersonate: () => client,
      close: () => {},
    } as unknown as KubeClient;
    const quick = { firstDelayMs: 1, maxDelayMs: 2, giveUpMs: 20 };
    const sync = podSync(client, createLogger({ write: () => {} }), quick);
    const rec: AttachmentRecord = {
      containerId: 'c1',
      ifname: 'eth0',
      netns: '/run/netns/x',
      cniVersion: '1.1.0',
      node: 'n1',
      created: '',
      interfaces: [],
    };
    rec.interfaces.push({
      ifname: 'net1',
      network: 'oam',
      spec: { type: 'macvlan' },
      state: 'ready',
      parents: [],
      allocations: [],
      rules: [],
      routes: [],
    });
    const done = sync.added({ namespace: 'ns', name: 'p', uid: 'u1' }, rec, 'n1');
    // Down for longer than a DEL's clean-up would retry (20 ms here, 10 min by default).
    await new Promise((r) => setTimeout(r, 200));
    expect(posted).toEqual([]);
    down = false;
    await done;
    expect(posted).toEqual(['/apis/tartan.io/v1alpha1/namespaces/ns/attachments']);
  });
});
