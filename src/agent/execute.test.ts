// The CNI commands end to end through executeCni (what the binary and the agent run), against
// the fake kernel and the memory store: GC's list of valid attachments, versions, and what a
// delegated network is given on ADD, DEL and CHECK.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { executeCni } from './execute.js';
import { createIpam } from '../ipam/index.js';
import { createFakeKernel, type FakeKernel } from '../kernel/fake.js';
import { parseNetwork } from '../network/parse.js';
import type { Network } from '../network/schema.js';
import { createMemoryStore } from '../store/memory.js';
import { openHostState, type HostState } from '../attach/host-state.js';
import type { Overrides } from '../attach/plugin.js';

const net = (name: string, spec: Record<string, unknown>): Network =>
  parseNetwork(
    { apiVersion: 'tartan.io/v1alpha1', kind: 'ClusterNetwork', metadata: { name }, spec },
    'test',
  );

let dir: string;
let k: FakeKernel;
let state: HostState;
let o: Overrides;

/** A plugin that logs "<command> <ifname> <ports|none>" and answers as a 1.0.0 plugin. */
function fakePlugin(name: string, delCode?: number): void {
  const log = join(dir, `${name}.log`);
  writeFileSync(
    join(dir, name),
    `#!/bin/sh
conf=$(cat)
case $conf in *'"runtimeConfig":{"portMappings":[{"hostPort":8080'*) rc=ports ;; *) rc=none ;; esac
echo "$CNI_COMMAND $CNI_IFNAME $rc" >> ${log}
case $CNI_COMMAND in
  ADD) echo '{"cniVersion":"1.0.0","interfaces":[{"name":"'$CNI_IFNAME'"}],"ips":[]}' ;;
  DEL) ${delCode ? `echo '{"cniVersion":"1.0.0","code":${delCode},"msg":"busy"}'; exit 1` : 'exit 0'} ;;
  VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
esac
`,
  );
  chmodSync(join(dir, name), 0o755);
}
const calls = (name: string) =>
  readFileSync(join(dir, `${name}.log`), 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean);

const networks = () =>
  new Map(
    [
      net('oam', { type: 'macvlan', device: 'eth1', ipv4: { cidr: '10.1.0.0/24' } }),
      net('d1', {
        type: 'delegate',
        delegate: {
          cniVersion: '1.0.0',
          name: 'd1',
          type: 'fake1',
          capabilities: { portMappings: true },
        },
      }),
      net('d2', {
        type: 'delegate',
        delegate: {
          cniVersion: '1.0.0',
          name: 'd2',
          type: 'fake2',
          capabilities: { portMappings: true },
        },
      }),
    ].map((n) => [n.metadata.name, n]),
  );

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tartan-unit-'));
  k = createFakeKernel(['lo', 'eth1']);
  state = await openHostState(join(dir, 'state'));
  o = { kernel: k, store: createMemoryStore(), state, networks: networks() };
  o.ipam = createIpam(o.store!);
});

