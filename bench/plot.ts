// Draws a bench result (bench/results/<name>.json) as a PNG bar chart beside it, with
// gnuplot. Each benchmark calls plot() at its end; `node dist/bench-plot.js` redraws all.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Bar {
  label: string;
  value: number;
}

export function plotBars(pngPath: string, title: string, ylabel: string, bars: Bar[]): void {
  const data = bars.map((b, i) => `${i} "${b.label.replaceAll('"', "'")}" ${b.value}`).join('\n');
  const script = [
    `set terminal pngcairo size 900,480 font "sans,10"`,
    `set output '${pngPath}'`,
    `set title "${title}"`,
    `set ylabel "${ylabel}"`,
    'set style fill solid 0.8 border -1',
    'set boxwidth 0.6',
    'set grid ytics',
    'set yrange [0:*]',
    'set xtics rotate by -20',
    'unset key',
    `plot '-' using 1:3:xtic(2) with boxes lc rgb "#4a7ab5", '-' using 1:3:(sprintf("%.3g",$3)) with labels offset 0,0.7`,
    data,
    'e',
    data,
    'e',
  ].join('\n');
  const r = spawnSync('gnuplot', [], { input: script });
  if (r.status !== 0)
    throw new Error(
      `gnuplot failed (run .ci/install-deps.sh): ${r.stderr?.toString() ?? r.error?.message}`,
    );
}

type Json = Record<string, number>;

/** Known result files and the figures worth a picture. */
export function plotResult(dir: string, name: string): string | undefined {
  const file = join(dir, `${name}.json`);
  if (!existsSync(file)) return undefined;
  const j = JSON.parse(readFileSync(file, 'utf8')) as Json;
  const png = join(dir, `${name}.png`);
  const pick = (pairs: Array<[string, string]>) =>
    pairs
      .filter(([, k]) => typeof j[k] === 'number')
      .map(([label, k]) => ({ label, value: j[k]! }));
  switch (name) {
    case 'cni':
      plotBars(
        png,
        'CNI ADD latency, median (same client, same run)',
        'ms',
        pick([
          ['reference bridge+host-local', 'ref_add_p50_ms'],
          ['tartan 1 interface', 'tartan_1if_add_p50_ms'],
          ['tartan 4 interfaces', 'tartan_4if_add_p50_ms'],
          ['tartan shim + agent, 1 interface', 'agent_1if_add_p50_ms'],
          ['floor: Bun, kernel steps only', 'floor_add_p50_ms'],
        ]),
      );
      return png;
    case 'datapath':
      plotBars(
        png,
        'Pod-to-pod latency, sockperf TCP ping-pong median',
        'microseconds',
        pick([
          ['bare veth', 'bare_latency_us'],
          ['tartan macvlan', 'macvlan_latency_us'],
          ['tartan vxlan', 'vxlan_latency_us'],
          ['bridge + veth', 'bridge_latency_us'],
          ['NAT', 'nat_latency_us'],
        ]),
      );
      return png;
    case 'ipam':
      plotBars(
        png,
        'IPAM allocations per second (higher is better)',
        'allocations/s',
        pick([
          ['file 1 node', 'file_1_nodes_allocs_per_s'],
          ['file 50 nodes', 'file_50_nodes_allocs_per_s'],
          ['etcd 1 node', 'etcd_1_nodes_allocs_per_s'],
          ['etcd 10 nodes', 'etcd_10_nodes_allocs_per_s'],
          ['etcd 50 nodes', 'etcd_50_nodes_allocs_per_s'],
          ['kubernetes 50 nodes', 'kubernetes_50_nodes_allocs_per_s'],
          ['single-object baseline, etcd 50', 'baseline_50_nodes_allocs_per_s'],
        ]),
      );
      return png;
    case 'agent':
      plotBars(
        png,
        'Node agent RSS under churn (110 pods)',
        'MiB',
        pick([
          ['RSS at start', 'rss_mib_start'],
          ['RSS at end', 'rss_mib_end'],
          ['RSS max', 'rss_mib_max'],
        ]),
      );
      return png;
    default:
      return undefined;
  }
}

if (process.argv[1]?.endsWith('bench-plot.js')) {
  const dir = join(process.cwd(), 'bench', 'results');
  for (const n of ['cni', 'datapath', 'ipam', 'agent']) {
    const p = plotResult(dir, n);
    if (p) console.log(`wrote ${p}`);
  }
}
