import { describe, expect, it } from 'vitest';
import { isTartanError } from '../cni/errors.js';
import { createFakeKernel } from '../kernel/fake.js';
import { HOST, runPosition, type Step } from '../kernel/types.js';
import { localSteps, peerKernel, type ShimPeer } from './peer-kernel.js';
import { SELF_NETNS, type KernelCall, type KernelReply } from './wire.js';

/** A shim that records what it is asked and answers as told. */
function shim(answer: (call: KernelCall['kernel']) => KernelReply | undefined) {
  const calls: KernelCall['kernel'][] = [];
  const replies = new Map<number, KernelReply | undefined>();
  const peer: ShimPeer = {
    send(frame) {
      calls.push(frame.kernel);
      replies.set(frame.kernel.id, answer(frame.kernel));
      return true;
    },
    reply: async (id) => replies.get(id),
  };
  return { peer, calls };
}

const home = `/proc/${process.pid}/ns/net`;
const steps: Step[] = [
  { t: { ns: '/run/netns/pod' }, ops: [{ op: 'link-set', name: 'eth1', intoNs: home }] },
];

describe('kernel steps done by the shim', () => {
  it("names the agent's own netns for the shim, which reads it as its own", async () => {
    const s = shim((c) => ({ id: c.id, ok: true }));
    const local = createFakeKernel();
    const k = peerKernel(s.peer, local);
    await k.run(steps, { bestEffort: true });
    expect(s.calls).toEqual([
      {
        id: 1,
        bestEffort: true,
        steps: [{ ...steps[0], ops: [{ op: 'link-set', name: 'eth1', intoNs: SELF_NETNS }] }],
      },
    ]);
    expect(localSteps(s.calls[0]!.steps as Step[])).toEqual(steps);
    expect(local.ops).toEqual([]);
    expect(k.remote()).toBe(1);
  });

  it("keeps the shim's error code and message", async () => {
    const s = shim((c) => ({ id: c.id, error: { code: 'ERR_KERNEL', message: 'File exists' } }));
    const k = peerKernel(s.peer, createFakeKernel());
    const e: unknown = await k.run(steps).catch((x: unknown) => x);
    expect(isTartanError(e, 'ERR_KERNEL')).toBe(true);
    expect((e as Error).message).toBe('File exists');
  });

  it('does the work itself once the shim cannot (no FFI) or is gone', async () => {
    for (const answer of [
      (c: KernelCall['kernel']) => ({ id: c.id, unavailable: 'no FFI' }),
      () => undefined,
    ]) {
      const s = shim(answer);
      const local = createFakeKernel();
      local.addNetns('/run/netns/pod');
      const k = peerKernel(s.peer, local);
      const up: Step[] = [
        { t: { ns: '/run/netns/pod' }, ops: [{ op: 'sysctl', key: 'net/a', value: '1' }] },
      ];
      await k.run(up);
      await k.run(up);
      expect(s.calls).toHaveLength(1); // asked once, then the agent carries on alone
      expect(local.ops).toHaveLength(2);
      expect(k.remote()).toBe(0);
    }
  });

  it('says nothing of where a replay stopped once the shim went away mid-run', async () => {
    const make: Step[] = [
      {
        t: HOST,
        ops: [
          { op: 'vxlan-add', name: 'tt-vx9', vni: 9, port: 4789, local: '192.0.2.1', dev: 'eth0' },
        ],
      },
    ];
    // The shim made the link and went away before answering: the replay finds it made.
    // No FFI instead: the shim did nothing, and EEXIST at the first op is someone else's link.
    for (const [answer, positioned] of [
      [() => undefined, false],
      [(c: KernelCall['kernel']) => ({ id: c.id, unavailable: 'no FFI' }), true],
    ] as const) {
      const local = createFakeKernel();
      local.failOn((o) => o.op === 'vxlan-add');
      const k = peerKernel(shim(answer).peer, local);
      const e: unknown = await k.run(make).catch((x: unknown) => x);
      expect(isTartanError(e, 'ERR_KERNEL')).toBe(true);
      expect(runPosition(e) !== undefined).toBe(positioned);
    }
  });
});
