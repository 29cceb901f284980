import { describe, expect, it } from 'vitest';
import type { HostState } from '../attach/host-state.js';
import type { AttachmentRecord } from '../attach/records.js';
import { parsePluginConfig } from '../cni/config.js';
import type { Network } from '../network/schema.js';
import { classify } from './classify.js';

const net = (name: string, spec: Record<string, unknown>) =>
  ({
    apiVersion: 'tartan.io/v1alpha1',
    kind: 'ClusterNetwork',
    metadata: { name },
    spec,
  }) as Network;
const nets = new Map([
  ['mv', net('mv', { type: 'macvlan', device: 'eth1' })],
  ['vl', net('vl', { type: 'macvlan', device: 'eth1', vlan: 100 })],
  ['br', net('br', { type: 'bridge' })],
]);
const rec = (parents: string[]): AttachmentRecord => ({
  containerId: 'c1',
  ifname: 'eth0',
  netns: '/run/netns/x',
  cniVersion: '1.1.0',
  node: 'n1',
  created: '',
  interfaces: [
    {
      ifname: 'eth0',
      network: 'x',
      spec: { type: 'macvlan' },
      state: 'ready',
      parents,
      allocations: [],
      rules: [],
      routes: [],
    },
  ],
});
const deps = (r: AttachmentRecord | undefined) => ({
  state: async () => ({ getAttachment: () => r }) as unknown as HostState,
  networks: async () => nets,
});
const vars = { CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0' };
const conf = (interfaces: unknown[]) =>
  parsePluginConfig({ cniVersion: '1.1.0', name: 't', type: 'tartan', interfaces });

describe('classify', () => {
  it('runs ADDs on networks with host parents alone, the others side by side', async () => {
    expect(await classify('ADD', vars, conf([{ network: 'mv' }]), deps(undefined))).toBe(false);
    expect(await classify('ADD', vars, conf([{ network: 'vl' }]), deps(undefined))).toBe(true);
    expect(
      await classify('ADD', vars, conf([{ network: 'mv' }, { network: 'br' }]), deps(undefined)),
    ).toBe(true);
  });

  it('runs a DEL (or a repeated ADD) alone when its record holds parents', async () => {
    expect(await classify('DEL', vars, conf([]), deps(rec(['eth1.100'])))).toBe(true);
    expect(await classify('DEL', vars, conf([]), deps(rec([])))).toBe(false);
    expect(await classify('DEL', vars, conf([]), deps(undefined))).toBe(false);
    expect(await classify('ADD', vars, conf([{ network: 'mv' }]), deps(rec(['tbr-x'])))).toBe(true);
  });

  it('runs GC alone, and lets input the core refuses anyway run side by side', async () => {
    expect(await classify('GC', vars, undefined, deps(undefined))).toBe(true);
    expect(await classify('CHECK', vars, conf([]), deps(rec(['tbr-x'])))).toBe(false);
    expect(await classify('ADD', vars, undefined, deps(undefined))).toBe(false);
    expect(await classify('ADD', vars, conf([{ network: 'nope' }]), deps(undefined))).toBe(false);
  });
});
