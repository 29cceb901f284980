// Values are stored as JSON text in every backend, so that an operator can read them with
// sqlite3 or etcdctl, and so that a damaged record is reported, never acted upon.
import { TartanError } from '../cni/errors.js';

export function encodeValue(key: string, value: unknown): string {
  let json: string | undefined;
  let cause: unknown;
  try {
    json = JSON.stringify(value);
  } catch (e) {
    cause = e;
  }
  if (json === undefined) {
    // undefined, functions, cycles and BigInt have no JSON form; refuse rather than store null.
    throw new TartanError('ERR_STORE', `value for "${key}" cannot be stored as JSON`, { cause });
  }
  return json;
}

/** where names the store (path or endpoints) so the operator knows what to repair. */
export function decodeValue(where: string, key: string, rev: string, raw: unknown): unknown {
  try {
    if (typeof raw !== 'string') throw new TypeError(`stored as ${typeof raw}, not text`);
    return JSON.parse(raw);
  } catch (e) {
    throw new TartanError(
      'ERR_STORE_CORRUPT',
      `${where}: record "${key}" (rev ${rev}) is not valid JSON`,
      { cause: e },
    );
  }
}
