import { describe, expect, it } from 'vitest';
import { isTartanError } from '../cni/errors.js';
import type { NetworkSpec } from '../network/schema.js';
import {
  NPWG_ANNOTATION as NPWG,
  parsePodInterfaces,
  TARTAN_ANNOTATION as TARTAN,
} from './annotations.js';
import { networkStatusOf } from './network-status.js';
import { resolvePodAttachments, type NetworkLookup } from './resolve.js';

const parse = (a: Record<string, string>) => parsePodInterfaces('tenant-a', a);
const refusal = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    expect(isTartanError(e, 'ERR_IFACE_REQUEST'), String(e)).toBe(true);
    return (e as Error).message;
  }
  throw new Error('not refused');
};

describe('tartan.io/interfaces', () => {
  it('parses DANM-style requests with defaults and generated names', () => {
    const reqs = parse({
      [TARTAN]: JSON.stringify([
        { network: 'oam', kind: 'ClusterNetwork', ip: '10.0.0.5/24', ip6: 'none', ifname: 'oam0' },
        { network: 'radio', policyRoutes: [{ dst: '0.0.0.0/0', gw: '10.2.0.1' }] },
        { network: 'x', ip6: 'fd00::5' },
      ]),
    });
    expect(reqs).toEqual([
      {
        ref: { kind: 'ClusterNetwork', name: 'oam' },
        ifname: 'oam0',
        ip: '10.0.0.5/24',
        ip6: 'none',
      },
      {
        ref: { kind: 'TenantNetwork', name: 'radio', namespace: 'tenant-a' },
        ifname: 'net1',
        ip: 'dynamic',
        ip6: 'dynamic',
        policyRoutes: [{ dst: '0.0.0.0/0', gw: '10.2.0.1' }],
      },
      {
        ref: { kind: 'TenantNetwork', name: 'x', namespace: 'tenant-a' },
        ifname: 'net2',
        ip: 'dynamic',
        ip6: 'fd00::5',
      },
    ]);
  });

  it('skips names taken explicitly when naming the others', () => {
    const reqs = parse({ [TARTAN]: '[{"network":"a"},{"network":"b","ifname":"net1"}]' });
    expect(reqs.map((r) => r.ifname)).toEqual(['net2', 'net1']);
  });

  it.each([
    ['{not json', 'not valid JSON'],
    ['{"network":"a"}', 'must be a JSON list'],
    ['[{"ifname":"x"}]', 'entry 0.network'],
    ['[{"network":"Bad_Name"}]', 'entry 0.network: must be a network name'],
    ['[{"network":"a","kind":"Pod"}]', 'entry 0.kind'],
    ['[{"network":"a","ip":"10.0.0.300"}]', 'is not "dynamic", "none" or an IPv4 address'],
    ['[{"network":"a","ip":"fd00::1"}]', 'is not "dynamic", "none" or an IPv4 address'],
    ['[{"network":"a","ip6":"10.0.0.1"}]', 'not "dynamic", "none" or an IPv6 address'],
    ['[{"network":"a","ip":"10.0.0.1/x"}]', 'IPv4 address'],
    ['[{"network":"a","ifname":"much-too-long-name"}]', 'entry 0.ifname: must be 1-15'],
    ['[{"network":"a","ifname":"eth0"}]', "reserved for the pod's cluster default network"],
    ['[{"network":"a","ifname":"lo"}]', "reserved for the pod's loopback"],
    [
      '[{"network":"a","ifname":"x"},{"network":"b","ifname":"x"}]',
      'interface "x" is requested twice',
    ],
    ['[{"network":"a","mac":"zz"}]', 'must be a unicast MAC address'],
    ['[{"network":"a","mac":"03:00:00:00:00:01"}]', 'must be a unicast MAC address'],
    ['[{"network":"a","colour":"red"}]', 'unknown field "colour"'],
    ['[{"network":"a","policyRoutes":[{"to":"x"}]}]', 'entry 0.policyRoutes.0'],
    [
      '[{"network":"a","defaultRoute":true},{"network":"b","defaultRoute":true}]',
      'at most one interface',
    ],
  ])('refuses %s: %s', (text, message) => {
    const msg = refusal(() => parse({ [TARTAN]: text }));
    expect(msg).toContain(TARTAN);
    expect(msg).toContain(message);
  });

  it('refuses both annotations at once', () => {
    expect(refusal(() => parse({ [TARTAN]: '[]', [NPWG]: 'a' }))).toContain('not both');
  });
});

