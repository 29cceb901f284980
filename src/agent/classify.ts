// Whether a CNI call must run alone in the agent (see gate.ts): it may take the node
// state's write lock across kernel work, i.e. it may create or release a host parent.
// Any doubt answers "alone" only where a wrong "shared" could deadlock; a call whose input
// is invalid is "shared", because the core refuses it before it writes any state.
import type { HostState } from '../attach/host-state.js';
import { planParents } from '../attach/parents.js';
import {
  interfaceRequests,
  parseCniArgs,
  POD_ANNOTATIONS_CAPABILITY,
  type PluginConfig,
} from '../cni/config.js';
import type { Network } from '../network/schema.js';
import type { PodNetworks } from './cluster.js';

export interface ClassifyDeps {
  state(dir: string): Promise<HostState>;
  networks(conf: PluginConfig): Promise<Map<string, Network>>;
}

export async function classify(
  command: string,
  vars: Record<string, string>,
  conf: PluginConfig | undefined,
  deps: ClassifyDeps,
  resolved?: PodNetworks,
): Promise<boolean> {
  if (command === 'GC') return true;
  if (!conf || (command !== 'ADD' && command !== 'DEL')) return false;
  const cid = vars.CNI_CONTAINERID ?? '';
  const ifname = vars.CNI_IFNAME ?? '';
  let state: HostState;
  try {
    state = await deps.state(conf.stateDir);
  } catch {
    return true; // the core will open it too: keep it away from everyone meanwhile
  }
  // DEL releases what the record holds; a repeated ADD may first undo the old record.
  const rec = state.getAttachment(cid, ifname);
  if (rec?.interfaces.some((i) => i.parents.length > 0)) return true;
  if (command === 'DEL') return false;
  // Requests from the pod's annotations are resolved inside the core: in doubt, alone.
  const ann = conf.runtimeConfig?.[POD_ANNOTATIONS_CAPABILITY];
  if (!resolved && typeof ann === 'object' && ann !== null) return true;
  try {
    const nets = resolved?.networks ?? (await deps.networks(conf));
    const requests = resolved?.requests ?? interfaceRequests(conf, parseCniArgs(vars.CNI_ARGS));
    const names = [
      ...(conf.defaultNetwork ? [conf.defaultNetwork] : []),
      ...requests.map((r) => r.network),
    ];
    return names.some((n) => {
      const net = nets.get(n);
      return net !== undefined && planParents(net).length > 0;
    });
  } catch {
    // Networks or requests that do not parse fail in the core before any state is written.
    return false;
  }
}
