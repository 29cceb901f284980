// Structured logs: one JSON object per line on stderr (the DaemonSet's log), with the
// container id, netns and interface on every line about a CNI call so that one pod's story
// can be grepped out of a busy node's log.
export type Level = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, unknown>;

export interface Logger {
  log(level: Level, msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  debug(msg: string, fields?: Fields): void;
  /** A logger whose lines all carry these fields (e.g. one CNI call's identity). */
  with(fields: Fields): Logger;
}

export function createLogger(
  opts: { level?: Level; write?: (line: string) => void; base?: Fields } = {},
): Logger {
  const min = RANK[opts.level ?? 'info'];
  const write = opts.write ?? ((line: string) => void process.stderr.write(line));
  const base = opts.base ?? {};
  const log = (level: Level, msg: string, fields: Fields = {}) => {
    if (RANK[level] < min) return;
    write(JSON.stringify({ ts: new Date().toISOString(), level, msg, ...base, ...fields }) + '\n');
  };
  return {
    log,
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
    debug: (m, f) => log('debug', m, f),
    with: (fields) => createLogger({ ...opts, base: { ...base, ...fields } }),
  };
}

/** The identity fields of a CNI call, present (possibly empty) on each of its lines. */
export function callFields(env: Record<string, string | undefined>): Fields {
  return {
    command: env.CNI_COMMAND ?? '',
    containerId: env.CNI_CONTAINERID ?? '',
    netns: env.CNI_NETNS ?? '',
    ifname: env.CNI_IFNAME ?? '',
  };
}
