// The CustomResourceDefinitions, built here once so that ClusterNetwork and TenantNetwork
// share one spec schema; deploy/crds/*.yaml are generated from this module and a test
// fails when they drift (`npx vite-node test/k8s/gen-deploy.ts` rewrites them).
//
// The OpenAPI schemas catch what a schema can (types, ranges, enums, exclusive fields
// through CEL) with a message from the API server itself; what needs IP arithmetic or other
// objects (pools inside the CIDR, a network in use, tenant ranges) is the webhook's job.
export const GROUP = 'tartan.io';
export const VERSION = 'v1alpha1';

type Schema = Record<string, unknown>;
const str = (extra: Schema = {}): Schema => ({ type: 'string', ...extra });
const int = (minimum: number, maximum: number): Schema => ({
  type: 'integer',
  format: 'int64',
  minimum,
  maximum,
});
const arr = (items: Schema, extra: Schema = {}): Schema => ({ type: 'array', items, ...extra });
const obj = (properties: Record<string, Schema>, required: string[] = [], extra: Schema = {}) => ({
  type: 'object',
  properties,
  ...(required.length ? { required } : {}),
  ...extra,
});
const rule = (r: string, message: string, fieldPath?: string) => ({
  rule: r,
  message,
  ...(fieldPath ? { fieldPath } : {}),
});

const IFNAME = str({ pattern: '^[A-Za-z0-9_.-]{1,15}$', maxLength: 15 });
const IP = str({ maxLength: 45 });
const CIDR = str({ maxLength: 49 });

const route = obj({ dst: CIDR, gw: IP }, ['dst']);
const range = obj(
  {
    cidr: CIDR,
    pools: arr(obj({ start: IP, end: IP }, ['start', 'end']), { maxItems: 64 }),
    excludes: arr(CIDR, { maxItems: 256 }),
    gateway: IP,
    routes: arr(route, { maxItems: 256 }),
    blockPrefix: int(1, 128),
  },
  ['cidr'],
);

const networkSpec = obj(
  {
    type: str({ enum: ['ipvlan', 'macvlan', 'bridge', 'host-device', 'delegate'] }),
    device: IFNAME,
    devicePool: str({
      maxLength: 253,
      description: 'Device plugin resource name of a NIC/VF pool',
    }),
    vlan: int(1, 4094),
    vxlan: obj(
      {
        vni: int(1, 16777215),
        port: int(1, 65535),
        group: IP,
        remotes: arr(IP, { maxItems: 1024 }),
      },
      [],
      {
        'x-kubernetes-validations': [
          rule('!(has(self.group) && has(self.remotes))', 'vxlan: set group or remotes, not both'),
        ],
      },
    ),
    mode: str({ enum: ['l2', 'l3', 'l3s', 'bridge', 'private', 'vepa', 'passthru'] }),
    bridge: IFNAME,
    mtu: int(68, 65535),
    ipv4: range,
    ipv6: range,
    routingTable: int(1, 4294967295),
    delegate: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
    namespaces: arr(str({ maxLength: 63 }), { maxItems: 1024 }),
  },
  ['type'],
  {
    'x-kubernetes-validations': [
      rule('!(has(self.vlan) && has(self.vxlan))', 'vlan and vxlan are mutually exclusive'),
      rule(
        '!(has(self.device) && has(self.devicePool))',
        'device and devicePool are mutually exclusive',
      ),
      rule(
        "!(self.type in ['ipvlan', 'macvlan']) || has(self.device)",
        'type ipvlan and macvlan need a host device',
      ),
      rule(
        "self.type != 'host-device' || has(self.device) || has(self.devicePool)",
        'type host-device needs a device or a devicePool',
      ),
      rule(
        "self.type != 'host-device' || !(has(self.vlan) || has(self.vxlan))",
        'host-device moves a NIC as it is; vlan/vxlan are not allowed',
      ),
      rule(
        "(self.type == 'delegate') == has(self.delegate)",
        'delegate is required with, and only with, type delegate',
      ),
      rule(
        "self.type != 'delegate' || !(has(self.ipv4) || has(self.ipv6))",
        'a delegated network brings its own IPAM; ipv4/ipv6 are not allowed',
      ),
      rule(
        "!has(self.mode) || (self.type == 'ipvlan' && self.mode in ['l2', 'l3', 'l3s']) || " +
          "(self.type == 'macvlan' && self.mode in ['bridge', 'private', 'vepa', 'passthru'])",
        'mode must be l2|l3|l3s for ipvlan or bridge|private|vepa|passthru for macvlan, and is valid for no other type',
      ),
    ],
  },
);

