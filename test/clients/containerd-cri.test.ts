// containerd's CRI (the path kubelet drives): RunPodSandbox through crictl against a real
// containerd 1.6, first with the reference bridge + host-local (control), then with Tartan.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Containerd, makeCniBinDir } from '../harness/clients/containerd.js';
import {
  readAllocations,
  readAttachments,
  tartanEnv,
  tartanPlugin,
  writeNetworks,
  type TartanEnv,
} from '../harness/clients/tartan.js';
import {
  GO_TOOLS_TIMEOUT_MS,
  addrsIn,
  ipv4Of,
  linkDel,
  linkExists,
  makeVethParent,
  mkTmp,
  netnsAdd,
  netnsDel,
  pingFrom,
  removeDir,
  reportTiming,
  tartanBinary,
} from '../harness/clients/util.js';

describe('containerd CRI with the reference bridge plugin (control)', () => {
  let dir = '';
  let ctrd: Containerd | undefined;
  const bridge = `tt-cli-cbr${process.pid % 1000}`;

  beforeAll(async () => {
    dir = mkTmp('tartan-cri-ref-');
    const confDir = join(dir, 'net.d');
    mkdirSync(confDir);
    writeFileSync(
      join(confDir, '10-ref.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'tt-cli-ref',
        plugins: [
          {
            type: 'bridge',
            bridge,
            isGateway: false,
            ipam: {
              type: 'host-local',
              ranges: [[{ subnet: '10.77.1.0/24' }]],
              dataDir: join(dir, 'ipam'),
            },
          },
        ],
      }),
    );
    ctrd = await Containerd.start({
      cniBinDir: makeCniBinDir(join(dir, 'bin')),
      cniConfDir: confDir,
    });
  }, GO_TOOLS_TIMEOUT_MS);

  afterAll(async () => {
    try {
      await ctrd?.stop();
    } finally {
      await linkDel(bridge);
      removeDir(dir);
    }
  });

  it('RunPodSandbox gives the pod eth0 on the bridge; stop/remove releases it', async () => {
    const a = await ctrd!.runPod();
    const b = await ctrd!.runPod();
    expect(a.netns).toMatch(/^\/var\/run\/netns\/cni-/);
    const aAddrs = ipv4Of(await addrsIn(a.netns), 'eth0');
    const bAddrs = ipv4Of(await addrsIn(b.netns), 'eth0');
    expect(aAddrs).toHaveLength(1);
    expect(aAddrs[0]).toMatch(/^10\.77\.1\.\d+\/24$/);
    const bIp = bAddrs[0]!.split('/')[0]!;
    const ping = await pingFrom(a.netns, bIp);
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);

    for (const id of [a.id, b.id]) {
      expect((await ctrd!.stopPod(id)).code).toBe(0);
      expect((await ctrd!.removePod(id)).code).toBe(0);
    }
    expect(existsSync(a.netns)).toBe(false);
  });

  it('timing: RunPodSandbox with bridge + host-local (1 interface)', async () => {
    const times: number[] = [];
    for (let i = 0; i < 8; i++) {
      const p = await ctrd!.runPod();
      times.push(p.runMs);
      expect((await ctrd!.stopPod(p.id)).code).toBe(0);
      expect((await ctrd!.removePod(p.id)).code).toBe(0);
    }
    reportTiming('crictl runp (RunPodSandbox) with bridge+host-local, 1 iface', times);
  });
});

