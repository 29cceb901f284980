// Consistency audit over the raw IPAM records (every key under "ipam/"), independent of the
// allocation code paths: used by tests, the benchmark and (later) `tartanctl` diagnosis.
// It recomputes every held address from the blocks and reports any address held twice,
// overlapping blocks, and records that do not validate.
import { isTartanError } from '../cni/errors.js';
import type { Entry } from '../store/types.js';
import { cidrStart, type Family, formatIp, sizeOf } from './ip.js';
import { asBlock, asCidr } from './records.js';

export interface HeldAddress {
  network: string;
  family: Family;
  address: string;
  handle: string | null;
  node: string;
  seq: number;
  claim?: string;
  gcMark?: number;
  blockNode: string | null;
}

export interface AuditReport {
  held: HeldAddress[];
  /** One line per address held by more than one alloc. */
  duplicates: string[];
  /** Blocks of one network and family that overlap. */
  overlaps: string[];
  /** Records that failed validation (ERR_STORE_CORRUPT messages). */
  corrupt: string[];
  /** Block records without a cidrs record naming their node: allocation would not find them. */
  misplaced: string[];
  blocks: number;
}

const BLOCK_KEY = /^ipam\/([^/]+)\/v([46])\/nodes\/[^/]+\/blocks\/[^/]+$/;
const CIDR_KEY = /^ipam\/([^/]+)\/v([46])\/cidrs\/[^/]+$/;

export function auditIpam(entries: readonly Entry[]): AuditReport {
  const held: HeldAddress[] = [];
  const corrupt: string[] = [];
  const spans = new Map<string, { lo: bigint; hi: bigint; cidr: string }[]>();
  const owners = new Map<string, string | null>();
  const placed: [string, string | null][] = [];
  for (const raw of entries) {
    const c = CIDR_KEY.exec(raw.key);
    if (c) {
      try {
        const v = asCidr(raw).value;
        owners.set(`${decodeURIComponent(c[1]!)} v${c[2]} ${v.cidr}`, v.node);
      } catch (err) {
        if (!isTartanError(err, 'ERR_STORE_CORRUPT')) throw err;
        corrupt.push(err.message);
      }
    }
    const m = BLOCK_KEY.exec(raw.key);
    if (!m) continue;
    const network = decodeURIComponent(m[1]!);
    const family = Number(m[2]) as Family;
    let e;
    try {
      e = asBlock(raw, family);
    } catch (err) {
      if (isTartanError(err, 'ERR_STORE_CORRUPT')) {
        corrupt.push(err.message);
        continue;
      }
      throw err;
    }
    const b = e.value;
    const start = cidrStart(b.cidr, family);
    const len = Number(b.cidr.slice(b.cidr.indexOf('/') + 1));
    const group = `${network} v${family}`;
    placed.push([`${group} ${b.cidr}`, b.node]);
    const list = spans.get(group) ?? [];
    list.push({ lo: start, hi: start + sizeOf(family, len) - 1n, cidr: b.cidr });
    spans.set(group, list);
    for (const [off, a] of Object.entries(b.allocs)) {
      const h: HeldAddress = {
        network,
        family,
        address: formatIp(start + BigInt(off), family),
        handle: a.handle,
        node: a.node,
        seq: a.seq,
        blockNode: b.node,
      };
      if (a.claim !== undefined) h.claim = a.claim;
      if (a.gcMark !== undefined) h.gcMark = a.gcMark;
      held.push(h);
    }
  }
  const seen = new Map<string, HeldAddress>();
  const duplicates: string[] = [];
  for (const h of held) {
    const k = `${h.network} ${h.address}`;
    const prev = seen.get(k);
    if (prev) duplicates.push(`${k} held by ${prev.handle} and ${h.handle}`);
    else seen.set(k, h);
  }
  const overlaps: string[] = [];
  for (const [group, list] of spans) {
    list.sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
    for (let i = 1; i < list.length; i++)
      if (list[i]!.lo <= list[i - 1]!.hi)
        overlaps.push(`${group}: ${list[i - 1]!.cidr} overlaps ${list[i]!.cidr}`);
  }
  const misplaced = placed
    .filter(([k, node]) => owners.get(k) !== node)
    .map(([k, node]) => `${k}: record under node ${node}, cidrs record says ${owners.get(k)}`);
  const blocks = [...spans.values()].reduce((n, l) => n + l.length, 0);
  return { held, duplicates, overlaps, corrupt, misplaced, blocks };
}
