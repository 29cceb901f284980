// podman 4.3 with its CNI backend as a real CNI client: first the reference bridge +
// host-local (control), then Tartan: a container with two Tartan interfaces, one with a
// fixed IP, pinging another container's fixed IP.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Podman } from '../harness/clients/podman.js';
import {
  readAllocations,
  readAttachments,
  tartanEnv,
  tartanPlugin,
  writeNetworks,
  type TartanEnv,
} from '../harness/clients/tartan.js';
import {
  REF_CNI_DIR,
  addrsIn,
  ipv4Of,
  linkDel,
  linkExists,
  makeVethParent,
  mkTmp,
  removeDir,
  reportTiming,
  tartanBinary,
} from '../harness/clients/util.js';

describe('podman (CNI backend) with the reference bridge plugin (control)', () => {
  let pm: Podman | undefined;
  let dir = '';
  const bridge = `tt-cli-pbr${process.pid % 1000}`;

  beforeAll(async () => {
    dir = mkTmp('tartan-podman-ref-');
    pm = await Podman.create();
    pm.addNetwork({
      cniVersion: '1.0.0',
      name: 'tt-cli-ref',
      plugins: [
        {
          type: 'bridge',
          bridge,
          isGateway: false,
          capabilities: { ips: true },
          ipam: {
            type: 'host-local',
            ranges: [
              [{ subnet: '10.77.8.0/24', rangeStart: '10.77.8.100', rangeEnd: '10.77.8.200' }],
            ],
            dataDir: join(dir, 'ipam'),
          },
        },
      ],
    });
  });

  afterAll(async () => {
    try {
      await pm?.cleanup();
    } finally {
      await linkDel(bridge);
      removeDir(dir);
    }
  });

  it('two containers on a bridge network, one with a fixed IP, ping each other', async () => {
    const a = await pm!.runContainer('tt-cli-ref-a', ['tt-cli-ref'], ['--ip', '10.77.8.150']);
    const b = await pm!.runContainer('tt-cli-ref-b', ['tt-cli-ref']);
    expect(ipv4Of(await addrsIn(a.netns), 'eth0')).toEqual(['10.77.8.150/24']);
    const bAddr = ipv4Of(await addrsIn(b.netns), 'eth0');
    expect(bAddr[0]).toMatch(/^10\.77\.8\.(1\d\d|200)\/24$/);
    const ping = await pm!.exec('tt-cli-ref-b', ['ping', '-c', '2', '-W', '2', '10.77.8.150']);
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    reportTiming('podman run -d on a bridge+host-local CNI network', [a.ms, b.ms]);
    const rm = await pm!.podman(['rm', '-f', '-t', '0', 'tt-cli-ref-a', 'tt-cli-ref-b']);
    expect(rm.code, rm.stderr).toBe(0);
  });
});

