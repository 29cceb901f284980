import { TartanError } from '../cni/errors.js';
import { deeperThan, MAX_DEPTH } from '../cni/protocol.js';
import { parseRange } from '../ipam/range.js';
import type { Network } from './schema.js';

const PLUGIN_TYPE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * What is wrong with a delegated network's CNI configuration, if anything: it must name
 * plugins (a conf's `type`, or a conflist's `plugins`) by file name in CNI_PATH. Refused
 * when the network is loaded or admitted, not at every pod's ADD.
 */
export function delegateProblem(conf: Record<string, unknown>): string | undefined {
  const plugins = conf.plugins ?? [conf];
  if (!Array.isArray(plugins) || plugins.length === 0)
    return 'plugins must be a non-empty list of plugin configurations';
  for (const [i, p] of plugins.entries()) {
    const at = conf.plugins ? `plugins[${i}].type` : 'type';
    const type = (p as Record<string, unknown> | null)?.type;
    if (typeof type !== 'string') return `${at} must name a plugin`;
    if (!PLUGIN_TYPE.test(type))
      return `${at} "${type}" is not a plugin file name (letters, digits, "_", "." and "-")`;
  }
  if (conf.cniVersion !== undefined && typeof conf.cniVersion !== 'string')
    return 'cniVersion must be a string';
  return undefined;
}

/**
 * What is wrong with a NetworkAttachmentDefinition's spec.config, if anything: it is the
 * delegated CNI configuration, held to what a delegated network's is. (NPWG lets an
 * implementation read a configuration file named by the NAD on the node when there is no
 * config; Tartan does not.)
 */
export function nadConfigProblem(config: unknown): string | undefined {
  if (typeof config !== 'string' || config.trim() === '')
    return 'spec.config is missing (Tartan reads no CNI configuration files for a NAD)';
  let conf: unknown;
  try {
    conf = JSON.parse(config);
  } catch (e) {
    return `spec.config is not JSON (${(e as Error).message})`;
  }
  if (typeof conf !== 'object' || conf === null || Array.isArray(conf))
    return 'spec.config must be a CNI configuration object';
  if (deeperThan(conf, MAX_DEPTH)) return `spec.config is nested deeper than ${MAX_DEPTH} levels`;
  const problem = delegateProblem(conf as Record<string, unknown>);
  return problem && `spec.config: ${problem}`;
}

/** Semantic checks beyond the schema: CIDRs, pools inside the CIDR, gateway and routes. */
export function validateNetwork(net: Network, source: string): void {
  const where = `network ${net.metadata.name} (${source})`;
  if (net.spec.delegate) {
    const problem = delegateProblem(net.spec.delegate);
    if (problem) throw new TartanError('ERR_CONFIG', `${where}: delegate: ${problem}`);
  }
  const { ipv4, ipv6 } = net.spec;
  try {
    if (ipv4) parseRange(ipv4, 4, `${where} ipv4`);
    if (ipv6) parseRange(ipv6, 6, `${where} ipv6`);
  } catch (e) {
    if (e instanceof TartanError) throw new TartanError('ERR_CONFIG', e.message, { cause: e });
    throw e;
  }
}
