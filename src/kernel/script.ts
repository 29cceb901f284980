// Turns a list of (target, ops) steps into one POSIX sh script, so a whole interface set-up
// (host side, pod sysctls, pod addressing, read-back) costs one process spawn from the
// runtime instead of one per tool and namespace. iproute2 batches arrive as here-documents.
// Every token was validated before it got here (names by regex, addresses by parsing), so
// none contains whitespace, quotes or shell syntax; the here-doc delimiter is quoted.
import { basename, dirname } from 'node:path';
import { TartanError } from '../cni/errors.js';
import { NAMED_NS_DIRS, SYSCTL_KEY_RE, opToArgs } from './ops.js';
import type { Step, Target } from './types.js';

export type { Step } from './types.js';

const SAFE = /^[A-Za-z0-9_.:/@%+=,-]+$/;

export const STEP_MARK = '@tartan-step';

function safe(tok: string): string {
  if (!SAFE.test(tok))
    throw new TartanError('ERR_KERNEL', `refusing unsafe token ${JSON.stringify(tok)}`);
  return tok;
}

/** Prefix that runs a command in the target namespace. */
function inNs(t: Target, tool: 'ip' | 'bridge' | 'sh'): string {
  if (t.ns === undefined) return tool;
  if (tool === 'ip' && NAMED_NS_DIRS.has(dirname(t.ns))) return `ip -n ${safe(basename(t.ns))}`;
  return `nsenter --net=${safe(t.ns)} -- ${tool}`;
}

export function buildScript(
  steps: Step[],
  opts: { bestEffort: boolean },
): { script: string; labels: string[] } {
  const lines: string[] = [opts.bestEffort ? 'set +e' : 'set -e'];
  const labels: string[] = [];
  const mark = (label: string) => {
    lines.push(`echo ${STEP_MARK} ${labels.length} >&2`);
    labels.push(label);
  };
  const force = opts.bestEffort ? ' -force' : '';
  for (const { t, ops, label } of steps) {
    const where = t.ns === undefined ? 'host' : `netns ${t.ns}`;
    const pre = label ? `${label}: ` : '';
    const argv = ops.map(opToArgs);
    let i = 0;
    while (i < argv.length) {
      const tool = argv[i]!.tool;
      const group: string[][] = [];
      while (i < argv.length && argv[i]!.tool === tool) group.push(argv[i++]!.args);
      if (tool === 'sysctl') {
        for (const [k] of group)
          if (!SYSCTL_KEY_RE.test(k!)) throw new TartanError('ERR_KERNEL', `bad sysctl key ${k}`);
        const writes = group
          .map(([k, v]) => `echo ${safe(v!)} > /proc/sys/${k}`)
          .join(opts.bestEffort ? '; ' : ' && ');
        mark(`${pre}sysctl ${group.map(([k, v]) => `${k}=${v}`).join(' ')} in ${where}`);
        // /proc/sys/net shows the namespace of the process that opens it: write from inside.
        lines.push(t.ns === undefined ? writes : `${inNs(t, 'sh')} -c '${writes}'`);
        continue;
      }
      const cmd =
        tool === 'bridge' ? inNs(t, 'bridge') : inNs(t, 'ip') + (tool === 'ip6' ? ' -6' : '');
      mark(
        `${pre}${tool === 'ip6' ? 'ip -6' : tool} ${group.map((a) => a.slice(0, 3).join(' ')).join('; ')} in ${where}`,
      );
      lines.push(`${cmd}${force} -batch - <<'TARTAN_EOF'`);
      for (const a of group) lines.push(a.map(safe).join(' '));
      lines.push('TARTAN_EOF');
    }
  }
  return { script: lines.join('\n') + '\n', labels };
}

/** Names the step that failed from the markers the script wrote before each one. */
export function failedStep(stderr: string, labels: string[]): { label: string; message: string } {
  const parts = stderr.split('\n');
  let idx = -1;
  let after: string[] = [];
  for (const [n, l] of parts.entries()) {
    if (l.startsWith(STEP_MARK)) {
      idx = Number(l.slice(STEP_MARK.length + 1));
      after = parts.slice(n + 1).filter((x) => !x.startsWith(STEP_MARK));
    }
  }
  return {
    label: labels[idx] ?? 'kernel script',
    message: after.filter(Boolean).slice(0, 3).join(' | '),
  };
}