afterEach(() => {
  try {
    state.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const conf = (extra: Record<string, unknown> = {}) => ({
  cniVersion: '1.1.0',
  name: 'tartan',
  type: 'tartan',
  networksDir: '/nonexistent',
  store: { type: 'file', path: '/nonexistent/ipam.db' },
  stateDir: join(dir, 'state'),
  nodeName: 'n1',
  interfaces: [{ network: 'oam' }],
  ...extra,
});

async function cni(command: string, cid: string, c: Record<string, unknown>) {
  const netns = `/ns-${cid}`;
  try {
    k.ns(netns);
  } catch {
    k.addNetns(netns);
  }
  const r = await executeCni(
    {
      CNI_COMMAND: command,
      CNI_CONTAINERID: cid,
      CNI_NETNS: netns,
      CNI_IFNAME: 'eth0',
      CNI_PATH: dir,
    },
    { text: JSON.stringify(c) },
    o,
  );
  return { code: r.code, out: r.stdout ? JSON.parse(r.stdout) : undefined };
}

const recorded = () => state.listAttachments().map((a) => a.containerId);

describe('an environment the call cannot run in', () => {
  it("answers in the configuration's version", async () => {
    const r = await executeCni(
      { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_NETNS: '/ns-c1', CNI_PATH: dir },
      { text: JSON.stringify(conf({ cniVersion: '0.3.1' })) },
      o,
    );
    expect(JSON.parse(r.stdout)).toMatchObject({ cniVersion: '0.3.1', code: 4 });
  });
});

describe('GC', () => {
  it('without a list of valid attachments removes none', async () => {
    for (const cid of ['ca', 'cb']) expect((await cni('ADD', cid, conf())).code).toBe(0);
    expect((await cni('GC', 'x', conf())).code).toBe(0);
    expect(recorded()).toEqual(['ca', 'cb']);
  });

  it('reads the list under either name the spec has used', async () => {
    for (const cid of ['ca', 'cb', 'cc']) await cni('ADD', cid, conf());
    const keep = (cid: string) => [{ containerID: cid, ifname: 'eth0' }];
    await cni('GC', 'x', conf({ 'cni.dev/attachments': [...keep('ca'), ...keep('cb')] }));
    expect(recorded()).toEqual(['ca', 'cb']);
    await cni('GC', 'x', conf({ 'cni.dev/valid-attachments': keep('cb') }));
    expect(recorded()).toEqual(['cb']);
  });

  it("concerns only the attachments made through the runtime's configuration of that name", async () => {
    await cni('ADD', 'ca', conf({ name: 'net-a' }));
    await cni('ADD', 'cb', conf({ name: 'net-b' }));
    await cni('GC', 'x', conf({ name: 'net-a', 'cni.dev/valid-attachments': [] }));
    expect(recorded()).toEqual(['cb']);
  });

  it('goes on past an attachment it cannot remove, and reports it', async () => {
    fakePlugin('fake1', 11);
    await cni('ADD', 'ca', conf({ interfaces: [{ network: 'd1' }] }));
    await cni('ADD', 'cb', conf());
    const r = await cni('GC', 'x', conf({ 'cni.dev/valid-attachments': [] }));
    expect(r.code).toBe(1);
    expect(r.out).toMatchObject({ msg: expect.stringMatching(/ca\/eth0/) });
    expect(recorded()).toEqual(['ca']); // cb removed all the same
  });

  it('and STATUS are refused for a configuration older than CNI 1.1.0', async () => {
    for (const command of ['GC', 'STATUS']) {
      const r = await cni(command, 'x', conf({ cniVersion: '1.0.0' }));
      expect(r.out).toMatchObject({ code: 1, msg: expect.stringMatching(command) });
    }
  });
});

describe('a delegated network', () => {
  const rc = { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] };

  it("gets the runtime's runtimeConfig on ADD, DEL and CHECK when it is the first interface, never as a secondary", async () => {
    fakePlugin('fake1');
    fakePlugin('fake2');
    const c = conf({
      interfaces: [{ network: 'd1' }, { network: 'd2', ifname: 'net1' }],
      runtimeConfig: rc,
    });
    const add = await cni('ADD', 'ca', c);
    expect(add.code).toBe(0);
    expect((await cni('CHECK', 'ca', { ...c, prevResult: add.out })).code).toBe(0);
    // A DEL as runtimes send it after a restart: no runtimeConfig at hand.
    expect((await cni('DEL', 'ca', conf())).code).toBe(0);
    expect(calls('fake1')).toEqual(['ADD eth0 ports', 'CHECK eth0 ports', 'DEL eth0 ports']);
    expect(calls('fake2')).toEqual(['ADD net1 none', 'CHECK net1 none', 'DEL net1 none']);
  });

  it("DEL keeps the delegate's own error code", async () => {
    fakePlugin('fake1', 11);
    await cni('ADD', 'ca', conf({ interfaces: [{ network: 'd1' }] }));
    const r = await cni('DEL', 'ca', conf());
    expect(r.out).toMatchObject({ code: 11, msg: expect.stringMatching(/busy/) });
  });
});

describe('an ADD killed once the IPAM has committed', () => {
  it('has already recorded the interface, so DEL releases its address', async () => {
    // What a SIGKILL would leave: the record as it stood when the IPAM committed.
    const ipam = o.ipam!;
    let recordedThen: string[] | undefined;
    o.ipam = {
      ...ipam,
      allocate: async (req) => {
        const got = await ipam.allocate(req);
        recordedThen = state.getAttachment('ck', 'eth0')?.interfaces.map((i) => i.ifname);
        return got;
      },
    };
    expect((await cni('ADD', 'ck', conf())).code).toBe(0);
    expect(recordedThen).toEqual(['eth0']);
    // Put the record back in that state: the interface without its allocations.
    const rec = state.getAttachment('ck', 'eth0')!;
    state.putAttachment({
      ...rec,
      result: undefined,
      interfaces: rec.interfaces.map((i) => ({ ...i, state: 'adding' as const, allocations: [] })),
    });
    expect((await cni('DEL', 'ck', conf())).code).toBe(0);
    expect(await ipam.find('oam', networks().get('oam')!.spec, 'ck', 'eth0')).toEqual([]);
  });
});

describe('a network name libcni refuses', () => {
  it('fails ADD with code 7, but not the DEL of a configuration an older version took', async () => {
    const odd = { ...conf(), name: 'my net' };
    expect((await cni('ADD', 'co', odd)).out).toMatchObject({ code: 7 });
    expect((await cni('DEL', 'co', odd)).code).toBe(0);
  });
});

describe('CHECK', () => {
  it('is refused for a version without it (code 1) before any datastore or state is opened', async () => {
    const stateDir = join(dir, 'never-made');
    const r = await executeCni(
      {
        CNI_COMMAND: 'CHECK',
        CNI_CONTAINERID: 'c1',
        CNI_NETNS: '/ns-c1',
        CNI_IFNAME: 'eth0',
      },
      {
        text: JSON.stringify({
          cniVersion: '0.3.1',
          name: 'tartan',
          type: 'tartan',
          stateDir,
          store: { type: 'kubernetes' },
        }),
      },
    );
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 1, msg: expect.stringMatching(/CHECK/) });
    expect(existsSync(stateDir)).toBe(false);
  });

  it("expects the MAC and MTU of the runtime's prevResult (a later plugin may change them)", async () => {
    const add = await cni('ADD', 'ca', conf());
    expect(add.code).toBe(0);
    // A chained tuning plugin sets a MAC and an MTU of its own, and says so in its result.
    const mac = '02:11:22:33:44:55';
    await k.apply({ ns: '/ns-ca' }, [{ op: 'link-set', name: 'eth0', mac, mtu: 1400 }]);
    const tuned = {
      ...add.out,
      interfaces: [{ ...add.out.interfaces[0], mac, mtu: 1400 }],
    };
    expect((await cni('CHECK', 'ca', { ...conf(), prevResult: tuned })).code).toBe(0);
    // Against ADD's own result the link is not what it was.
    const r = await cni('CHECK', 'ca', { ...conf(), prevResult: add.out });
    expect(r.out).toMatchObject({ code: 108, msg: expect.stringMatching(/MAC is 02:11/) });
  });
});

