// The `tartan` CNI executable. stdout carries only the result or the error object.
import { readFileSync, readSync } from 'node:fs';
import { runCni } from '../attach/plugin.js';
import { TartanError } from '../cni/errors.js';
import { MAX_STDIN, errorResponse, parseStdin, readEnv } from '../cni/protocol.js';

function readStdin(): string {
  // Read one byte past the limit so an oversized configuration is detected, not truncated.
  const buf = Buffer.alloc(MAX_STDIN + 1);
  let n = 0;
  for (;;) {
    let r: number;
    try {
      r = readSync(0, buf, n, buf.length - n, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      if ((e as NodeJS.ErrnoException).code === 'EOF') break;
      throw e;
    }
    if (r === 0) break;
    n += r;
    if (n > MAX_STDIN)
      throw new TartanError(
        'ERR_DECODE',
        `network configuration is larger than ${MAX_STDIN} bytes`,
      );
  }
  return buf.subarray(0, n).toString('utf8');
}

async function main(): Promise<number> {
  let version: unknown;
  try {
    const env = readEnv(process.env);
    const text = env.command === 'VERSION' ? safeRead() : readStdin();
    const raw = env.command === 'VERSION' && text.trim() === '' ? {} : parseStdin(text);
    version = raw.cniVersion;
    const out = await runCni(env, raw);
    if (out !== undefined) process.stdout.write(JSON.stringify(out) + '\n');
    return 0;
  } catch (e) {
    process.stdout.write(JSON.stringify(errorResponse(e, version)) + '\n');
    if (process.env.TARTAN_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    return 1;
  }
}

function safeRead(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

main().then((code) => process.exit(code));