const condition = obj(
  {
    type: str({ maxLength: 316 }),
    status: str({ enum: ['True', 'False', 'Unknown'] }),
    reason: str({ maxLength: 1024 }),
    message: str({ maxLength: 32768 }),
    lastTransitionTime: str({ format: 'date-time' }),
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
  },
  ['type', 'status'],
);
const conditions = arr(condition, {
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
});

const networkStatus = obj({
  conditions,
  observedGeneration: { type: 'integer', format: 'int64' },
  // Capacity of an IPv6 /64 does not fit an int64: strings, like Kubernetes quantities.
  capacity: obj({ ipv4: str(), ipv6: str() }),
  inUse: obj({ ipv4: { type: 'integer' }, ipv6: { type: 'integer' } }),
  attachments: { type: 'integer' },
});

const networkColumns = [
  { name: 'Type', type: 'string', jsonPath: '.spec.type' },
  { name: 'Device', type: 'string', jsonPath: '.spec.device' },
  { name: 'VLAN', type: 'integer', jsonPath: '.spec.vlan' },
  { name: 'VNI', type: 'integer', jsonPath: '.spec.vxlan.vni' },
  { name: 'IPv4', type: 'string', jsonPath: '.spec.ipv4.cidr' },
  { name: 'IPv6', type: 'string', jsonPath: '.spec.ipv6.cidr', priority: 1 },
  { name: 'In-Use-v4', type: 'integer', jsonPath: '.status.inUse.ipv4' },
  { name: 'Ready', type: 'string', jsonPath: ".status.conditions[?(@.type=='Ready')].status" },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
];

interface CrdOpts {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  scope: 'Cluster' | 'Namespaced';
  spec: Schema;
  status?: Schema;
  columns: Schema[];
  group?: string;
  version?: string;
  categories?: string[];
}

