import { describe, expect, it } from 'vitest';
import { TartanError } from './errors.js';
import { errorResponse, parseStdin, readEnv, versionResponse } from './protocol.js';
import {
  fromAnyVersion,
  mergeResults,
  negotiateVersion,
  toVersion,
  type CniResult,
} from './spec.js';
import { checkNetworkName, interfaceRequests, parseCniArgs, parsePluginConfig } from './config.js';

const result: CniResult = {
  cniVersion: '1.1.0',
  interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:01', mtu: 1450, sandbox: '/run/netns/x' }],
  ips: [
    { address: '10.0.0.5/24', gateway: '10.0.0.1', interface: 0 },
    { address: 'fd00::5/64', interface: 0 },
  ],
  routes: [
    { dst: '10.9.0.0/16', gw: '10.0.0.1' },
    { dst: '0.0.0.0/0', gw: '10.0.0.1', table: 100 },
  ],
  dns: {},
};

describe('result versions', () => {
  it('0.3.1 and 0.4.0 carry ip "version" and drop 1.1 fields', () => {
    for (const v of ['0.3.1', '0.4.0']) {
      const o = toVersion(result, v) as {
        ips: Array<Record<string, unknown>>;
        interfaces: Array<Record<string, unknown>>;
        routes: Array<Record<string, unknown>>;
      };
      expect(o.ips.map((i) => i.version)).toEqual(['4', '6']);
      expect(o.interfaces[0]).not.toHaveProperty('mtu');
      expect(o.routes).toEqual([{ dst: '10.9.0.0/16', gw: '10.0.0.1' }]);
    }
  });
  it('1.0.0 has no ip version and no policy-table routes; 1.1.0 keeps route table and mtu', () => {
    const v1 = toVersion(result, '1.0.0') as {
      ips: Array<Record<string, unknown>>;
      routes: Array<Record<string, unknown>>;
    };
    expect(v1.ips[0]).not.toHaveProperty('version');
    expect(v1.routes).toEqual([{ dst: '10.9.0.0/16', gw: '10.0.0.1' }]);
    const v11 = toVersion(result, '1.1.0') as {
      interfaces: Array<Record<string, unknown>>;
      routes: Array<Record<string, unknown>>;
    };
    expect(v11.interfaces[0]?.mtu).toBe(1450);
    expect(v11.routes[1]?.table).toBe(100);
  });
  it('round-trips an old result into the internal shape', () => {
    expect(fromAnyVersion(toVersion(result, '0.4.0')).ips).toEqual(result.ips);
  });
  it('refuses a result whose lists or addresses do not parse (code 6, naming the field)', () => {
    const cases: Array<[unknown, RegExp]> = [
      [[], /prevResult: not a JSON object/],
      [{ interfaces: 'x' }, /interfaces is not a list/],
      [{ interfaces: [1] }, /interfaces\[0\] is not an object/],
      [{ interfaces: [{ mac: '02:00:00:00:00:01' }] }, /interfaces\[0\]\.name is missing/],
      [{ ips: [{ address: 'bogus' }] }, /ips\[0\]\.address "bogus" is not an address\/prefix/],
      [{ ips: [{ address: '10.0.0.5' }] }, /ips\[0\]\.address "10\.0\.0\.5"/],
      [{ ips: [{ address: '10.0.0.5/33' }] }, /ips\[0\]\.address/],
      [{ ips: [{ address: '10.0.0.5/24', gateway: 'x' }] }, /ips\[0\]\.gateway "x"/],
      [{ ips: [{ address: '10.0.0.5/24', interface: 0 }] }, /ips\[0\]\.interface 0 names no/],
      [{ routes: [{ dst: 'default' }] }, /routes\[0\]\.dst "default"/],
      [{ routes: [{ dst: '::/0', gw: 'fd00::1/64' }] }, /routes\[0\]\.gw "fd00::1\/64"/],
    ];
    for (const [raw, msg] of cases)
      expect(() => fromAnyVersion(raw, 'prevResult'), JSON.stringify(raw)).toThrow(
        expect.objectContaining({ cniCode: 6, message: expect.stringMatching(msg) }),
      );
    expect(
      fromAnyVersion({
        cniVersion: '1.0.0',
        interfaces: [{ name: 'eth0', sandbox: '/run/netns/x' }],
        ips: [{ address: 'fd00::5/64', gateway: 'fd00::1', interface: 0 }],
        routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.1' }],
      }).ips,
    ).toEqual([{ address: 'fd00::5/64', gateway: 'fd00::1', interface: 0 }]);
  });
  it('refuses an unknown version with code 1', () => {
    expect(() => toVersion(result, '2.0.0')).toThrow(TartanError);
  });
  it('negotiates the highest common version', () => {
    expect(negotiateVersion(['0.3.1', '1.0.0', '1.1.0', '2.0.0'])).toBe('1.1.0');
    expect(() => negotiateVersion(['0.1.0'])).toThrow(/none of the offered/);
  });
  it('merges results, re-indexing interface references', () => {
    const m = mergeResults(result, {
      cniVersion: '1.1.0',
      interfaces: [{ name: 'net1' }],
      ips: [{ address: '10.1.0.2/24', interface: 0 }],
    });
    expect(m.ips?.[2]).toEqual({ address: '10.1.0.2/24', interface: 1 });
  });
});

