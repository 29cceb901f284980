// `npm run lab [-- up|status|down|run] [--scenario file.yaml]`: the local lab.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  labDown,
  labInterfaces,
  labProbes,
  labUp,
  loadLabState,
  table,
  type LabState,
} from '../lab/lab.js';
import { DEFAULT_SCENARIO, loadScenario, parseScenario } from '../lab/scenario.js';

const log = (s: string) => console.log(`[lab] ${s}`);

async function status(st: LabState): Promise<boolean> {
  const rows = await labInterfaces(st);
  console.log('\nWho got what (read back from the kernel):\n');
  console.log(
    table(
      ['POD', 'NODE', 'IFACE', 'NETWORK', 'TYPE', 'ADDRESSES', 'MAC'],
      rows.map((r) => [
        r.pod,
        r.node,
        r.ifname,
        r.network,
        r.type,
        r.addresses.join(' ') || '-',
        r.mac,
      ]),
    ),
  );
  const probes = await labProbes(st, rows);
  console.log('\nConnectivity (ping from pod to address):\n');
  console.log(
    table(
      ['NETWORK', 'FROM', 'TO', 'EXPECT', 'RESULT'],
      probes.map((p) => [
        p.network,
        p.from,
        p.to,
        p.expect ? 'reach' : 'blocked',
        p.ok ? 'ok' : 'FAIL',
      ]),
    ),
  );
  const bad = probes.filter((p) => !p.ok);
  console.log(`\n${probes.length - bad.length}/${probes.length} probes as expected`);
  return bad.length === 0;
}

async function main(): Promise<number> {
  // [up|status|down|run] [--scenario file.yaml], in either order.
  const args = process.argv.slice(2);
  const si = args.indexOf('--scenario');
  const file = si >= 0 ? args[si + 1] : undefined;
  const rest = args.filter((_, i) => si < 0 || (i !== si && i !== si + 1));
  const usable =
    rest.length <= 1 &&
    !rest.some((a) => a.startsWith('--')) &&
    (si < 0 || (file !== undefined && !file.startsWith('--')));
  const cmd = usable ? (rest[0] ?? 'run') : 'usage';
  if (cmd === 'usage') {
    console.error(`usage: lab [up|status|down|run] [--scenario file.yaml]`);
    return 2;
  }
  const { scenario, networks } =
    file !== undefined ? loadScenario(file) : parseScenario(DEFAULT_SCENARIO, 'embedded default');
  const tartan = process.env.TARTAN_BIN ?? join(dirname(fileURLToPath(import.meta.url)), 'tartan');
  if (process.getuid?.() !== 0) {
    console.error('the lab needs root (it creates network namespaces)');
    return 2;
  }
  switch (cmd) {
    case 'up': {
      const st = await labUp(scenario, networks, tartan, log);
      return (await status(st)) ? 0 : 1;
    }
    case 'status': {
      const st = loadLabState(scenario.name);
      if (!st) {
        console.error(`lab ${scenario.name} is not up`);
        return 1;
      }
      return (await status(st)) ? 0 : 1;
    }
    case 'down': {
      const left = await labDown(scenario.name, log);
      log(left.length === 0 ? 'everything removed' : `LEFT BEHIND: ${left.join(' ')}`);
      return left.length === 0 ? 0 : 1;
    }
    case 'run': {
      let ok = false;
      try {
        const st = await labUp(scenario, networks, tartan, log);
        ok = await status(st);
      } finally {
        const left = await labDown(scenario.name, log);
        log(
          left.length === 0
            ? 'torn down: pods detached by tartan DEL, namespaces removed, nothing left'
            : `LEFT BEHIND: ${left.join(' ')}`,
        );
        ok = ok && left.length === 0;
      }
      return ok ? 0 : 1;
    }
    default:
      console.error(`usage: lab [up|status|down|run] [--scenario file.yaml]`);
      return 2;
  }
}

main().then(
  (c) => process.exit(c),
  (e) => {
    console.error(`[lab] ${(e as Error).message}`);
    process.exit(1);
  },
);
