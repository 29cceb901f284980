// The `tartan` CNI executable. stdout carries only the result or the error object.
// With `agentSocket` in its plugin config it is a thin shim in front of the node agent
// (src/agent/shim.ts); without, it runs the whole CNI core in-process. Both paths are
// dynamic imports so the shim never evaluates the core (validation, yaml, IPAM, SQLite): every
// pod ADD pays this program's start-up (docs/adr/0001, 0006).
import { readSync, writeSync } from 'node:fs';
import { TartanError } from '../cni/errors.js';
import { MAX_STDIN } from '../cni/protocol.js';
import { loadLibc } from '../kernel/netlink/ffi.js';

interface Input {
  text: string;
  readError?: unknown;
}

const PAUSE = new Int32Array(new SharedArrayBuffer(4));

function readStdin(): Input {
  // Read one byte past the limit so an oversized configuration is detected, not truncated.
  const buf = Buffer.alloc(MAX_STDIN + 1);
  let n = 0;
  for (;;) {
    let r: number;
    try {
      r = readSync(0, buf, n, buf.length - n, null);
    } catch (e) {
      // A non-blocking stdin whose writer is not done yet: wait a little instead of spinning.
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
        Atomics.wait(PAUSE, 0, 0, 1);
        continue;
      }
      if ((e as NodeJS.ErrnoException).code === 'EOF') break;
      return { text: '', readError: e };
    }
    if (r === 0) break;
    n += r;
    if (n > MAX_STDIN)
      return {
        text: '',
        readError: new TartanError(
          'ERR_DECODE',
          `network configuration is larger than ${MAX_STDIN} bytes`,
        ),
      };
  }
  return { text: buf.subarray(0, n).toString('utf8') };
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

/** stdout without process.stdout, whose stream set-up costs Bun ~1.5 ms of start-up. */
function writeAll(text: string): void {
  const buf = Buffer.from(text);
  for (let off = 0; off < buf.length;) {
    try {
      off += writeSync(1, buf, off);
    } catch (e) {
      // A non-blocking pipe that is full: the runtime is reading; try again.
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
    }
  }
}

async function main(): Promise<number> {
  const input = readStdin();
  const shim = input.readError === undefined ? agentConfig(input.text) : undefined;
  if (shim) {
    const [{ runShim }, { cniVars }] = await Promise.all([
      import('../agent/shim.js'),
      import('../agent/wire.js'),
    ]);
    const r = await runShim(shim, cniVars(process.env), input.text);
    writeAll(r.stdout);
    return r.code;
  }
  const { executeCni } = await import('../agent/execute.js');
  const r = await executeCni(process.env, input, { oneShot: true });
  writeAll(r.stdout);
  if (r.error !== undefined && process.env.TARTAN_DEBUG)
    writeSync(2, `${(r.error as Error).stack}\n`);
  return r.code;
}

/**
 * Ends the process without Bun's exit handlers. Those close the SQLite databases, and
 * closing the last connection of a WAL database checkpoints it and deletes the WAL: four
 * fsyncs at exit, and the next process recreates the WAL with two more (~4 ms of every
 * ADD). Everything the call wrote is committed and the output is written synchronously;
 * leaving the databases open is what a crash does, which the file store is built to
 * survive (docs/adr/0002). runCni trims a large WAL first (SqliteDriver.trimWal).
 */
async function exitNow(code: number): Promise<never> {
  if (process.versions.bun) {
    const libc = await loadLibc().catch(() => undefined);
    libc?.exit(code);
  }
  process.exit(code);
}

void main().then(exitNow);