describe('k8s.v1.cni.cncf.io/networks', () => {
  it('parses the short form', () => {
    const reqs = parse({ [NPWG]: ' net-a , other/net-b@fast0,net-c' });
    expect(
      reqs.map((r) => [r.ref.namespace, r.ref.name, r.ifname, r.ref.explicitNamespace ?? false]),
    ).toEqual([
      ['tenant-a', 'net-a', 'net1', false],
      ['other', 'net-b', 'fast0', true],
      ['tenant-a', 'net-c', 'net2', false],
    ]);
  });

  it('parses the JSON form with ips, mac, default-route, cni-args, portMappings and bandwidth', () => {
    const [r] = parse({
      [NPWG]: JSON.stringify([
        {
          name: 'net-a',
          interface: 'data0',
          ips: ['10.1.1.5/24', 'fd00:1::5/64'],
          mac: '02:00:00:00:00:05',
          'default-route': ['10.1.1.1'],
          'cni-args': { foo: 'bar' },
          portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
          bandwidth: { ingressRate: 1000, egressRate: 2000 },
          'ipam-claim-reference': 'db-0',
        },
      ]),
    });
    expect(r).toEqual({
      ref: {
        kind: 'NetworkAttachmentDefinition',
        name: 'net-a',
        namespace: 'tenant-a',
        npwg: true,
      },
      ifname: 'data0',
      ip: '10.1.1.5/24',
      ip6: 'fd00:1::5/64',
      mac: '02:00:00:00:00:05',
      defaultRoute: true,
      defaultGateways: ['10.1.1.1'],
      cniArgs: { foo: 'bar' },
      portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
      bandwidth: { ingressRate: 1000, egressRate: 2000 },
      claim: 'db-0',
    });
  });

  it('refuses an annotation that is not a string (a runtime passes JSON of any shape)', () => {
    for (const value of [5, ['a'], { a: 1 }])
      expect(
        refusal(() =>
          parsePodInterfaces('tenant-a', { [NPWG]: value } as unknown as Record<string, string>),
        ),
      ).toMatch(/k8s\.v1\.cni\.cncf\.io\/networks: must be a string, not (a list|number|object)/);
  });

  it('an empty annotation asks for nothing', () => {
    expect(parse({ [NPWG]: '  ' })).toEqual([]);
  });

  it.each([
    ['a/b/c', 'must be [namespace/]name[@interface]'],
    ['a,,b', 'entry 1'],
    ['Bad_NS/x', '"Bad_NS" is not a namespace name'],
    ['ns/UPPER', '"UPPER" is not a network name'],
    ['a@this-is-way-too-long', 'interface "this-is-way-too-long"'],
    ['a@eth0', 'reserved'],
    ['a@all', 'names the kernel keeps for itself'],
    [
      `[{"name":"a","cni-args":${'['.repeat(40)}${']'.repeat(40)}}]`,
      'nested deeper than 32 levels',
    ],
    ['[{"name":"a","bandwidth":{"ingresRate":5}}]', 'ingresRate'],
    [
      JSON.stringify(Array.from({ length: 65 }, (_, i) => `n${i}`).join(',')).slice(1, -1),
      'asks for 65 interfaces; a pod has at most 64',
    ],
    ['[{"name":"a","interface":"default"}]', 'names the kernel keeps for itself'],
    ['[{"name":"a","ips":["10.0.0.1/24","10.0.0.2/24"]}]', 'more than one IPv4 address'],
    ['[{"name":"a","ips":["bogus"]}]', '"bogus" is not an IP address'],
    ['[{"name":"a","default-route":["nope"]}]', '"nope" is not a gateway IP address'],
    [
      '[{"name":"a","portMappings":[{"hostPort":0,"containerPort":80}]}]',
      'entry 0.portMappings.0.hostPort',
    ],
    ['[{"name":"a","bandwidth":{"ingressRate":-1}}]', 'entry 0.bandwidth.ingressRate'],
    ['[{"name":"a","interfaceRequest":"x"}]', 'unknown field "interfaceRequest"'],
    ['[{"interface":"x"}]', 'entry 0.name'],
    ['[1]', 'entry 0'],
    ['[{"name":"a"', 'not valid JSON'],
  ])('refuses %s: %s', (text, message) => {
    const msg = refusal(() => parse({ [NPWG]: text }));
    expect(msg).toContain(NPWG);
    expect(msg).toContain(message);
  });
});

