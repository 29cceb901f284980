// Which host parents the recorded attachments use, and how to build each again: from the
// copy of the network spec each interface record carries, so this works when the network
// definition has been deleted or changed since.
import type { AttachmentRecord } from '../attach/records.js';
import { recordedPlans, type ParentPlan } from '../attach/parents.js';

export interface LiveParents {
  /** Parent name -> "<containerId>/<ifname>" of the recorded interfaces on it. */
  users: Map<string, Set<string>>;
  /** One plan per parent name, in creation order (lower devices first). */
  plans: ParentPlan[];
  /** Bridge name -> host veth ends of the recorded interfaces on it. */
  veths: Map<string, string[]>;
}

export function attachmentParents(records: AttachmentRecord[]): LiveParents {
  const users = new Map<string, Set<string>>();
  const plans = new Map<string, ParentPlan>();
  const veths = new Map<string, string[]>();
  for (const rec of records)
    for (const ir of rec.interfaces) {
      if (ir.parents.length === 0) continue;
      const user = `${rec.containerId}/${ir.ifname}`;
      for (const name of ir.parents) {
        let s = users.get(name);
        if (!s) users.set(name, (s = new Set()));
        s.add(user);
      }
      for (const p of recordedPlans(ir))
        if (ir.parents.includes(p.name) && !plans.has(p.name)) plans.set(p.name, p);
      const bridge = ir.parents.at(-1);
      if (ir.hostVeth && bridge && plans.get(bridge)?.kind === 'bridge') {
        const list = veths.get(bridge) ?? [];
        list.push(ir.hostVeth);
        veths.set(bridge, list);
      }
    }
  return { users, plans: [...plans.values()], veths };
}
