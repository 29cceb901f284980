// Small helpers the lab and the tests share to build their "hosts" and "pods" out of real
// network namespaces. They shell out to iproute2; nothing here is product datapath code.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const pexec = promisify(execFile);

export async function sh(
  file: string,
  args: string[],
  opts: { input?: string; ok?: number[] } = {},
): Promise<string> {
  if (opts.input === undefined) {
    try {
      const { stdout } = await pexec(file, args, { maxBuffer: 64 << 20 });
      return stdout;
    } catch (e) {
      const err = e as { stderr?: string; stdout?: string; code?: number };
      throw new Error(
        `${file} ${args.join(' ')} failed (${err.code}): ${(err.stderr || err.stdout || '').trim()}`,
      );
    }
  }
  const r = await run(file, args, opts.input, process.env);
  if (r.code !== 0)
    throw new Error(
      `${file} ${args.join(' ')} failed (${r.code}): ${(r.stderr || r.stdout).trim()}`,
    );
  return r.stdout;
}

export function run(
  file: string,
  args: string[],
  input: string | undefined,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    c.stdout.on('data', (d: Buffer) => out.push(d));
    c.stderr.on('data', (d: Buffer) => err.push(d));
    c.on('error', reject);
    c.on('close', (code) =>
      resolve({
        code: code ?? 1,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      }),
    );
    c.stdin.on('error', () => {});
    c.stdin.end(input ?? '');
  });
}

export const ip = (...args: string[]) => sh('ip', args);
export const nsip = (ns: string, ...args: string[]) => sh('ip', ['-n', ns, ...args]);
export async function nsjson<T>(ns: string | undefined, ...args: string[]): Promise<T> {
  const out = await sh('ip', [...(ns ? ['-n', ns] : []), '-j', ...args]);
  return (out.trim() ? JSON.parse(out) : []) as T;
}
export const inNs = (ns: string, file: string, ...args: string[]) =>
  sh('ip', ['netns', 'exec', ns, file, ...args]);

export async function addNetns(name: string): Promise<void> {
  await sh('ip', ['netns', 'add', name]);
  await sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
}

export async function delNetns(name: string): Promise<void> {
  await run('ip', ['netns', 'del', name], undefined, process.env);
}

export async function listNetns(prefix: string): Promise<string[]> {
  const out = await sh('ip', ['netns', 'list']);
  return out
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(prefix));
}

/** ping from a netns; resolves true if all replies came back. */
export async function ping(ns: string, dst: string, count = 2): Promise<boolean> {
  const r = await run(
    'ip',
    ['netns', 'exec', ns, 'ping', '-c', String(count), '-i', '0.2', '-W', '2', dst],
    undefined,
    process.env,
  );
  return r.code === 0;
}
