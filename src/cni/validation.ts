// Shared by the valibot schemas: maps that refuse JSON lists, and validation issues as the
// one line of text our errors carry ("path: message; path: message").
//
// Valibot, not zod: valibot schemas are plain objects, while zod builds closures for every
// schema and compiles its parsers on first use, which cost the `tartan` binary ~6 ms of
// start-up on every pod ADD (docs/adr/0001-cni-executable.md).
import * as v from 'valibot';

type Issue = v.BaseIssue<unknown>;

const received = (i: v.BaseIssue<unknown>) =>
  `Invalid type: Expected Object but received ${i.received}`;

/** Any object but a list: valibot's object schemas take a list as an object without keys. */
export const notList = v.custom<Record<string, unknown>>(
  (x) => typeof x === 'object' && x !== null && !Array.isArray(x),
  received,
);

/** A plain object, as JSON and YAML give: no list, no Date or other class instance. */
const plainObject = v.custom<Record<string, unknown>>((x) => {
  if (typeof x !== 'object' || x === null) return false;
  const proto = Object.getPrototypeOf(x) as unknown;
  return proto === Object.prototype || proto === null;
}, received);

/**
 * A map of string keys (a JSON object, never a list) whose values all match `value`. Checked
 * as a Map because valibot's record skips keys named "constructor" and "prototype", which
 * JSON may hold like any other; "__proto__" is left out, as JSON.parse's objects would lose it.
 */
export const dict = <K extends v.GenericSchema<string, string>, V extends v.GenericSchema>(
  key: K,
  value: V,
) =>
  v.pipe(
    plainObject,
    v.transform((o) => new Map(Object.entries(o).filter(([k]) => k !== '__proto__'))),
    v.map(key, value),
    v.transform((m) => Object.fromEntries(m) as Record<v.InferOutput<K>, v.InferOutput<V>>),
  );

export interface Problem {
  /** Dotted path below the value parsed ("spec.ipv4.pools.0"), empty for the value itself. */
  path: string;
  message: string;
}

/** Issues as path and message, with the wording of our own errors for keys. */
export function problems(issues: readonly Issue[]): Problem[] {
  const out: Problem[] = [];
  const lists = new Set<unknown>();
  for (const issue of issues) {
    const items = issue.path ?? [];
    const last = items[items.length - 1];
    const path = (n: number) =>
      items
        .slice(0, n)
        .map((p) => String(p.key))
        .join('.');
    const objectKey =
      last?.origin === 'key' &&
      (issue.type === 'object' || issue.type === 'strict_object' || issue.type === 'loose_object');
    if (!objectKey) out.push({ path: path(items.length), message: issue.message });
    else if (Array.isArray(last.input)) {
      // Valibot reads a list given for an object as one with missing and unknown keys.
      if (!lists.has(last.input))
        out.push({ path: path(-1), message: 'Invalid type: Expected Object but received Array' });
      lists.add(last.input);
    } else if (issue.expected === 'never')
      out.push({ path: path(-1), message: `unknown field ${JSON.stringify(last.key)}` });
    else out.push({ path: path(items.length), message: 'required' });
  }
  return out;
}

/** "path: message; path: message", paths below `base` ("(root)" when both are empty). */
export function issuesText(issues: readonly Issue[], base = ''): string {
  return problems(issues)
    .map(({ path, message }) => {
      const where = base && path ? `${base}.${path}` : base || path || '(root)';
      return `${where}: ${message}`;
    })
    .join('; ');
}
