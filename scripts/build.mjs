// Builds the programs: the `tartan` CNI executable as a Bun single-file binary (start-up
// ~3 ms, see docs/adr/0001-cni-executable.md) and Node bundles of the other entry points.
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
mkdirSync(dist, { recursive: true });

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}
const srcTime = Math.max(
  newest(join(root, 'src')),
  statSync(fileURLToPath(import.meta.url)).mtimeMs,
  statSync(join(root, 'scripts', 'bun-compile.json')).mtimeMs,
);
const fresh = (out) => existsSync(out) && statSync(out).mtimeMs > srcTime;
const bunCompile = JSON.parse(readFileSync(join(root, 'scripts', 'bun-compile.json'), 'utf8'));
// Tells caches one build from another (src/network/load.ts): the sources' time, so a
// rebuild of unchanged sources keeps them.
const buildId = String(Math.round(srcTime));

// The CNI executable, twice from one entry: dist/tartan runs the core in-process or acts as
// the agent's shim; dist/tartan-shim (what the DaemonSet installs, where every call goes
// through the agent) is the shim alone: without the core's code in it, every pod's ADD
// starts ~0.5 ms sooner (docs/adr/0010-agent-netlink.md).
for (const [name, shimOnly] of [
  ['tartan', false],
  ['tartan-shim', true],
]) {
  const bin = join(dist, name);
  if (fresh(bin) && !process.argv.includes('--force')) continue;
  const bun = join(root, 'node_modules', '.bin', 'bun');
  const r = spawnSync(
    bun,
    [
      // scripts/bun-compile.json, shared with what bench:cni compiles (bench/floor-add.ts).
      // It has --no-compile-autoload-bunfig and -dotenv: a compiled Bun program reads
      // bunfig.toml and .env from its working directory unless told not to, and a plugin
      // that runs as root in whatever directory the runtime has would run a preload script
      // or take variables from there (test/kernel/failure.test.ts).
      ...bunCompile,
      // Leaves the etcd client out (src/store/index.ts): loaded from tartan-etcd.js.
      '--define',
      'process.env.TARTAN_BUILD="cni"',
      '--define',
      `process.env.TARTAN_BUILD_ID="${buildId}"`,
      // Makes the in-process branch of src/bin/tartan.ts dead code, dropped with its imports.
      '--define',
      `process.env.TARTAN_SHIM_ONLY="${shimOnly ? '1' : ''}"`,
      '--external',
      'better-sqlite3',
      // The agent's FFI (src/kernel/netlink/libc-node.ts); the binary has bun:ffi.
      '--external',
      'koffi',
      join(root, 'src/bin/tartan.ts'),
      '--outfile',
      bin,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  if (r.status !== 0) process.exit(r.status ?? 1);
}

// Node programs: bundled, with native and heavy dependencies left as imports.
const entries = {};
for (const f of [
  'lab',
  'tartanctl',
  'bench-cni',
  'bench-ipam',
  'bench-datapath',
  'bench-plot',
  'bench-agent',
]) {
  const src = f.startsWith('bench-')
    ? join(root, 'bench', `${f.slice(6)}.ts`)
    : join(root, 'src/bin', `${f}.ts`);
  if (existsSync(src)) entries[f] = src;
}
// Programs that run in the cluster, under the names deploy/ expects.
entries['controller'] = join(root, 'src/bin/tartan-controller.ts');
if (Object.keys(entries).length > 0) {
  await esbuild.build({
    entryPoints: entries,
    outdir: dist,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: true,
    logLevel: 'warning',
    define: { 'process.env.TARTAN_BUILD_ID': JSON.stringify(buildId) },
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
  });
}

// The etcd store for the CNI binary, in one file beside it (a compiled Bun binary does not
// resolve node_modules at run time), loaded only by a binary configured with an etcd store:
// inside the binary's own bundle, etcd3 and gRPC cost every ADD ~1.5 ms of start-up (ADR
// 0009). etcd3 reads its .proto files from `${__dirname}/../proto` at run time; they are
// copied to tartan-etcd/proto and its __dirname points there.
await esbuild.build({
  entryPoints: { 'tartan-etcd': join(root, 'src/store/etcd.ts') },
  outdir: dist,
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  define: { __dirname: '__tartanEtcdLib' },
  banner: {
    js: "var __tartanEtcdLib = require('node:path').join(__dirname, 'tartan-etcd', 'lib');",
  },
  logLevel: 'warning',
});
mkdirSync(join(dist, 'tartan-etcd', 'proto'), { recursive: true });
for (const f of readdirSync(join(root, 'node_modules', 'etcd3', 'proto')))
  copyFileSync(
    join(root, 'node_modules', 'etcd3', 'proto', f),
    join(dist, 'tartan-etcd', 'proto', f),
  );

// The agent is long-lived and memory-bound: split chunks so the etcd client (gRPC) loads
// only when an etcd store is configured (+10 MiB RSS otherwise). Chunks of earlier builds go.
rmSync(join(dist, 'chunks'), { recursive: true, force: true });
await esbuild.build({
  entryPoints: { 'tartan-agent': join(root, 'src/bin/tartan-agent.ts') },
  outdir: dist,
  bundle: true,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: true,
  logLevel: 'warning',
  define: { 'process.env.TARTAN_BUILD_ID': JSON.stringify(buildId) },
  banner: {
    js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
});
