// The `tartan` CNI executable. stdout carries only the result or the error object.
// With `agentSocket` in its plugin config it is a thin shim in front of the node agent
// (src/agent/shim.ts); without, it runs the whole CNI core in-process. Both paths are
// dynamic imports so the shim never evaluates the core (validation, yaml, IPAM, SQLite): every
// pod ADD pays this program's start-up (docs/adr/0001, 0006). The shim-only build
// (TARTAN_SHIM_ONLY, dist/tartan-shim) carries no core at all (docs/adr/0010).
import { TartanError } from '../cni/errors.js';
import { MAX_STDIN } from '../cni/protocol.js';
import { loadLibc } from '../kernel/netlink/ffi.js';

// stdin and stdout through Bun's own file API: `node:fs` costs the binary ~0.5 ms and
// ~150 page faults of start-up, and the shim path needs nothing else from it.
interface BunIo {
  stdin: { stream(): ReadableStream<Uint8Array> };
  stdout: object;
  stderr: object;
  write(dest: object, data: string): Promise<number>;
}
// This program is only ever built as a Bun binary (scripts/build.mjs).
const Bun = (globalThis as unknown as { Bun: BunIo }).Bun;

interface Input {
  text: string;
  readError?: unknown;
}

/**
 * stdin up to the limit: reading stops once the input is over it, so an oversized
 * configuration is detected, not truncated, and a huge one is never read whole. A stream
 * reader: measured against one bounded Bun.stdin.slice().bytes() it starts fewer threads
 * (3 against 5) and answers 0.05-0.2 ms sooner in the shim-only build, no later in the
 * full one (interleaved runs, 2026-11-26).
 */
async function readStdin(): Promise<Input> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    const reader = Bun.stdin.stream().getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
      if (size > MAX_STDIN) {
        void reader.cancel().catch(() => undefined);
        return {
          text: '',
          readError: new TartanError(
            'ERR_DECODE',
            `network configuration is larger than ${MAX_STDIN} bytes`,
          ),
        };
      }
    }
  } catch (e) {
    return {
      text: '',
      readError: new TartanError(
        'ERR_IO',
        `cannot read the network configuration from stdin: ${(e as Error).message}`,
        { cause: e },
      ),
    };
  }
  const bytes = chunks.length === 1 ? chunks[0]! : new Uint8Array(size);
  if (chunks.length > 1) {
    let at = 0;
    for (const c of chunks) {
      bytes.set(c, at);
      at += c.length;
    }
  }
  return { text: new TextDecoder().decode(bytes) };
}

/** The plugin config when it asks for the agent; anything unparsable stays in-process. */
function agentConfig(
  text: string,
): ({ agentSocket: string } & Record<string, unknown>) | undefined {
  try {
    const v = JSON.parse(text) as Record<string, unknown> | null;
    if (typeof v === 'object' && v !== null && typeof v.agentSocket === 'string' && v.agentSocket)
      return v as { agentSocket: string } & Record<string, unknown>;
  } catch {
    // not JSON: the in-process path reports it with the right code
  }
  return undefined;
}

/** All of the text on stdout before the process ends (Bun.write loops over short writes). */
async function writeAll(text: string): Promise<void> {
  if (text !== '') await Bun.write(Bun.stdout, text);
}

/** The exit code, and whether SQLite files may be open (then the process ends by _exit). */
async function main(): Promise<{ code: number; stores: boolean }> {
  const input = await readStdin();
  const shim = input.readError === undefined ? agentConfig(input.text) : undefined;
  if (shim) {
    const [{ runShim }, { cniVars }] = await Promise.all([
      import('../agent/shim.js'),
      import('../agent/wire.js'),
    ]);
    const r = await runShim(shim, cniVars(process.env), input.text);
    await writeAll(r.stdout);
    return { code: r.code, stores: false };
  }
  // Defined at build time: in the shim-only build the core is dead code, left out. VERSION
  // needs no core either: loading it, and the FFI for the exit, made VERSION ~3 ms slower.
  return process.env.TARTAN_SHIM_ONLY === '1' || process.env.CNI_COMMAND === 'VERSION'
    ? withoutCore(input)
    : inProcess(input);
}

