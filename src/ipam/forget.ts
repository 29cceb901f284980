// Forgetting a network's IPAM state. A family's cidr and blockPrefix never change while its
// records exist (records.ts: blocks of two sizes could overlap), so a network deleted and
// created again under the same name with another cidr could allocate nothing until the old
// records were gone. This removes them, and only when no address is held.
//
// Call it for a network no pod can be attached to any more (deleted in the cluster, gone from
// the networks directory). Deletes are compare-and-swaps on the revisions listed, blocks
// first: an address allocated meanwhile in a listed block fails its delete and stops the
// rest, which leaves records the allocator still reads correctly (a claimed block without
// its record is re-created on use). `meta` goes last, and only if a linearizable list shows
// nothing else: a stop keeps the old cidr beside whatever records are left.
import type { Store } from '../store/types.js';
import { auditIpam } from './audit.js';
import type { Family } from './ip.js';
import { asCidr, keys, type RecordKind, recordKind } from './records.js';

export type Forgotten =
  | { forgotten: true; records: number }
  | { forgotten: false; held: number; corrupt: number; changed: boolean };

/** Order of deletion: allocations' containers before what points at them, meta last. */
const ORDER: (RecordKind | undefined)[] = ['block', 'borrowed', 'claim', 'cidr', undefined];
const rank = (key: string) => ORDER.indexOf(recordKind(key)?.kind);
const isMeta = (key: string) => recordKind(key)?.kind === 'meta';

/** Removes the network's records (or one family's: its claims stay), if none holds an address. */
export async function forgetNetwork(
  store: Store,
  network: string,
  family?: Family,
): Promise<Forgotten> {
  const prefix = family === undefined ? keys.network(network) : keys.family(network, family);
  const entries = await store.list(prefix, { consistent: true });
  const report = auditIpam(entries);
  // A record that does not validate may hold an address: it is not ours to guess.
  if (report.held.length || report.corrupt.length)
    return {
      forgotten: false,
      held: report.held.length,
      corrupt: report.corrupt.length,
      changed: false,
    };
  const changed = { forgotten: false, held: 0, corrupt: 0, changed: true } as const;
  const ordered = entries.filter((e) => !isMeta(e.key)).sort((a, b) => rank(a.key) - rank(b.key));
  for (const e of ordered) {
    // A claim goes only while its block has no record: one written again since the blocks
    // went (a node that has not seen the change yet) keeps the claim that places it.
    const k = recordKind(e.key);
    if (k?.kind === 'cidr') {
      const { cidr, node } = asCidr(e).value;
      if (await store.get(keys.block(network, k.family!, node, cidr))) return changed;
    }
    if (!(await store.delete(e.key, e.rev))) return changed;
  }
  // `meta` only when nothing else is left, read linearizably: a block cut after the first
  // list (a node still on the old spec) keeps the `meta` it was cut beside, and the caller
  // comes back once it is free again.
  const left = await store.list(prefix, { consistent: true });
  if (left.some((e) => !isMeta(e.key))) return changed;
  for (const e of left) if (!(await store.delete(e.key, e.rev))) return changed;
  return { forgotten: true, records: entries.length };
}
