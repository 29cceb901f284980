import * as v from 'valibot';
import { TartanError } from '../cni/errors.js';
import { issuesText } from '../cni/validation.js';
import { NetworkSchema, type Network } from './schema.js';
import { validateNetwork } from './validate.js';

/** Parses one network object; the message names the file and the field at fault. */
export function parseNetwork(raw: unknown, source: string): Network {
  const r = v.safeParse(NetworkSchema, raw);
  if (!r.success)
    throw new TartanError('ERR_CONFIG', `invalid network in ${source}: ${issuesText(r.issues)}`);
  validateNetwork(r.output, source);
  return r.output;
}
