// Admission decisions that need no API server (the rest: test/k8s/webhook.test.ts).
import { describe, expect, it } from 'vitest';
import type { KubeClient } from '../k8s/client.js';
import { createMemoryStore } from '../store/memory.js';
import { validate, type AdmissionRequest } from './webhook.js';

// Answers nothing: these decisions must not need the API server.
const client = {
  request: () => Promise.reject(new Error('no API server in this test')),
  must: () => Promise.reject(new Error('no API server in this test')),
} as unknown as KubeClient;
const deps = { client, store: createMemoryStore() };

// A spec an older release admitted and today's rules refuse (gateway outside the cidr).
const old = { type: 'bridge', ipv4: { cidr: '10.0.0.0/24', gateway: '10.9.0.1' } };
const update = (spec: unknown, finalizers: string[]): AdmissionRequest => ({
  uid: 'u1',
  kind: { group: 'tartan.io', version: 'v1alpha1', kind: 'ClusterNetwork' },
  operation: 'UPDATE',
  name: 'legacy',
  oldObject: { metadata: { name: 'legacy' }, spec: old },
  object: { metadata: { name: 'legacy', finalizers } as { name: string }, spec },
});

describe('validate, for a network admitted under older rules', () => {
  it('admits a change of its metadata only (the controller dropping its finalizer)', async () => {
    const respec = { ipv4: { gateway: '10.9.0.1', cidr: '10.0.0.0/24' }, type: 'bridge' };
    expect(await validate(deps, update(respec, []))).toEqual({ uid: 'u1', allowed: true });
  });

  it('still refuses any change of its spec that leaves it invalid', async () => {
    const r = await validate(deps, update({ ...old, mtu: 1400 }, ['tartan.io/ipam']));
    expect(r.allowed).toBe(false);
    expect(r.status).toMatchObject({ code: 422 });
    expect(r.status?.message).toMatch(/^ClusterNetwork legacy: .*gateway/);
  });
});