describe('containerd CRI with Tartan', () => {
  let dir = '';
  let env: TartanEnv;
  let ctrd: Containerd | undefined;
  const C0 = 'tt-cli-c0';
  const C1 = 'tt-cli-c1';
  const PEER = 'tt-cli-ctrd-peer';
  const FIXED = '10.50.0.20';

  beforeAll(async () => {
    const bin = tartanBinary();
    dir = mkTmp('tartan-cri-tt-');
    env = tartanEnv(dir);
    writeNetworks(env.networksDir, [
      {
        name: 'oam',
        type: 'macvlan',
        device: C0,
        mode: 'bridge',
        ipv4: { cidr: '10.50.0.0/24', pools: [{ start: '10.50.0.10', end: '10.50.0.99' }] },
      },
      {
        name: 'data',
        type: 'macvlan',
        device: C0,
        mode: 'bridge',
        ipv4: { cidr: '10.51.0.0/24', pools: [{ start: '10.51.0.10', end: '10.51.0.99' }] },
      },
    ]);
    await netnsAdd(PEER);
    // The parent in the root netns (containerd runs the plugin there); its peer in a netns
    // of its own, addressed on the oam network, to reach the pods from outside.
    await makeVethParent(C0, C1, PEER, '10.50.0.250/24');
    const confDir = join(dir, 'net.d');
    mkdirSync(confDir);
    // CRI loads only the first conflist: Tartan, the meta-plugin, gives the pod both interfaces.
    writeFileSync(
      join(confDir, '10-tartan.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'tt-cli-tartan',
        plugins: [
          tartanPlugin(env, [
            { network: 'oam', ip: FIXED },
            { network: 'data', ifname: 'net1' },
          ]),
        ],
      }),
    );
    ctrd = await Containerd.start({
      cniBinDir: makeCniBinDir(join(dir, 'bin'), { tartan: bin }),
      cniConfDir: confDir,
    });
  }, GO_TOOLS_TIMEOUT_MS);

  afterAll(async () => {
    try {
      await ctrd?.stop();
    } finally {
      await netnsDel(PEER);
      await linkDel(C0);
      if (dir) removeDir(dir);
    }
  });

  const live = () => readAllocations(env.storePath).filter((a) => a.handle !== null);

  // A failed test must not leave a pod holding the fixed IP for the next one.
  afterEach(async () => {
    const problems = await ctrd?.removeAllPods();
    if (problems?.length) throw new Error(problems.join('\n'));
  });

  it('RunPodSandbox: the pod gets eth0 (fixed) and net1 (dynamic); stop/remove releases them', async () => {
    const pod = await ctrd!.runPod();
    const addrs = await addrsIn(pod.netns);
    expect(ipv4Of(addrs, 'eth0')).toEqual([`${FIXED}/24`]);
    expect(ipv4Of(addrs, 'net1')[0]).toMatch(/^10\.51\.0\.\d+\/24$/);
    expect(addrs.find((a) => a.ifname === 'eth0')?.linkinfo?.info_kind).toBe('macvlan');
    // containerd's view of the pod IP comes from Tartan's result.
    const st = (await ctrd!.inspectPod(pod.id)) as { status?: { network?: { ip?: string } } };
    expect(st.status?.network?.ip).toBe(FIXED);
    const ping = await pingFrom(`/run/netns/${PEER}`, FIXED);
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);

    const recs = readAttachments(env.stateDir);
    expect(recs).toHaveLength(1);
    expect(recs[0]!.containerId).toBe(pod.id);
    expect(recs[0]!.interfaces.map((i) => i.ifname).sort()).toEqual(['eth0', 'net1']);
    expect(live()).toHaveLength(2);

    const stop = await ctrd!.stopPod(pod.id);
    expect(stop.code, stop.stderr).toBe(0);
    expect(readAttachments(env.stateDir)).toEqual([]);
    expect(live()).toEqual([]);
    const rm = await ctrd!.removePod(pod.id);
    expect(rm.code, rm.stderr).toBe(0);
    expect(existsSync(pod.netns)).toBe(false);

    // The same fixed IP again, for a new pod, without conflict.
    const again = await ctrd!.runPod();
    expect(ipv4Of(await addrsIn(again.netns), 'eth0')).toEqual([`${FIXED}/24`]);

    // A concurrent pod asking for the same fixed IP fails, and leaves nothing behind.
    const clash = await ctrd!.runPod().then(
      (p) => ({ ok: true as const, p }),
      (e: Error) => ({ ok: false as const, e }),
    );
    if (clash.ok)
      throw new Error(`a second pod got fixed IP ${FIXED} while it was in use (pod ${clash.p.id})`);
    console.log(
      `[info] RunPodSandbox error for a fixed IP in use:\n${clash.e.message.split('\n').slice(1, 2).join(' ')}`,
    );
    expect(clash.e.message).toMatch(/10\.50\.0\.20|in use|allocated|conflict/i);
    expect(readAttachments(env.stateDir).map((r) => r.containerId)).toEqual([again.id]);
    expect(live()).toHaveLength(2);

    expect((await ctrd!.stopPod(again.id)).code).toBe(0);
    expect((await ctrd!.removePod(again.id)).code).toBe(0);
    expect(live()).toEqual([]);
    expect(linkExists(C0), 'the external parent must survive').toBe(true);
  });

  it('timing: RunPodSandbox with Tartan (2 interfaces)', async () => {
    const times: number[] = [];
    for (let i = 0; i < 8; i++) {
      const p = await ctrd!.runPod();
      times.push(p.runMs);
      expect((await ctrd!.stopPod(p.id)).code).toBe(0);
      expect((await ctrd!.removePod(p.id)).code).toBe(0);
    }
    reportTiming('crictl runp (RunPodSandbox) with Tartan, 2 macvlan ifaces', times);
    expect(live()).toEqual([]);
  });

  it('timing: RunPodSandbox with Tartan (1 dynamic interface, like the control)', async () => {
    const confDir = join(dir, 'net1.d');
    mkdirSync(confDir);
    writeFileSync(
      join(confDir, '10-tartan.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'tt-cli-tartan1',
        plugins: [tartanPlugin(env, [{ network: 'oam' }])],
      }),
    );
    const one = await Containerd.start({ cniBinDir: join(dir, 'bin'), cniConfDir: confDir });
    try {
      const times: number[] = [];
      for (let i = 0; i < 8; i++) {
        const p = await one.runPod();
        times.push(p.runMs);
        expect(ipv4Of(await addrsIn(p.netns), 'eth0')[0]).toMatch(/^10\.50\.0\.\d+\/24$/);
        expect((await one.stopPod(p.id)).code).toBe(0);
        expect((await one.removePod(p.id)).code).toBe(0);
      }
      reportTiming('crictl runp (RunPodSandbox) with Tartan, 1 macvlan iface', times);
    } finally {
      await one.stop();
    }
    expect(live()).toEqual([]);
  });
});

