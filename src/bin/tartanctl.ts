// tartanctl: networks, pools, a pod's interfaces, check (intent vs kernel), topology.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { checkInterface } from '../attach/check.js';
import { openContext } from '../ctl/context.js';
import {
  claimsView,
  forgetIpamOf,
  networksView,
  podView,
  poolsView,
  records,
  releaseClaimOf,
  topologyDot,
} from '../ctl/commands.js';
import { createKernel } from '../kernel/iproute.js';
import { table } from '../lab/lab.js';

const USAGE = `usage: tartanctl <command> [options]
commands:
  networks                 networks with type, segment, capacity and usage
  pools <network>          the network's address blocks: node affinity and use
  claims <network>         the network's persistent claims, their addresses and holders
  release-claim <network> <claim>
                           give a claim's addresses back (in a cluster: delete its
                           IPAMClaim object instead)
  forget-ipam <network>    remove the IPAM records of a network that holds no address (it
                           was removed, or its cidr changes; in a cluster the controller does)
  pod <name|containerId>   a pod's interfaces as Tartan recorded them
  check                    every recorded attachment against the kernel
  topology --out F         nodes, pods and networks as a picture (.svg, .png or .dot)
options:
  --lab <name>             use a running local lab (npm run lab -- up)
  --kubeconfig F           use a cluster: networks, Tartan's records and Attachments
                           (check runs on a node, against its own state)
  --networks-dir D --store-path F | --etcd URL --state-dir D --node N`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      lab: { type: 'string' },
      kubeconfig: { type: 'string' },
      namespace: { type: 'string' },
      'networks-dir': { type: 'string' },
      'store-path': { type: 'string' },
      etcd: { type: 'string' },
      'state-dir': { type: 'string' },
      node: { type: 'string' },
      out: { type: 'string' },
      local: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [cmd, arg, arg2] = positionals;
  if (!cmd || values.help) {
    console.log(USAGE);
    return cmd ? 0 : 2;
  }
  // The command line is checked before any datastore or cluster is opened: a typo should
  // not be reported as a missing networks directory.
  const commands = [
    'networks',
    'pools',
    'claims',
    'release-claim',
    'forget-ipam',
    'pod',
    'check',
    'topology',
  ];
  if (!commands.includes(cmd)) {
    console.error(`tartanctl: unknown command ${JSON.stringify(cmd)}\n${USAGE}`);
    return 2;
  }
  if ((cmd === 'pools' || cmd === 'claims' || cmd === 'forget-ipam') && !arg)
    throw new Error(`${cmd} needs a network name`);
  if (cmd === 'release-claim' && !arg2)
    throw new Error('release-claim needs a network name and a claim name');
  if (cmd === 'pod' && !arg) throw new Error('pod needs a pod name or container id');
  const ctx = await openContext({
    ...(values.lab ? { lab: values.lab } : {}),
    ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
    ...(values.namespace ? { namespace: values.namespace } : {}),
    ...(values['networks-dir'] ? { networksDir: values['networks-dir'] } : {}),
    ...(values['store-path'] ? { storePath: values['store-path'] } : {}),
    ...(values.etcd ? { etcd: values.etcd } : {}),
    ...(values['state-dir'] ? { stateDir: values['state-dir'] } : {}),
    ...(values.node ? { node: values.node } : {}),
  });
  try {
    switch (cmd) {
      case 'networks':
        console.log(
          table(
            ['NAME', 'TYPE', 'DEVICE', 'SEGMENT', 'CIDRS', 'CAPACITY', 'IN USE', 'BLOCKS'],
            await networksView(ctx),
          ),
        );
        return 0;
      case 'pools':
        console.log(
          table(
            ['FAMILY', 'BLOCK', 'NODE', 'USED', 'CLAIMED', 'GC-MARKED', 'SEQ'],
            await poolsView(ctx, arg!),
          ),
        );
        return 0;
      case 'claims':
        console.log(table(['CLAIM', 'ADDRESSES', 'HELD BY'], await claimsView(ctx, arg!)));
        return 0;
      case 'release-claim':
        await releaseClaimOf(ctx, arg!, arg2!);
        console.log(`released claim ${arg2} of network ${arg}`);
        return 0;
      case 'forget-ipam': {
        const n = await forgetIpamOf(ctx, arg!);
        console.log(`removed ${n} IPAM record${n === 1 ? '' : 's'} of network ${arg}`);
        return 0;
      }
      case 'pod':
        console.log(
          table(
            [
              'NODE',
              'IFACE',
              'NETWORK',
              'TYPE',
              'ADDRESSES',
              'HOST PARENTS',
              'POLICY RULES',
              'STATE',
            ],
            await podView(ctx, arg!),
          ),
        );
        return 0;
      case 'check':
        if (ctx.attachments)
          throw new Error(
            "check compares a node's own state with its kernel: run it on the node (--state-dir)",
          );
        return await check(ctx, values);
      case 'topology': {
        const out = values.out ?? 'tartan-topology.svg';
        const dot = await topologyDot(ctx);
        if (out.endsWith('.dot')) writeFileSync(out, dot);
        else {
          const fmt = out.endsWith('.png') ? 'png' : 'svg';
          const r = spawnSync('dot', [`-T${fmt}`, '-o', out], { input: dot });
          if (r.status !== 0)
            throw new Error(`graphviz dot failed: ${r.stderr?.toString() ?? 'not installed'}`);
        }
        console.log(`wrote ${out}`);
        return 0;
      }
      default:
        return 2; // refused above
    }
  } finally {
    await ctx.store.close();
  }
}

/** Host-side state lives in the node's netns, so each lab node is checked from inside it. */
async function check(
  ctx: Awaited<ReturnType<typeof openContext>>,
  values: { lab?: string | undefined; local?: boolean | undefined; node?: string | undefined },
): Promise<number> {
  if (values.lab && !values.local) {
    let bad = 0;
    for (const n of ctx.nodes) {
      const r = spawnSync(
        'ip',
        [
          'netns',
          'exec',
          n.netns!,
          process.execPath,
          process.argv[1]!,
          'check',
          '--local',
          '--state-dir',
          n.stateDir,
          '--node',
          n.name,
          '--lab',
          values.lab,
        ],
        { stdio: 'inherit' },
      );
      if (r.status !== 0) bad++;
    }
    return bad === 0 ? 0 : 1;
  }
  const k = createKernel();
  let bad = 0;
  // Inside a lab node, only that node's records are checked (the kernel is that node's).
  const only = values.local ? values.node : undefined;
  for (const { node, rec } of await records(ctx)) {
    if (only && node !== only) continue;
    for (const i of rec.interfaces) {
      if (i.delegate) continue;
      try {
        await checkInterface(k, rec.netns, i);
        console.log(`ok    ${node} ${rec.containerId} ${i.ifname} (${i.network})`);
      } catch (e) {
        bad++;
        console.log(
          `DRIFT ${node} ${rec.containerId} ${i.ifname} (${i.network}): ${(e as Error).message}`,
        );
      }
    }
  }
  return bad === 0 ? 0 : 1;
}

main().then(
  (c) => process.exit(c),
  (e) => {
    console.error(`tartanctl: ${(e as Error).message}`);
    process.exit(1);
  },
);
