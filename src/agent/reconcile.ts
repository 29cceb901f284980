// The host parent reconciler. Host parents (VLAN, VXLAN, bridge) are reference-counted in
// the node state by the CNI core; this pass makes the kernel agree with those records when
// something outside a CNI call changed it: after a reboot every parent is gone while the
// records remain (until the runtime's DEL/GC), an operator may delete one by hand, and a
// crash between a record's removal and the parent's release leaves a parent with no user.
//
// Deleting a lower device also deletes the macvlan/ipvlan interfaces on top of it inside
// the pods; re-creating the parent cannot bring those back (CHECK reports them), but it
// makes new pods and the pods' DELs work, and re-enslaves the host ends of bridge veths.
import { attachmentParents } from './parent-plans.js';
import { HOST, type Kernel, type Op } from '../kernel/types.js';
import type { HostState } from '../attach/host-state.js';
import { ensureOps } from '../attach/parents.js';
import type { Logger } from './log.js';

export interface ReconcileReport {
  created: string[];
  removed: string[];
  /** User references dropped because no attachment record names them any more. */
  pruned: number;
  /** Missing parents that could not be re-created (retried by the next pass). */
  failed: string[];
}

export async function reconcileParents(
  k: Kernel,
  state: HostState,
  log: Logger,
): Promise<ReconcileReport> {
  // The node state's lock: in-process CNI calls (tartanctl, a host without the agent) and
  // this pass see each other's parent changes whole.
  return state.withLock(async () => {
    const report: ReconcileReport = { created: [], removed: [], pruned: 0, failed: [] };
    const live = attachmentParents(state.listAttachments());

    for (const rec of state.listParents()) {
      const users = rec.users.filter((u) => live.users.get(rec.name)?.has(u));
      report.pruned += rec.users.length - users.length;
      if (users.length === 0) {
        if (!rec.external) {
          await k.apply(HOST, [{ op: 'link-del', name: rec.name }], { bestEffort: true });
          if (await k.linkExists(rec.name)) {
            // Kept (without users) for the next pass rather than forgotten with its link.
            if (users.length !== rec.users.length) state.putParent({ ...rec, users });
            report.failed.push(rec.name);
            log.error('cannot remove unused host parent', { parent: rec.name });
            continue;
          }
        }
        state.deleteParent(rec.name);
        report.removed.push(rec.name);
        log.info('removed unused host parent', { parent: rec.name, external: rec.external });
        continue;
      }
      if (users.length !== rec.users.length) state.putParent({ ...rec, users });
    }

    // Missing parents that still have users, lowest first (a VLAN before the bridge on it).
    const wanted = new Set(state.listParents().map((p) => p.name));
    for (const plan of live.plans) {
      if (!wanted.has(plan.name)) continue;
      if (await k.linkExists(plan.name)) {
        // A lower link re-created above under a bridge that stayed: put it back in (only
        // where the record says the bridge was made for this plan: an old record shared by
        // networks that disagree is left as it is).
        const ensure = ensureOps(plan);
        const made = state.getParent(plan.name)?.settings === plan.settings;
        if (ensure.length && made && (await k.linkExists(plan.lower!)))
          await k.apply(HOST, ensure).catch((e: unknown) => {
            report.failed.push(plan.name);
            log.error('cannot put the lower link back in its bridge', {
              parent: plan.name,
              error: (e as Error).message,
            });
          });
        continue;
      }
      try {
        const ops: Op[] = await plan.create(k);
        // The bridge came back empty: put the host ends of its pods' veths in it again.
        if (plan.kind === 'bridge')
          for (const veth of live.veths.get(plan.name) ?? [])
            if (await k.linkExists(veth))
              ops.push({ op: 'link-set', name: veth, master: plan.name, up: true });
        await k.apply(HOST, ops);
      } catch (e) {
        // One parent that cannot be made (its NIC is gone, say) does not stop the others.
        report.failed.push(plan.name);
        log.error('cannot re-create host parent', {
          parent: plan.name,
          error: (e as Error).message,
        });
        continue;
      }
      const rec = state.getParent(plan.name);
      if (rec?.external) state.putParent({ ...rec, external: false });
      report.created.push(plan.name);
      log.warn('re-created missing host parent', { parent: plan.name, kind: plan.kind });
    }
    return report;
  });
}