describe('a prevResult as the earlier plugin wrote it', () => {
  const prev = { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }] };
  it('reads null optional fields as absent, as libcni does', () => {
    expect(
      fromAnyVersion({
        ...prev,
        interfaces: [{ name: 'eth0' }],
        ips: [{ address: '10.0.0.2/24', gateway: null, interface: null }],
        routes: [{ dst: '0.0.0.0/0', gw: null }],
        dns: null,
      }),
    ).toMatchObject({ ips: [{ address: '10.0.0.2/24' }], routes: [{ dst: '0.0.0.0/0' }] });
  });
  it('refuses a dns that a runtime could not decode (code 6), and keeps only its fields', () => {
    for (const dns of [[], 'x', { nameservers: '10.96.0.10' }, { search: [1] }, { domain: 5 }])
      expect(() => fromAnyVersion({ ...prev, dns }), JSON.stringify(dns)).toThrow(
        expect.objectContaining({ cniCode: 6 }),
      );
    expect(
      fromAnyVersion({ ...prev, dns: { nameservers: ['10.96.0.10'], domain: 'c.l', x: 1 } }).dns,
    ).toEqual({ nameservers: ['10.96.0.10'], domain: 'c.l' });
  });
  it('refuses a version without ips (0.2.0) instead of dropping its addresses (code 1)', () => {
    expect(() =>
      fromAnyVersion({ cniVersion: '0.2.0', ip4: { ip: '10.0.0.2/24' } }, 'prevResult'),
    ).toThrow(expect.objectContaining({ cniCode: 1, message: expect.stringMatching(/0\.2\.0/) }));
  });
});

describe('protocol', () => {
  const env = {
    CNI_COMMAND: 'ADD',
    CNI_CONTAINERID: 'abc',
    CNI_IFNAME: 'eth0',
    CNI_NETNS: '/run/netns/x',
    CNI_PATH: '/opt/cni/bin:/usr/lib/cni',
  };
  it('reads a valid environment', () => {
    expect(readEnv(env)).toMatchObject({ command: 'ADD', path: ['/opt/cni/bin', '/usr/lib/cni'] });
  });
  it.each([
    [{ ...env, CNI_COMMAND: 'FOO' }, /unknown CNI_COMMAND/],
    [{ ...env, CNI_COMMAND: undefined }, /CNI_COMMAND is not set/],
    [{ ...env, CNI_CONTAINERID: 'a b' }, /CNI_CONTAINERID/],
    [{ ...env, CNI_IFNAME: 'x'.repeat(16) }, /CNI_IFNAME/],
    [{ ...env, CNI_IFNAME: 'a/b' }, /CNI_IFNAME/],
    [{ ...env, CNI_NETNS: '' }, /CNI_NETNS is not set/],
    [{ ...env, CNI_NETNS: 'relative' }, /absolute/],
  ])('rejects a bad environment with code 4 (%#)', (e, msg) => {
    try {
      readEnv(e);
      expect.unreachable();
    } catch (err) {
      expect((err as TartanError).cniCode).toBe(4);
      expect((err as Error).message).toMatch(msg);
    }
  });
  it('DEL takes any interface name libcni takes: no ADD of it got through, so DEL succeeds', () => {
    for (const name of ['eth0@1', 'net+1'])
      expect(readEnv({ ...env, CNI_COMMAND: 'DEL', CNI_IFNAME: name }).ifname).toBe(name);
    for (const name of ['eth0@1', 'net+1'])
      expect(() => readEnv({ ...env, CNI_IFNAME: name })).toThrow(/CNI_IFNAME/);
    for (const name of ['a/b', 'a:b', 'a b', 'x'.repeat(16), '.', '..'])
      expect(() => readEnv({ ...env, CNI_COMMAND: 'DEL', CNI_IFNAME: name })).toThrow(/CNI_IFNAME/);
  });
  it('refuses the names the kernel keeps for itself for ADD and CHECK, not for DEL', () => {
    for (const name of ['all', 'default']) {
      for (const command of ['ADD', 'CHECK'])
        expect(() => readEnv({ ...env, CNI_COMMAND: command, CNI_IFNAME: name })).toThrow(
          /CNI_IFNAME .* a name the kernel keeps for itself/,
        );
      expect(readEnv({ ...env, CNI_COMMAND: 'DEL', CNI_IFNAME: name }).ifname).toBe(name);
    }
  });
  it('DEL needs no netns', () => {
    expect(readEnv({ ...env, CNI_COMMAND: 'DEL', CNI_NETNS: '' }).netns).toBe('');
  });
  it('maps errors to the CNI error object', () => {
    expect(errorResponse(new TartanError('ERR_IPAM_TAKEN', 'taken'), '1.0.0')).toEqual({
      cniVersion: '1.0.0',
      code: 103,
      msg: 'taken',
      details: 'ERR_IPAM_TAKEN',
    });
    expect(errorResponse(new Error('boom'), 'junk')).toMatchObject({
      cniVersion: '1.1.0',
      code: 100,
    });
  });
  it('stdin must be a JSON object of bounded size', () => {
    expect(() => parseStdin('[1]')).toThrow(/JSON object/);
    expect(() => parseStdin('{')).toThrow(/not valid JSON/);
    // Walking it later (merging, copying) would exhaust the stack: an internal error.
    expect(() => parseStdin(`{"a":${'['.repeat(40)}${']'.repeat(40)}}`)).toThrow(
      expect.objectContaining({
        cniCode: 6,
        message: expect.stringMatching(/nested deeper than 32 levels/),
      }),
    );
    expect(() => parseStdin(' '.repeat((1 << 20) + 1))).toThrow(/larger than/);
  });
  it('VERSION echoes a supported version', () => {
    expect(versionResponse('0.4.0')).toMatchObject({ cniVersion: '0.4.0' });
    expect(versionResponse('7.0.0')).toMatchObject({ cniVersion: '1.1.0' });
  });
});