describe('GC and STATUS reach a delegated network (CNI 1.1.0)', () => {
  /** A 1.1.0 plugin: logs GC's valid attachments; STATUS answers `status` (0 = fine). */
  function plugin11(status: number): void {
    writeFileSync(
      join(dir, 'fake11'),
      `#!/bin/sh
conf=$(cat)
case $CNI_COMMAND in
  ADD) echo '{"cniVersion":"1.1.0","interfaces":[{"name":"'$CNI_IFNAME'"}],"ips":[]}' ;;
  GC) echo "GC $(printf '%s' "$conf" | grep -o '"cni.dev/valid-attachments":[^]]*]')" >> ${join(dir, 'fake11.log')} ;;
  STATUS) [ ${status} = 0 ] || { echo '{"cniVersion":"1.1.0","code":${status},"msg":"uplink down"}'; exit 1; } ;;
esac
`,
    );
    chmodSync(join(dir, 'fake11'), 0o755);
    o.networks!.set(
      'd11',
      net('d11', {
        type: 'delegate',
        delegate: { cniVersion: '1.1.0', name: 'd11', type: 'fake11' },
      }),
    );
  }

  it('GC is forwarded with the attachments Tartan still records on that network', async () => {
    plugin11(0);
    for (const cid of ['ca', 'cb'])
      await cni('ADD', cid, conf({ interfaces: [{ network: 'd11' }] }));
    const keep = [{ containerID: 'cb', ifname: 'eth0' }];
    expect((await cni('GC', 'x', conf({ 'cni.dev/valid-attachments': keep }))).code).toBe(0);
    expect(calls('fake11')).toEqual([
      'GC "cni.dev/valid-attachments":[{"containerID":"cb","ifname":"eth0"}]',
    ]);
    // Without a list (libcni sends GC so when the runtime gives no arguments): forwarded
    // all the same, with what Tartan records (cb; ca went with the GC above).
    expect((await cni('GC', 'x', conf())).code).toBe(0);
    expect(calls('fake11').at(-1)).toBe(
      'GC "cni.dev/valid-attachments":[{"containerID":"cb","ifname":"eth0"}]',
    );
    expect(calls('fake11')).toHaveLength(2);
  });

  it('STATUS fails with 50 while the defaultNetwork is not defined', async () => {
    const r = await cni('STATUS', 'x', conf({ defaultNetwork: 'nope', interfaces: [] }));
    expect(r.out).toMatchObject({
      code: 50,
      msg: expect.stringMatching(/defaultNetwork nope is not defined/),
    });
  });

  it("STATUS asks a delegated default network's plugins, and keeps their code", async () => {
    plugin11(51);
    const c = conf({ defaultNetwork: 'd11', interfaces: [] });
    expect((await cni('STATUS', 'x', c)).out).toMatchObject({
      code: 51,
      msg: expect.stringMatching(/uplink down/),
    });
    plugin11(0);
    expect((await cni('STATUS', 'x', c)).code).toBe(0);
  });
});

