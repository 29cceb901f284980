// The floor of any ADD done by a fresh Bun process, for `npm run bench:cni`: built like
// dist/tartan (scripts/build.mjs flags), it runs the kernel steps of Tartan's one-interface
// macvlan ADD, planned by the pipeline's own functions and applied through the same netlink
// driver, and nothing else: no configuration schema, networks directory, IPAM, datastore or
// attachment records. Its ADD time over the reference's says how much of the target a Bun
// executable can meet at best (docs/adr/0009-fast-add-path.md). DEL does nothing: the bench
// deletes the pod's netns, which removes the macvlan.
import { planAddressing, podDefaults } from '../src/attach/addressing.js';
import { linkOps } from '../src/attach/links.js';
import type { InterfaceRecord } from '../src/attach/records.js';
import { createProcessKernel } from '../src/kernel/index.js';
import { loadLibc } from '../src/kernel/netlink/ffi.js';
import { HOST } from '../src/kernel/types.js';
import type { Network } from '../src/network/schema.js';

interface BunIo {
  stdin: { stream(): ReadableStream<Uint8Array> };
  stdout: object;
  write(dest: object, data: string): Promise<number>;
}
const Bun = (globalThis as unknown as { Bun: BunIo }).Bun;

/** stdin: {device, cidr, address, prefixLength, gateway}, as the bench's network b1 gives. */
interface FloorInput {
  device: string;
  cidr: string;
  address: string;
  prefixLength: number;
  gateway: string;
}

async function main(): Promise<number> {
  if (process.env.CNI_COMMAND !== 'ADD') return 0;
  const chunks: Uint8Array[] = [];
  const reader = Bun.stdin.stream().getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  const text = chunks.map((c) => new TextDecoder().decode(c)).join('');
  const input = JSON.parse(text) as FloorInput;
  const netns = process.env.CNI_NETNS!;
  const ifname = process.env.CNI_IFNAME!;
  const containerId = process.env.CNI_CONTAINERID!;
  const net = {
    apiVersion: 'tartan.io/v1alpha1',
    kind: 'ClusterNetwork',
    metadata: { name: 'floor' },
    spec: { type: 'macvlan', device: input.device, ipv4: { cidr: input.cidr } },
  } as Network;
  const ir = {
    network: 'floor',
    ifname,
    allocations: [
      {
        family: 4,
        address: input.address,
        prefixLength: input.prefixLength,
        gateway: input.gateway,
        seq: 1,
        block: input.cidr,
      },
    ],
  } as unknown as InterfaceRecord;
  const link = linkOps(netns, containerId, ifname, net, input.device, ir, undefined);
  const a = planAddressing(ifname, net, { network: 'floor' }, ir.allocations, 0, [4]);
  const k = await createProcessKernel();
  await k.run([
    { t: { ns: netns }, ops: podDefaults() },
    { t: HOST, ops: link.host },
    { t: { ns: netns }, ops: [...link.pod, ...a.ops] },
  ]);
  const result = {
    cniVersion: '1.1.0',
    interfaces: [{ name: ifname, sandbox: netns, mac: ir.mac }],
    ips: [{ address: `${input.address}/${input.prefixLength}`, gateway: input.gateway }],
  };
  await Bun.write(Bun.stdout, JSON.stringify(result));
  return 0;
}

// Ends like dist/tartan: _exit, no exit handlers.
void main().then(async (code) => (await loadLibc()).exit(code));