/** VERSION, answered as the core would; in the shim-only build, a refusal of the rest. */
async function withoutCore(input: Input): Promise<{ code: number; stores: boolean }> {
  const [{ withoutAgent }, { cniVars }] = await Promise.all([
    import('../agent/shim.js'),
    import('../agent/wire.js'),
  ]);
  const r = withoutAgent(cniVars(process.env), input.text, input.readError);
  await writeAll(r.stdout);
  return { code: r.code, stores: false };
}

async function inProcess(input: Input): Promise<{ code: number; stores: boolean }> {
  const { executeCni } = await import('../agent/execute.js');
  const t0 = performance.now();
  const r = await executeCni(process.env, input, { oneShot: true });
  await writeAll(r.stdout);
  if (r.error !== undefined && process.env.TARTAN_DEBUG)
    await Bun.write(Bun.stderr, `${(r.error as Error).stack}\n`);
  logCall(r, performance.now() - t0);
  return { code: r.code, stores: true };
}

const LEVELS = ['debug', 'info', 'warn', 'error'];

/**
 * The configuration's logFile: one JSON line per call, a failure at "error", a success at
 * "info" (kept when logLevel allows), for operators who cannot see a runtime's stderr. The
 * agent logs calls it serves to its own output instead. A log that cannot be written costs
 * the call nothing.
 */
function logCall(
  r: {
    code: number;
    stdout: string;
    env?: { command: string; containerId: string; ifname: string; netns: string };
    raw?: Record<string, unknown>;
  },
  ms: number,
): void {
  const file = r.raw?.logFile;
  if (typeof file !== 'string' || !file.startsWith('/')) return;
  const level = r.code === 0 ? 'info' : 'error';
  const min = typeof r.raw?.logLevel === 'string' ? LEVELS.indexOf(r.raw.logLevel) : 1;
  if (LEVELS.indexOf(level) < min) return;
  let failure: Record<string, unknown> = {};
  if (r.code !== 0)
    try {
      const e = JSON.parse(r.stdout) as { code?: number; msg?: string };
      failure = { code: e.code, error: e.msg };
    } catch {
      failure = { code: r.code };
    }
  const line = JSON.stringify({
    ts: new Date().toISOString(),
    level,
    msg: r.code === 0 ? `${r.env?.command} done` : `${r.env?.command ?? 'call'} failed`,
    containerId: r.env?.containerId,
    ifname: r.env?.ifname,
    netns: r.env?.netns,
    ms: Math.round(ms * 100) / 100,
    ...failure,
  });
  try {
    process.getBuiltinModule('node:fs').appendFileSync(file, `${line}\n`, { mode: 0o600 });
  } catch {
    // No log is not a failed call.
  }
}

/**
 * Ends the process without Bun's exit handlers. Those close the SQLite databases, and
 * closing the last connection of a WAL database checkpoints it and deletes the WAL: four
 * fsyncs at exit, and the next process recreates the WAL with two more (~4 ms of every
 * ADD). Everything the call wrote is committed and the output is written synchronously;
 * leaving the databases open is what a crash does, which the file store is built to
 * survive (docs/adr/0002). runCni trims a large WAL first (SqliteDriver.trimWal).
 */
async function exitNow({ code, stores }: { code: number; stores: boolean }): Promise<never> {
  // The shim opens no database: process.exit spares it loading FFI (~0.3 ms) for _exit.
  if (stores && process.versions.bun) {
    const libc = await loadLibc().catch(() => undefined);
    libc?.exit(code);
  }
  process.exit(code);
}

void main().then(exitNow);