describe('resolving against the networks a pod may use', () => {
  const spec: NetworkSpec = { type: 'bridge', ipv4: { cidr: '10.9.0.0/24' } };
  const lookup: NetworkLookup = {
    tenantNetwork: async (ns, name) =>
      ns === 'tenant-a' && name === 'radio' ? { spec } : undefined,
    clusterNetwork: async (name) =>
      name === 'oam'
        ? { spec }
        : name === 'restricted'
          ? { spec: { ...spec, namespaces: ['tenant-b'] } }
          : undefined,
    nad: async (ns, name) =>
      ns !== 'tenant-a'
        ? undefined
        : name === 'sriov'
          ? { spec: { config: '{"type":"sriov"}' } }
          : name === 'broken'
            ? { spec: { config: 'not json' } }
            : name === 'typeless'
              ? { spec: { config: '{"cniVersion":"1.0.0"}' } }
              : name === 'empty'
                ? { spec: {} }
                : undefined,
  };
  const pod = (annotations: Record<string, string>) => ({
    metadata: { name: 'p', namespace: 'tenant-a', annotations },
  });
  const codeOf = (p: Promise<unknown>) =>
    p.then(
      () => 'ok',
      (e: { code: string; message: string }) => `${e.code}: ${e.message}`,
    );

  it('finds a NAD, then a TenantNetwork, then a ClusterNetwork for an NPWG name', async () => {
    const got = await resolvePodAttachments(pod({ [NPWG]: 'sriov,radio,oam' }), lookup);
    expect(got.map((a) => [a.network.kind, a.network.name, a.request.ifname])).toEqual([
      ['NetworkAttachmentDefinition', 'sriov', 'net1'],
      ['TenantNetwork', 'radio', 'net2'],
      ['ClusterNetwork', 'oam', 'net3'],
    ]);
    expect(got[0]!.nadConfig).toBe('{"type":"sriov"}');
    // No IPv6 range: dynamic becomes none.
    expect(got[1]!.request).toMatchObject({ network: 'radio', ip: 'dynamic', ip6: 'none' });
  });

  it('refuses a NAD whose config is no usable CNI configuration (code 7), for the webhook too', async () => {
    for (const [nad, msg] of [
      ['broken', /spec\.config is not JSON/],
      ['typeless', /spec\.config: type must name a plugin/],
      ['empty', /spec\.config is missing/],
    ] as const)
      expect(await codeOf(resolvePodAttachments(pod({ [NPWG]: nad }), lookup))).toMatch(
        new RegExp(
          `^ERR_CONFIG: pod tenant-a/p: NetworkAttachmentDefinition tenant-a/${nad}: ${msg.source}`,
        ),
      );
  });

  it("qualifies an IPAM claim with the pod's namespace", async () => {
    // Two tenants naming the same claim on a shared network must get two claims.
    const text = '[{"name":"oam","ipam-claim-reference":"db-0"}]';
    const got = await resolvePodAttachments(pod({ [NPWG]: text }), lookup);
    expect(got[0]!.request.claim).toBe('tenant-a/db-0');
    const tartan = '[{"network":"oam","kind":"ClusterNetwork","claim":"db-0"}]';
    const other = await resolvePodAttachments(
      { metadata: { name: 'p', namespace: 'tenant-b', annotations: { [TARTAN]: tartan } } },
      lookup,
    );
    expect(other[0]!.request.claim).toBe('tenant-b/db-0');
  });

  it("refuses another tenant's network, naming both namespaces", async () => {
    expect(await codeOf(resolvePodAttachments(pod({ [NPWG]: 'tenant-b/radio' }), lookup))).toMatch(
      /^ERR_IFACE_REQUEST: pod tenant-a\/p: may not use tenant-b\/radio: networks of namespace tenant-b belong to another tenant/,
    );
  });

  it('refuses a ClusterNetwork that does not admit the namespace', async () => {
    const msg = await codeOf(
      resolvePodAttachments(
        pod({ [TARTAN]: '[{"network":"restricted","kind":"ClusterNetwork"}]' }),
        lookup,
      ),
    );
    expect(msg).toContain(
      'ClusterNetwork "restricted" does not admit namespace tenant-a (it admits: tenant-b)',
    );
  });

  it('reports unknown networks with ERR_UNKNOWN_NETWORK and what was searched', async () => {
    expect(
      await codeOf(resolvePodAttachments(pod({ [TARTAN]: '[{"network":"nope"}]' }), lookup)),
    ).toContain(
      'ERR_UNKNOWN_NETWORK: pod tenant-a/p: no TenantNetwork "nope" in namespace tenant-a',
    );
    expect(await codeOf(resolvePodAttachments(pod({ [NPWG]: 'nope' }), lookup))).toContain(
      'and no ClusterNetwork "nope"',
    );
    expect(await codeOf(resolvePodAttachments(pod({ [NPWG]: 'tenant-a/oam' }), lookup))).toContain(
      'ERR_UNKNOWN_NETWORK: pod tenant-a/p: no NetworkAttachmentDefinition or TenantNetwork "oam" in namespace tenant-a',
    );
  });

  it('refuses a fixed address in a family the network lacks', async () => {
    expect(
      await codeOf(
        resolvePodAttachments(pod({ [TARTAN]: '[{"network":"radio","ip6":"fd00::1"}]' }), lookup),
      ),
    ).toContain('fixed IPv6 address fd00::1 asked of radio, which has no IPv6 range');
  });

  it('refuses policy routes the network has no table for, as the CNI core would', async () => {
    const ask = (routes: unknown) =>
      codeOf(
        resolvePodAttachments(
          pod({ [TARTAN]: JSON.stringify([{ network: 'radio', policyRoutes: routes }]) }),
          lookup,
        ),
      );
    expect(await ask([{ dst: '10.99.0.0/16' }])).toContain(
      'ERR_IFACE_REQUEST: pod tenant-a/p: net1: policyRoutes need a network with a routingTable',
    );
    expect(await ask([])).toBe('ok');
  });
});

describe('network-status', () => {
  it('describes the interface of a CNI result', () => {
    const result = {
      cniVersion: '1.1.0',
      interfaces: [
        { name: 'tartan-host0' },
        { name: 'net1', mac: '02:00:00:00:00:09', sandbox: '/var/run/netns/x', mtu: 1500 },
      ],
      ips: [
        { address: '10.9.0.7/24', gateway: '10.9.0.1', interface: 1 },
        { address: 'fd00:9::7/64', interface: 1 },
        { address: '10.8.0.1/24', interface: 0 },
      ],
      dns: { nameservers: ['10.9.0.53'] },
    };
    expect(networkStatusOf('tenant-a/radio', 'net1', result, { default: true })).toEqual({
      name: 'tenant-a/radio',
      interface: 'net1',
      ips: ['10.9.0.7', 'fd00:9::7'],
      mac: '02:00:00:00:00:09',
      mtu: 1500,
      default: true,
      dns: { nameservers: ['10.9.0.53'] },
      gateway: ['10.9.0.1'],
    });
    expect(networkStatusOf('oam', 'net2', { cniVersion: '1.1.0' })).toEqual({
      name: 'oam',
      interface: 'net2',
      ips: [],
      default: false,
      dns: {},
    });
  });
});