describe('podman (CNI backend) with Tartan', () => {
  let pm: Podman | undefined;
  let dir = '';
  let env: TartanEnv;
  const M0 = 'tt-cli-m0';
  const M1 = 'tt-cli-m1';

  beforeAll(async () => {
    const bin = tartanBinary();
    dir = mkTmp('tartan-podman-tt-');
    env = tartanEnv(dir);
    mkdirSync(join(dir, 'bin'));
    symlinkSync(bin, join(dir, 'bin', 'tartan'));
    writeNetworks(env.networksDir, [
      {
        name: 'oam',
        type: 'macvlan',
        device: M0,
        mode: 'bridge',
        ipv4: { cidr: '10.50.0.0/24', pools: [{ start: '10.50.0.10', end: '10.50.0.99' }] },
      },
      {
        name: 'data',
        type: 'macvlan',
        device: M0,
        mode: 'bridge',
        ipv4: { cidr: '10.51.0.0/24', pools: [{ start: '10.51.0.10', end: '10.51.0.99' }] },
      },
    ]);
    await makeVethParent(M0, M1);
    pm = await Podman.create({ cniPluginDirs: [join(dir, 'bin'), REF_CNI_DIR] });
    // podman passes no per-container interface request to a CNI plugin (its --ip needs a
    // host-local style network), so each container's fixed IP lives in a network of its own;
    // both networks share Tartan's network definitions, store and state.
    const net = (name: string, interfaces: object[]) =>
      pm!.addNetwork({
        cniVersion: '1.0.0',
        name,
        plugins: [tartanPlugin(env, interfaces as never)],
      });
    net('tt-cli-tt-a', [
      { network: 'oam', ip: '10.50.0.30' },
      { network: 'data', ifname: 'net1' },
    ]);
    net('tt-cli-tt-b', [
      { network: 'oam', ip: '10.50.0.31' },
      { network: 'data', ifname: 'net1' },
    ]);
  });

  afterAll(async () => {
    try {
      await pm?.cleanup();
    } finally {
      await linkDel(M0);
      if (dir) removeDir(dir);
    }
  });

  afterEach(async () => {
    const problems = await pm?.removeAll();
    if (problems?.length) throw new Error(problems.join('\n'));
  });

  it("a container with two Tartan interfaces (one fixed) pings another container's fixed IP", async () => {
    const a = await pm!.runContainer('tt-cli-tt-a', ['tt-cli-tt-a']);
    const b = await pm!.runContainer('tt-cli-tt-b', ['tt-cli-tt-b']);
    reportTiming('podman run -d on a Tartan network (2 macvlan ifaces)', [a.ms, b.ms]);

    const addrsA = await addrsIn(a.netns);
    expect(ipv4Of(addrsA, 'eth0')).toEqual(['10.50.0.30/24']);
    expect(ipv4Of(addrsA, 'net1')[0]).toMatch(/^10\.51\.0\.\d+\/24$/);
    expect(ipv4Of(await addrsIn(b.netns), 'eth0')).toEqual(['10.50.0.31/24']);
    const dataB = ipv4Of(await addrsIn(b.netns), 'net1')[0]!.split('/')[0]!;

    // From inside the container (busybox ping), on both networks.
    for (const dst of ['10.50.0.31', dataB]) {
      const ping = await pm!.exec('tt-cli-tt-a', ['ping', '-c', '2', '-W', '2', dst]);
      expect(ping.code, `ping ${dst}: ${ping.stdout}${ping.stderr}`).toBe(0);
    }
    // podman understood Tartan's result.
    const ip = await pm!.sh([
      'inspect',
      '--format',
      '{{(index .NetworkSettings.Networks "tt-cli-tt-a").IPAddress}}',
      'tt-cli-tt-a',
    ]);
    expect(ip.stdout.trim()).toBe('10.50.0.30');
    expect(readAttachments(env.stateDir)).toHaveLength(2);

    // podman rm runs CNI DEL: records and addresses released, interfaces gone.
    const rm = await pm!.podman(['rm', '-f', '-t', '0', 'tt-cli-tt-a', 'tt-cli-tt-b']);
    expect(rm.code, rm.stderr).toBe(0);
    expect(readAttachments(env.stateDir)).toEqual([]);
    expect(readAllocations(env.storePath).filter((x) => x.handle !== null)).toEqual([]);
    expect(linkExists(M0), 'the external parent must survive').toBe(true);

    // The fixed IP again for a new container.
    const c = await pm!.runContainer('tt-cli-tt-c', ['tt-cli-tt-a']);
    expect(ipv4Of(await addrsIn(c.netns), 'eth0')).toEqual(['10.50.0.30/24']);
    reportTiming('podman run -d on a Tartan network, fixed IP reused', [c.ms]);
    expect((await pm!.podman(['rm', '-f', '-t', '0', 'tt-cli-tt-c'])).code).toBe(0);
    expect(readAttachments(env.stateDir)).toEqual([]);
  });
});
