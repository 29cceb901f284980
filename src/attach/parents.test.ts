// Parent records written before settings were kept (an upgraded node): what acquire does
// with them, on the fake kernel.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFakeKernel, type FakeKernel } from '../kernel/fake.js';
import { API_VERSION, type Network, type NetworkSpec } from '../network/schema.js';
import { HOST } from '../kernel/types.js';
import { openHostState, type HostState } from './host-state.js';
import { acquireParents, planParents } from './parents.js';
import type { AttachmentRecord } from './records.js';

let dir: string;
let k: FakeKernel;
let state: HostState;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tt-parents-'));
  k = createFakeKernel(['lo', 'eth1']);
  state = await openHostState(dir);
});
afterEach(() => {
  try {
    state.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const net = (name: string, spec: NetworkSpec): Network => ({
  apiVersion: API_VERSION,
  kind: 'ClusterNetwork',
  metadata: { name },
  spec,
});
const onBr = (vlan: number) =>
  net(`v${vlan}`, { type: 'bridge', bridge: 'br-data', device: 'eth1', vlan });

/** What an older version left: the links, records without settings, one pod per network. */
async function upgradedNode(vlans: number[]) {
  for (const [i, vlan] of vlans.entries()) {
    const plans = planParents(onBr(vlan));
    for (const p of plans)
      if (!(await k.linkExists(p.name))) await k.apply(HOST, await p.create(k));
    const user = `c${i}/net1`;
    for (const p of plans) {
      const rec = state.getParent(p.name) ?? {
        name: p.name,
        kind: p.kind,
        external: false,
        users: [],
      };
      state.putParent({ ...rec, users: [...rec.users, user] });
    }
    const att: AttachmentRecord = {
      containerId: `c${i}`,
      ifname: 'eth0',
      netns: `/ns${i}`,
      cniVersion: '1.1.0',
      node: 'n1',
      created: new Date(0).toISOString(),
      interfaces: [
        {
          ifname: 'net1',
          network: `v${vlan}`,
          spec: onBr(vlan).spec,
          state: 'ready',
          parents: plans.map((p) => p.name),
          allocations: [],
          rules: [],
          routes: [],
        },
      ],
    };
    state.putAttachment(att);
  }
}
const masterOf = async (name: string) =>
  (await k.links(HOST)).find((l) => l.ifname === name)?.master;

describe('a parent record from before settings were kept', () => {
  it('takes its settings from its users when they agree, and checks against them', async () => {
    await upgradedNode([100]);
    await acquireParents(k, state, planParents(onBr(100)), 'c9/net1');
    expect(state.getParent('br-data')?.settings).toBe('a bridge with eth1.100 in it');
    await expect(acquireParents(k, state, planParents(onBr(200)), 'c8/net1')).rejects.toThrow(
      /host link br-data is in use as a bridge with eth1.100 in it/,
    );
  });

  it('is neither checked nor changed when its users disagree (two VLANs on one bridge before)', async () => {
    await upgradedNode([100, 200]);
    // The old code never put the second VLAN in the bridge; the new one must not either.
    expect(await masterOf('eth1.200')).toBeUndefined();
    await acquireParents(k, state, planParents(onBr(200)), 'c9/net1');
    expect(await masterOf('eth1.200')).toBeUndefined();
    expect(await masterOf('eth1.100')).toBe('br-data');
    expect(state.getParent('br-data')?.settings).toBeUndefined();
  });
});
