import { TartanError } from '../cni/errors.js';
import { parseRange } from '../ipam/range.js';
import type { Network } from './schema.js';

/** Semantic checks beyond the schema: CIDRs, pools inside the CIDR, gateway and routes. */
export function validateNetwork(net: Network, source: string): void {
  const where = `network ${net.metadata.name} (${source})`;
  const { ipv4, ipv6 } = net.spec;
  try {
    if (ipv4) parseRange(ipv4, 4, `${where} ipv4`);
    if (ipv6) parseRange(ipv6, 6, `${where} ipv6`);
  } catch (e) {
    if (e instanceof TartanError) throw new TartanError('ERR_CONFIG', e.message, { cause: e });
    throw e;
  }
}