describe('configuration and interface requests', () => {
  const base = { cniVersion: '1.1.0', name: 'tartan', type: 'tartan' };
  it('applies defaults', () => {
    expect(parsePluginConfig(base)).toMatchObject({
      networksDir: '/etc/tartan/networks',
      store: { type: 'file' },
    });
  });
  it('rejects an unsupported version with code 1 and a bad field with code 7', () => {
    expect(() => parsePluginConfig({ ...base, cniVersion: '0.2.0' })).toThrow(
      expect.objectContaining({ cniCode: 1 }),
    );
    expect(() => parsePluginConfig({ ...base, store: { type: 'nfs' } })).toThrow(
      expect.objectContaining({ cniCode: 7 }),
    );
  });
  it('refuses a network name libcni refuses (code 7) and a cniVersion that is not text (code 6)', () => {
    for (const name of ['my net', '../../x', '-x', 'a/b', 'ünï'])
      expect(() => checkNetworkName(parsePluginConfig({ ...base, name })), name).toThrow(
        expect.objectContaining({ cniCode: 7, message: expect.stringMatching(/name/) }),
      );
    expect(() => parsePluginConfig({ ...base, name: '' })).toThrow(
      expect.objectContaining({ cniCode: 7 }),
    );
    expect(() => checkNetworkName(parsePluginConfig({ ...base, name: 'Net_1.a-b' }))).not.toThrow();
    expect(() => parsePluginConfig({ ...base, cniVersion: 1 })).toThrow(
      expect.objectContaining({ cniCode: 6 }),
    );
    expect(() => parsePluginConfig({ ...base, cniVersion: undefined })).toThrow(
      expect.objectContaining({ cniCode: 1 }),
    );
  });
  it('refuses relative paths, naming the field (code 7)', () => {
    for (const [field, bad] of [
      ['networksDir', { networksDir: 'nets' }],
      ['stateDir', { stateDir: './state' }],
      ['store.path', { store: { type: 'file', path: 'ipam.db' } }],
      ['logFile', { logFile: 'tartan.log' }],
    ] as const)
      expect(() => parsePluginConfig({ ...base, ...bad }), field).toThrow(
        expect.objectContaining({
          cniCode: 7,
          message: expect.stringContaining(`${field}: must be an absolute path`),
        }),
      );
    expect(parsePluginConfig({ ...base, stateDir: '/srv/tartan' }).stateDir).toBe('/srv/tartan');
  });
  it('CNI_ARGS: pairs, and values without "="', () => {
    expect(parseCniArgs('IgnoreUnknown=1;K8S_POD_NAME=a')).toEqual(
      new Map([
        ['IgnoreUnknown', '1'],
        ['K8S_POD_NAME', 'a'],
      ]),
    );
    expect(() => parseCniArgs('novalue')).toThrow(/invalid pair/);
  });
  it('requests come from runtimeConfig, then args, then CNI_ARGS, then the config', () => {
    const conf = parsePluginConfig({
      ...base,
      interfaces: [{ network: 'c' }],
      runtimeConfig: { tartan: { interfaces: [{ network: 'rc' }] } },
    });
    expect(interfaceRequests(conf, new Map())[0]?.network).toBe('rc');
    const conf2 = parsePluginConfig({ ...base, interfaces: [{ network: 'c' }] });
    expect(
      interfaceRequests(conf2, new Map([['TARTAN_NETWORKS', 'a,b']])).map((r) => r.network),
    ).toEqual(['a', 'b']);
    const b64 = Buffer.from(
      JSON.stringify([{ network: 'x', ip: '10.0.0.1', ifname: 'ext0' }]),
    ).toString('base64url');
    expect(interfaceRequests(conf2, new Map([['TARTAN_INTERFACES', b64]]))[0]).toEqual({
      network: 'x',
      ip: '10.0.0.1',
      ifname: 'ext0',
    });
    expect(interfaceRequests(conf2, new Map())[0]?.network).toBe('c');
  });
  it('refuses interface names that are too long or carry shell metacharacters (code 107)', () => {
    const conf = parsePluginConfig(base);
    for (const ifname of ['abcdefghijklmnop', 'a;b', '$(x)', '..', 'a b']) {
      const b64 = Buffer.from(JSON.stringify([{ network: 'x', ifname }])).toString('base64url');
      expect(() => interfaceRequests(conf, new Map([['TARTAN_INTERFACES', b64]]))).toThrow(
        expect.objectContaining({ cniCode: 107 }),
      );
    }
  });
  it('refuses interface names the kernel keeps for itself, naming ifname (code 107)', () => {
    for (const ifname of ['all', 'default', '.', '..'])
      expect(
        () =>
          interfaceRequests(
            parsePluginConfig({ ...base, interfaces: [{ network: 'x', ifname }] }),
            new Map(),
          ),
        ifname,
      ).toThrow(
        expect.objectContaining({
          cniCode: 107,
          message: expect.stringContaining(
            '[0.ifname] must not be ".", "..", "all" or "default" (names the kernel keeps for itself)',
          ),
        }),
      );
    expect(
      interfaceRequests(
        parsePluginConfig({ ...base, interfaces: [{ network: 'x', ifname: 'All' }] }),
        new Map(),
      )[0]?.ifname,
    ).toBe('All');
  });
  it('refuses a nodeName that no node can have on ADD and CHECK (code 7), not on DEL', () => {
    const long = `${'a'.repeat(63)}.`.repeat(4).slice(0, 254);
    for (const nodeName of ['', '-', 'a/b', 'Node1', 'node_1', '-a', 'a-', 'a..b', 'a.-b', long]) {
      // Parsed, as for a DEL: a pod added with it (the IPAM took "Node1") can go.
      const conf = parsePluginConfig({ ...base, nodeName });
      expect(() => checkNetworkName(conf), nodeName).toThrow(
        expect.objectContaining({
          cniCode: 7,
          message: expect.stringContaining(
            `invalid network configuration: nodeName ${JSON.stringify(nodeName.slice(0, 64))} must be a node name`,
          ),
        }),
      );
    }
    for (const nodeName of ['n1', 'node-1.example.com', '0', long.slice(0, 253)])
      expect(
        () => checkNetworkName(parsePluginConfig({ ...base, nodeName })),
        nodeName,
      ).not.toThrow();
  });
  it('refuses a requested MAC that no interface can have (code 107)', () => {
    for (const mac of ['02:00:00:00:00', '01:00:5e:00:00:01', '00:00:00:00:00:00'])
      expect(() =>
        interfaceRequests(
          parsePluginConfig({ ...base, interfaces: [{ network: 'x', mac }] }),
          new Map(),
        ),
      ).toThrow(
        expect.objectContaining({ cniCode: 107, message: expect.stringMatching(/unicast MAC/) }),
      );
    expect(
      interfaceRequests(
        parsePluginConfig({ ...base, interfaces: [{ network: 'x', mac: '02:AA:00:00:00:01' }] }),
        new Map(),
      )[0]?.mac,
    ).toBe('02:AA:00:00:00:01');
  });
});