describe("a delegated network's per-interface requests (NPWG)", () => {
  /** Logs the runtimeConfig and args it is given; declares the capabilities asked for. */
  function capable(caps: Record<string, boolean>): void {
    writeFileSync(
      join(dir, 'fakecap'),
      `#!/bin/sh
conf=$(cat)
printf '%s\\n' "$CNI_COMMAND $conf" >> ${join(dir, 'fakecap.log')}
[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"1.0.0","interfaces":[{"name":"'$CNI_IFNAME'"}],"ips":[]}'
exit 0
`,
    );
    chmodSync(join(dir, 'fakecap'), 0o755);
    o.networks!.set(
      'dc',
      net('dc', {
        type: 'delegate',
        delegate: { cniVersion: '1.0.0', name: 'dc', type: 'fakecap', capabilities: caps },
      }),
    );
  }
  const seen = () =>
    calls('fakecap').map((l) => {
      const sp = l.indexOf(' ');
      return [l.slice(0, sp), JSON.parse(l.slice(sp + 1)) as Record<string, unknown>] as const;
    });
  const ask = {
    network: 'dc',
    ifname: 'net1',
    ip: '10.2.2.42/24',
    mac: '02:00:00:00:00:42',
    cniArgs: { vlan: 7 },
  };

  it('gets its fixed address, MAC and cni-args, on ADD and DEL', async () => {
    capable({ ips: true, mac: true });
    const c = conf({ interfaces: [{ network: 'oam' }, ask] });
    expect((await cni('ADD', 'ca', c)).code).toBe(0);
    expect((await cni('DEL', 'ca', conf())).code).toBe(0);
    const want = {
      runtimeConfig: { ips: ['10.2.2.42/24'], mac: '02:00:00:00:00:42' },
      args: { cni: { vlan: 7 } },
    };
    expect(seen()).toEqual([
      ['ADD', expect.objectContaining(want)],
      ['DEL', expect.objectContaining(want)],
    ]);
  });

  it('is refused when no plugin declares the capability, with nothing left behind', async () => {
    capable({ mac: true });
    const r = await cni('ADD', 'ca', conf({ interfaces: [{ network: 'oam' }, ask] }));
    expect(r.out).toMatchObject({ code: 107, msg: expect.stringMatching(/"ips" capability/) });
    expect(recorded()).toEqual([]);
    expect(k.ns('/ns-ca').links.size).toBe(0);
    expect(() => calls('fakecap')).toThrow(); // the plugin never ran
  });

  it('portMappings on a network Tartan attaches itself is refused', async () => {
    const pm = [{ hostPort: 8080, containerPort: 80 }];
    const r = await cni('ADD', 'ca', conf({ interfaces: [{ network: 'oam', portMappings: pm }] }));
    expect(r.out).toMatchObject({ code: 107, msg: expect.stringMatching(/portMappings/) });
    expect(recorded()).toEqual([]);
  });
});
