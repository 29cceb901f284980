// libcni through our cnitool (test/harness/clients/cnitool, over Debian's libcni 1.1.2).
// libcni executes the plugins from this process's network namespace (the root netns).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, type RunResult } from './util.js';

export interface CniToolOptions {
  /** Plugin search path (CNI_PATH). */
  cniPath: string[];
  /** libcni's result cache (CNI_CACHE_DIR): keep it in the test's temp dir. */
  cacheDir: string;
  cniArgs?: string;
  containerId?: string;
  capArgs?: Record<string, unknown>;
}

export class CniTool {
  constructor(
    readonly bin: string,
    readonly opts: CniToolOptions,
  ) {}

  run(
    cmd: 'add' | 'check' | 'del',
    conflist: string,
    netns: string,
    ifname = 'eth0',
  ): Promise<RunResult> {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      CNI_PATH: this.opts.cniPath.join(':'),
      CNI_CACHE_DIR: this.opts.cacheDir,
      CNI_ARGS: this.opts.cniArgs ?? '',
    };
    if (this.opts.containerId) env.CNI_CONTAINERID = this.opts.containerId;
    if (this.opts.capArgs) env.CAP_ARGS = JSON.stringify(this.opts.capArgs);
    return run(this.bin, [cmd, conflist, netns, ifname], { env, timeoutMs: 60_000 });
  }

  /** ADD; throws with the plugin's error output on failure; returns the parsed result. */
  async add(conflist: string, netns: string, ifname = 'eth0'): Promise<CniResult & { ms: number }> {
    const r = await this.run('add', conflist, netns, ifname);
    if (r.code !== 0) throw new Error(`cnitool add failed (${r.code}):\n${r.stdout}${r.stderr}`);
    return { ...(JSON.parse(r.stdout) as CniResult), ms: r.ms };
  }
}

export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string }[];
}

export function writeConflist(
  dir: string,
  name: string,
  plugins: Record<string, unknown>[],
  cniVersion = '1.0.0',
): string {
  const file = join(dir, `${name}.conflist`);
  writeFileSync(file, JSON.stringify({ cniVersion, name, plugins }, null, 2));
  return file;
}