export function crd(o: CrdOpts): Record<string, unknown> {
  const group = o.group ?? GROUP;
  const props: Record<string, Schema> = { spec: o.spec };
  if (o.status) props.status = o.status;
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${o.plural}.${group}` },
    spec: {
      group,
      scope: o.scope,
      names: {
        kind: o.kind,
        listKind: `${o.kind}List`,
        plural: o.plural,
        singular: o.singular,
        shortNames: o.shortNames,
        categories: o.categories ?? ['tartan'],
      },
      versions: [
        {
          name: o.version ?? VERSION,
          served: true,
          storage: true,
          ...(o.status ? { subresources: { status: {} } } : {}),
          additionalPrinterColumns: o.columns,
          schema: { openAPIV3Schema: obj(props, ['spec']) },
        },
      ],
    },
  };
}

const range2 = (max: number) =>
  obj({ start: int(1, max), end: int(1, max) }, ['start', 'end'], {
    'x-kubernetes-validations': [rule('self.start <= self.end', 'start must not be above end')],
  });

const tenantConfigSpec = obj(
  {
    namespaces: arr(str({ maxLength: 63 }), { maxItems: 1024, minItems: 1 }),
    hostDevices: arr(
      obj(
        {
          name: IFNAME,
          vlans: arr(range2(4094), { maxItems: 64 }),
          vnis: arr(range2(16777215), { maxItems: 64 }),
        },
        ['name'],
        {
          'x-kubernetes-validations': [
            rule(
              '!(has(self.vlans) && has(self.vnis))',
              'a host device offers vlans or vnis, not both',
            ),
          ],
        },
      ),
      { maxItems: 256, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] },
    ),
    devicePools: arr(str({ maxLength: 253 }), { maxItems: 256 }),
  },
  ['namespaces'],
);

const attachmentSpec = obj(
  {
    pod: str({ maxLength: 253 }),
    podUID: str({ maxLength: 64 }),
    node: str({ maxLength: 253 }),
    containerId: str({ maxLength: 256 }),
    ifname: IFNAME,
    network: obj(
      {
        kind: str({ enum: ['ClusterNetwork', 'TenantNetwork', 'NetworkAttachmentDefinition'] }),
        name: str(),
        namespace: str(),
      },
      ['kind', 'name'],
    ),
    ips: arr(str({ maxLength: 49 }), { maxItems: 16 }),
    mac: str({ maxLength: 17 }),
  },
  ['pod', 'node', 'containerId', 'ifname', 'network'],
);

export function tartanCrds(): Record<string, unknown>[] {
  return [
    crd({
      kind: 'ClusterNetwork',
      plural: 'clusternetworks',
      singular: 'clusternetwork',
      shortNames: ['cnet'],
      scope: 'Cluster',
      spec: networkSpec,
      status: networkStatus,
      columns: networkColumns,
    }),
    crd({
      kind: 'TenantNetwork',
      plural: 'tenantnetworks',
      singular: 'tenantnetwork',
      shortNames: ['tnet'],
      scope: 'Namespaced',
      spec: networkSpec,
      status: networkStatus,
      columns: networkColumns,
    }),
    crd({
      kind: 'TenantConfig',
      plural: 'tenantconfigs',
      singular: 'tenantconfig',
      shortNames: ['tcfg'],
      scope: 'Cluster',
      spec: tenantConfigSpec,
      columns: [
        { name: 'Namespaces', type: 'string', jsonPath: '.spec.namespaces' },
        { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
      ],
    }),
    crd({
      kind: 'TartanRecord',
      plural: 'tartanrecords',
      singular: 'tartanrecord',
      shortNames: ['trec'],
      scope: 'Namespaced',
      // One datastore key per object (src/store/kubernetes.ts); value is the JSON text.
      spec: obj(
        { key: str({ maxLength: 4096 }), value: str({ maxLength: 1048576 }) },
        ['key', 'value'],
        {
          'x-kubernetes-validations': [rule('self.key == oldSelf.key', 'key is immutable')],
        },
      ),
      columns: [
        { name: 'Key', type: 'string', jsonPath: '.spec.key' },
        { name: 'Record', type: 'string', jsonPath: ".metadata.labels['tartan.io/record']" },
        { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
      ],
    }),
    crd({
      kind: 'Attachment',
      plural: 'attachments',
      singular: 'attachment',
      shortNames: ['tatt'],
      scope: 'Namespaced',
      spec: attachmentSpec,
      columns: [
        { name: 'Pod', type: 'string', jsonPath: '.spec.pod' },
        { name: 'Interface', type: 'string', jsonPath: '.spec.ifname' },
        { name: 'Network', type: 'string', jsonPath: '.spec.network.name' },
        { name: 'IPs', type: 'string', jsonPath: '.spec.ips' },
        { name: 'Node', type: 'string', jsonPath: '.spec.node' },
        { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
      ],
    }),
  ];
}

/** The Network Plumbing WG CRDs, installed only when the cluster lacks them (Multus may own them). */
export function npwgCrds(): Record<string, unknown>[] {
  const nad = crd({
    kind: 'NetworkAttachmentDefinition',
    plural: 'network-attachment-definitions',
    singular: 'network-attachment-definition',
    shortNames: ['net-attach-def'],
    scope: 'Namespaced',
    group: 'k8s.cni.cncf.io',
    version: 'v1',
    categories: [],
    spec: obj({ config: str({ description: 'A CNI network configuration (JSON text)' }) }),
    columns: [{ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }],
  });
  const claim = crd({
    kind: 'IPAMClaim',
    plural: 'ipamclaims',
    singular: 'ipamclaim',
    shortNames: [],
    scope: 'Namespaced',
    group: 'k8s.cni.cncf.io',
    version: 'v1alpha1',
    categories: [],
    spec: obj({ network: str(), interface: str() }, ['network', 'interface']),
    status: obj({ ips: arr(str()), ownerPod: obj({ name: str() }) }),
    columns: [{ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }],
  });
  // Upstream's NAD schema requires nothing in spec; keep it as permissive as theirs.
  const nadSchema = (nad.spec as { versions: { schema: { openAPIV3Schema: Schema } }[] })
    .versions[0]!.schema.openAPIV3Schema;
  delete nadSchema.required;
  const cleaned = (c: Record<string, unknown>) => {
    const names = (c.spec as { names: Record<string, unknown> }).names;
    if ((names.shortNames as string[]).length === 0) delete names.shortNames;
    if ((names.categories as string[]).length === 0) delete names.categories;
    return c;
  };
  return [cleaned(nad), cleaned(claim)];
}