describe('containerd CRI with Tartan chained after the reference bridge', () => {
  let dir = '';
  let env: TartanEnv;
  let ctrd: Containerd | undefined;
  const C0 = 'tt-cli-c0';
  const C1 = 'tt-cli-c1';
  const BR = 'tt-cli-cbrc';

  beforeAll(async () => {
    const bin = tartanBinary();
    dir = mkTmp('tartan-cri-chain-');
    env = tartanEnv(dir);
    writeNetworks(env.networksDir, [
      {
        name: 'data',
        type: 'macvlan',
        device: C0,
        mode: 'bridge',
        ipv4: { cidr: '10.51.0.0/24', pools: [{ start: '10.51.0.10', end: '10.51.0.99' }] },
      },
    ]);
    await makeVethParent(C0, C1);
    const confDir = join(dir, 'net.d');
    mkdirSync(confDir);
    // The usual cluster shape: the default network's plugin makes eth0, Tartan adds the
    // secondary interfaces in the same conflist (CRI loads only one).
    writeFileSync(
      join(confDir, '10-chain.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'tt-cli-chain',
        plugins: [
          {
            type: 'bridge',
            bridge: BR,
            ipam: {
              type: 'host-local',
              ranges: [[{ subnet: '10.77.6.0/24' }]],
              dataDir: join(dir, 'hl'),
            },
          },
          tartanPlugin(env, [{ network: 'data', ifname: 'net1' }]),
        ],
      }),
    );
    ctrd = await Containerd.start({
      cniBinDir: makeCniBinDir(join(dir, 'bin'), { tartan: bin }),
      cniConfDir: confDir,
    });
  }, GO_TOOLS_TIMEOUT_MS);

  afterAll(async () => {
    try {
      await ctrd?.stop();
    } finally {
      await linkDel(C0);
      await linkDel(BR);
      if (dir) removeDir(dir);
    }
  });

  it('two pods: eth0 from bridge (the pod IP), net1 from Tartan; they ping over net1', async () => {
    const a = await ctrd!.runPod();
    const b = await ctrd!.runPod();
    const addrsA = await addrsIn(a.netns);
    expect(ipv4Of(addrsA, 'eth0')[0]).toMatch(/^10\.77\.6\.\d+\/24$/);
    expect(ipv4Of(addrsA, 'net1')[0]).toMatch(/^10\.51\.0\.\d+\/24$/);
    const st = (await ctrd!.inspectPod(a.id)) as { status?: { network?: { ip?: string } } };
    expect(st.status?.network?.ip).toBe(ipv4Of(addrsA, 'eth0')[0]!.split('/')[0]);
    const netB = ipv4Of(await addrsIn(b.netns), 'net1')[0]!.split('/')[0]!;
    const ping = await pingFrom(a.netns, netB);
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    for (const p of [a, b]) {
      expect((await ctrd!.stopPod(p.id)).code).toBe(0);
      expect((await ctrd!.removePod(p.id)).code).toBe(0);
    }
    expect(readAttachments(env.stateDir)).toEqual([]);
    expect(readAllocations(env.storePath).filter((x) => x.handle !== null)).toEqual([]);
  });
});
