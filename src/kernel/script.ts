// Turns a list of (target, ops) steps into one POSIX sh script, so a whole interface set-up
// (host side, pod sysctls, pod addressing, read-back) costs one process spawn from the
// runtime instead of one per tool and namespace. iproute2 batches arrive as here-documents.
// Every token was validated before it got here (names by regex, addresses by parsing), so
// none contains whitespace, quotes or shell syntax; the here-doc delimiter is quoted.
import { basename, dirname } from 'node:path';
import { TartanError } from '../cni/errors.js';
import { NAMED_NS_DIRS, SYSCTL_KEY_RE, opToArgs } from './ops.js';
import type { RunPosition, Step, Target } from './types.js';

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

/** What the script marks before a command: its words for errors, and the ops it runs. */
export interface ScriptMark {
  label: string;
  /** Position of the command's first op in the steps given to buildScript. */
  at: RunPosition;
  /** An iproute2 batch: its "Command failed -:N" names the op (N counts from 1). */
  batch: boolean;
}

/** Empty steps are skipped; positions count them (they are run()'s positions). */
export function buildScript(
  steps: Step[],
  opts: { bestEffort: boolean },
): { script: string; labels: ScriptMark[] } {
  const lines: string[] = [opts.bestEffort ? 'set +e' : 'set -e'];
  const labels: ScriptMark[] = [];
  const marker = (m: ScriptMark) => {
    labels.push(m);
    return `echo ${STEP_MARK} ${labels.length - 1} >&2`;
  };
  const force = opts.bestEffort ? ' -force' : '';
  for (const [index, { t, ops, label }] of steps.entries()) {
    const where = t.ns === undefined ? 'host' : `netns ${t.ns}`;
    const pre = label ? `${label}: ` : '';
    const argv = ops.map(opToArgs);
    let i = 0;
    while (i < argv.length) {
      const tool = argv[i]!.tool;
      const first = i;
      const group: string[][] = [];
      while (i < argv.length && argv[i]!.tool === tool) group.push(argv[i++]!.args);
      if (tool === 'sysctl') {
        for (const [k] of group)
          if (!SYSCTL_KEY_RE.test(k!)) throw new TartanError('ERR_KERNEL', `bad sysctl key ${k}`);
        // A mark before each write, so a failure names its own op. Plain commands in a row:
        // under `set -e` a failure in an && list other than its last would not stop the
        // script (POSIX), so the list form is not used.
        const writes = group
          .map(
            ([k, v], j) =>
              `${marker({
                label: `${pre}sysctl ${k}=${v} in ${where}`,
                at: { step: index, op: first + j },
                batch: false,
              })}; echo ${safe(v!)} > /proc/sys/${k}`,
          )
          .join('; ');
        // /proc/sys/net shows the namespace of the process that opens it: write from inside,
        // after a mark outside for the group's first op, which names the failure when the
        // netns cannot be entered at all.
        lines.push(
          t.ns === undefined
            ? writes
            : `${marker({
                label: `${pre}sysctl ${group[0]![0]}=${group[0]![1]} in ${where}`,
                at: { step: index, op: first },
                batch: false,
              })}; ${inNs(t, 'sh')} -c '${opts.bestEffort ? 'set +e' : 'set -e'}; ${writes}'`,
        );
        continue;
      }
      const cmd =
        tool === 'bridge' ? inNs(t, 'bridge') : inNs(t, 'ip') + (tool === 'ip6' ? ' -6' : '');
      lines.push(
        marker({
          label: `${pre}${tool === 'ip6' ? 'ip -6' : tool} ${group.map((a) => a.slice(0, 3).join(' ')).join('; ')} in ${where}`,
          at: { step: index, op: first },
          batch: true,
        }),
      );
      lines.push(`${cmd}${force} -batch - <<'TARTAN_EOF'`);
      for (const a of group) lines.push(a.map(safe).join(' '));
      lines.push('TARTAN_EOF');
    }
  }
  return { script: lines.join('\n') + '\n', labels };
}

/** The op of an iproute2 batch that failed: "Command failed -:N" (N from 1). */
export function batchFailure(stderr: string): number | undefined {
  const m = /Command failed -:(\d+)/.exec(stderr);
  return m ? Number(m[1]) - 1 : undefined;
}

/**
 * Names the command that failed from the markers the script wrote before each one, and
 * the op it stopped at where that is known.
 */
export function failedStep(
  stderr: string,
  labels: ScriptMark[],
): { label: string; message: string; at?: RunPosition } {
  const parts = stderr.split('\n');
  let idx = -1;
  let after: string[] = [];
  for (const [n, l] of parts.entries()) {
    if (l.startsWith(STEP_MARK)) {
      idx = Number(l.slice(STEP_MARK.length + 1));
      after = parts.slice(n + 1).filter((x) => !x.startsWith(STEP_MARK));
    }
  }
  const m = labels[idx];
  const message = after.filter(Boolean).slice(0, 3).join(' | ');
  if (!m) return { label: 'kernel script', message };
  const line = m.batch ? batchFailure(after.join('\n')) : 0;
  return {
    label: m.label,
    message,
    ...(line === undefined ? {} : { at: { step: m.at.step, op: m.at.op + line } }),
  };
}
