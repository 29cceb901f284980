import { describe, expect, it } from 'vitest';
import { parseNetwork } from './parse.js';
import { API_VERSION } from './schema.js';

const net = (spec: Record<string, unknown>) => ({
  apiVersion: API_VERSION,
  kind: 'ClusterNetwork',
  metadata: { name: 'n1' },
  spec,
});
const vxlan = (x: Record<string, unknown>) =>
  net({ type: 'bridge', device: 'eth1', vxlan: { vni: 7, ...x } });

/** Expects the network refused with code 7 and `text` ("field: message") in its message. */
const refused = (raw: unknown, text: string) =>
  expect(() => parseNetwork(raw, 'n1.yaml'), text).toThrow(
    expect.objectContaining({ cniCode: 7, message: expect.stringContaining(text) }),
  );

describe('network spec: vxlan group and remotes', () => {
  it('takes a multicast group of either family, with or without remotes of its family', () => {
    for (const x of [
      { group: '239.1.1.1' },
      { group: '224.0.0.251' },
      { group: 'ff05::1:3' },
      { remotes: ['192.0.2.1', '192.0.2.2'] },
      { remotes: ['2001:db8::1', '2001:db8::2'] },
      // planParents uses both: the group on the device, the remotes as FDB entries.
      { group: '239.1.1.1', remotes: ['192.0.2.1'] },
      { group: 'ff0e::10', remotes: ['2001:db8::1'] },
    ])
      expect(() => parseNetwork(vxlan(x), 'n1.yaml'), JSON.stringify(x)).not.toThrow();
  });

  it('refuses a group that is no multicast address, naming spec.vxlan.group', () => {
    for (const [group, shown] of [
      ['10.1.1.1', '10.1.1.1'],
      ['240.0.0.1', '240.0.0.1'],
      ['2001:db8::1', '2001:db8::1'],
      ['fe80::1', 'fe80::1'],
      ['mcast', '"mcast"'],
      ['239.1.1', '"239.1.1"'],
    ])
      refused(
        vxlan({ group }),
        `spec.vxlan.group: ${shown} is not a multicast address (IPv4 224.0.0.0/4 or IPv6 ff00::/8)`,
      );
  });

  it("refuses remotes that are no other host's unicast address, naming the entry", () => {
    for (const [r, shown] of [
      ['239.1.1.1', '239.1.1.1'],
      ['ff02::1', 'ff02::1'],
      ['0.0.0.0', '0.0.0.0'],
      ['255.255.255.255', '255.255.255.255'],
      ['127.0.0.1', '127.0.0.1'],
      ['::', '::'],
      ['::1', '::1'],
      ['node-2', '"node-2"'],
      ['10.0.0.0/8', '"10.0.0.0/8"'],
    ])
      refused(
        vxlan({ remotes: ['192.0.2.1', r] }),
        `spec.vxlan.remotes.1: ${shown} is not another host's unicast IPv4 or IPv6 address`,
      );
  });

  it('refuses remotes of both families, or of another family than the group', () => {
    refused(
      vxlan({ remotes: ['192.0.2.1', '2001:db8::1'] }),
      'spec.vxlan.remotes: must be all IPv4 or all IPv6 addresses',
    );
    refused(
      vxlan({ group: '239.1.1.1', remotes: ['2001:db8::1'] }),
      'spec.vxlan.remotes: must be IPv4 addresses like the group 239.1.1.1',
    );
    refused(
      vxlan({ group: 'ff05::1', remotes: ['192.0.2.1'] }),
      'spec.vxlan.remotes: must be IPv6 addresses like the group ff05::1',
    );
  });
});

describe('network spec: links the kernel would refuse', () => {
  it('refuses a bridge that is its own device, naming spec.bridge', () => {
    const message = 'spec.bridge: must not be the device eth1: a bridge cannot be its own port';
    refused(net({ type: 'bridge', device: 'eth1', bridge: 'eth1' }), message);
    // Over a VLAN the bridge would hold a VLAN of itself.
    refused(net({ type: 'bridge', device: 'eth1', vlan: 10, bridge: 'eth1' }), message);
    expect(() =>
      parseNetwork(net({ type: 'bridge', device: 'eth1', bridge: 'br1' }), 'n1.yaml'),
    ).not.toThrow();
  });

  it('refuses an MTU under 1280 on a network with ipv6, naming spec.mtu', () => {
    const ipv6 = { cidr: 'fd00:10::/64' };
    for (const mtu of [68, 1279])
      refused(
        net({ type: 'bridge', mtu, ipv6 }),
        'spec.mtu: must be at least 1280 on a network with ipv6 (the IPv6 minimum)',
      );
    for (const spec of [
      { type: 'bridge', mtu: 1280, ipv6 },
      { type: 'bridge', mtu: 576, ipv4: { cidr: '10.0.0.0/24' } },
    ])
      expect(() => parseNetwork(net(spec), 'n1.yaml'), JSON.stringify(spec)).not.toThrow();
  });

  it('refuses host link names the kernel keeps for itself, naming the field', () => {
    const message = 'must not be ".", "..", "all" or "default" (names the kernel keeps for itself)';
    for (const name of ['all', 'default', '.', '..']) {
      refused(net({ type: 'macvlan', device: name }), `spec.device: ${message}`);
      refused(net({ type: 'bridge', bridge: name }), `spec.bridge: ${message}`);
    }
    expect(() => parseNetwork(net({ type: 'bridge', bridge: 'All' }), 'n1.yaml')).not.toThrow();
  });
});

describe('network spec: what would be ignored', () => {
  it('refuses a vlan with no device to tag on', () => {
    refused(
      net({ type: 'bridge', vlan: 100, ipv4: { cidr: '10.0.0.0/24' } }),
      'spec.device: vlan needs a device to tag on',
    );
  });

  it("refuses a delegated network's host fields: its plugins own the link", () => {
    const delegate = { cniVersion: '1.0.0', type: 'bridge' };
    for (const [extra, field] of [
      [{ device: 'eth1' }, 'device'],
      [{ vlan: 100, device: 'eth1' }, 'vlan'],
      [{ mtu: 1400 }, 'mtu'],
      [{ bridge: 'br9' }, 'bridge'],
    ] as const)
      refused(
        net({ type: 'delegate', delegate, ...extra }),
        `spec.${field}: ${field} is not used by a delegated network`,
      );
  });

  it('refuses a delegate configuration nested deeper than 32 levels', () => {
    let deep: unknown = {};
    for (let i = 0; i < 40; i++) deep = { x: deep };
    refused(
      net({ type: 'delegate', delegate: { type: 'bridge', deep } }),
      'spec.delegate: nested deeper than 32 levels',
    );
  });

  it('refuses a destination routed twice by one range', () => {
    refused(
      net({
        type: 'macvlan',
        device: 'eth1',
        ipv4: {
          cidr: '10.0.0.0/24',
          routes: [{ dst: '10.9.0.0/16' }, { dst: '10.9.0.0/16', gw: '10.0.0.2' }],
        },
      }),
      'spec.ipv4: routes: 10.9.0.0/16 is routed twice',
    );
  });
});
