// Invokes a CNI plugin executable the way a runtime does: CNI_* environment, config on
// stdin, result or error object on stdout. The lab and the tests use it to drive the real
// `tartan` binary (and the reference plugins) inside a "node" netns.
import { run } from './sh.js';

export interface CniCall {
  plugin: string; // executable path
  command: 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';
  conf: Record<string, unknown> | string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
  /** Run inside this named netns (the "node"), via `ip netns exec`. */
  node?: string;
  env?: Record<string, string>;
}

export interface CniOutcome {
  code: number;
  out: Record<string, unknown> | undefined;
  stdout: string;
  stderr: string;
}

export async function callCni(c: CniCall): Promise<CniOutcome> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: c.command,
    ...(c.containerId !== undefined ? { CNI_CONTAINERID: c.containerId } : {}),
    ...(c.netns !== undefined ? { CNI_NETNS: c.netns } : {}),
    ...(c.ifname !== undefined ? { CNI_IFNAME: c.ifname } : {}),
    ...(c.args !== undefined ? { CNI_ARGS: c.args } : {}),
    CNI_PATH: c.path ?? '/usr/lib/cni',
    ...c.env,
  };
  const input = typeof c.conf === 'string' ? c.conf : JSON.stringify(c.conf);
  const [file, args] = c.node ? ['ip', ['netns', 'exec', c.node, c.plugin]] : [c.plugin, []];
  const r = await run(file, args as string[], input, env);
  let out: Record<string, unknown> | undefined;
  try {
    out = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
  } catch {
    out = undefined;
  }
  return { code: r.code, out, stdout: r.stdout, stderr: r.stderr };
}

/** Like callCni but throws with the plugin's error message when it fails. */
export async function mustCni(c: CniCall): Promise<Record<string, unknown> | undefined> {
  const r = await callCni(c);
  if (r.code !== 0)
    throw new Error(
      `${c.plugin} ${c.command} failed (${r.code}): ${r.stdout.trim()} ${r.stderr.trim()}`,
    );
  return r.out;
}
