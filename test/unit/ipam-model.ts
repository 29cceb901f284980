// A flat, single-process model of the IPAM used as the oracle of the property test: one list
// of allocs and one map of claims, with no blocks, nodes' indexes, CAS or retries. The real
// implementation spreads the same state over sharded records; after every operation the two
// must hold exactly the same addresses for the same handles.
import type { NetworkSpec } from '../../src/network/schema.js';

export type Fam = 4 | 6;

export interface MAlloc {
  family: Fam;
  address: string;
  seq: number;
  handle: string | null;
  node: string;
  claim?: string;
  gcMark?: number;
}

export interface Ref {
  address: string;
  seq: number;
}

/** 10.0.0.0/27: pool .1-.14, excludes .5 and .8/30, gateway .1, /30 blocks => 8 usable
 * (the block .8/30 offers nothing);
 * fd00::/64: pool ::10-::1b, exclude ::14, /126 blocks => 11 usable. */
export const SPEC: NetworkSpec = {
  type: 'bridge',
  ipv4: {
    cidr: '10.0.0.0/27',
    pools: [{ start: '10.0.0.1', end: '10.0.0.14' }],
    excludes: ['10.0.0.5', '10.0.0.8/30'],
    gateway: '10.0.0.1',
    blockPrefix: 30,
  },
  ipv6: {
    cidr: 'fd00::/64',
    pools: [{ start: 'fd00::10', end: 'fd00::1b' }],
    excludes: ['fd00::14'],
    gateway: 'fd00::1',
    blockPrefix: 126,
  },
};

const v4 = (x: number) => `10.0.0.${x}`;
const v6 = (x: number) => `fd00::${x.toString(16)}`;
export const USABLE: Record<Fam, Set<string>> = {
  4: new Set([2, 3, 4, 6, 7, 12, 13, 14].map(v4)),
  6: new Set(
    [...Array(16).keys()]
      .map((i) => 16 + i)
      .filter((x) => x !== 0x14)
      .map(v6),
  ),
};

/** Fixed-address requests and what the range must say about them (null: may be handed out). */
export const FIXED: Record<Fam, [string, string | null][]> = {
  4: [
    ...[...Array(32).keys()].map((x): [string, string | null] => {
      if (x === 0 || x === 31 || x === 1) return [v4(x), 'ERR_IPAM_RESERVED'];
      if (x === 5 || (x >= 8 && x <= 11)) return [v4(x), 'ERR_IPAM_EXCLUDED'];
      if (x > 14) return [v4(x), 'ERR_IPAM_OUT_OF_RANGE'];
      return [v4(x), null];
    }),
    ['10.0.1.3', 'ERR_IPAM_OUT_OF_RANGE'],
    ['10.0.0.3/24', 'ERR_IPAM_OUT_OF_RANGE'],
    ['10.0.0.3/27', null],
  ],
  6: [
    ['fd00::', 'ERR_IPAM_RESERVED'],
    ['fd00::1', 'ERR_IPAM_RESERVED'],
    ['fd00::14', 'ERR_IPAM_EXCLUDED'],
    ['fd00::f', 'ERR_IPAM_OUT_OF_RANGE'],
    ['fd00::20', 'ERR_IPAM_OUT_OF_RANGE'],
    ['fd00:1::10', 'ERR_IPAM_OUT_OF_RANGE'],
    ['fd00::10/64', null],
    ...[...Array(16).keys()]
      .filter((i) => i !== 4)
      .map((i): [string, string | null] => [v6(16 + i), i < 12 ? null : 'ERR_IPAM_OUT_OF_RANGE']),
  ],
};

export const addressOf = (req: string) => req.split('/')[0]!;

export class Model {
  allocs: MAlloc[] = [];
  claims = new Map<string, { v4?: Ref; v6?: Ref }>();

  clone(): Model {
    const m = new Model();
    m.allocs = this.allocs.map((a) => ({ ...a }));
    m.claims = new Map([...this.claims].map(([k, v]) => [k, { ...v }]));
    return m;
  }

  held(f: Fam, address: string) {
    return this.allocs.find((a) => a.family === f && a.address === address);
  }
  of(handle: string, f?: Fam) {
    return this.allocs.filter((a) => a.handle === handle && (f === undefined || a.family === f));
  }
  full(f: Fam) {
    return this.allocs.filter((a) => a.family === f).length === USABLE[f].size;
  }
  ref(name: string, f: Fam): Ref | undefined {
    return this.claims.get(name)?.[f === 4 ? 'v4' : 'v6'];
  }
  /** The alloc a claim record still points at (same address, seq and claim marker). */
  target(name: string, f: Fam): MAlloc | undefined {
    const r = this.ref(name, f);
    const a = r && this.held(f, r.address);
    return a && a.seq === r!.seq && a.claim === name ? a : undefined;
  }
  /** Is this alloc kept by its claim (the claim record points at it)? */
  claimed(a: MAlloc): boolean {
    return a.claim !== undefined && this.target(a.claim, a.family) === a;
  }
  setRef(name: string, f: Fam, a: MAlloc) {
    this.claims.set(name, {
      ...this.claims.get(name),
      [f === 4 ? 'v4' : 'v6']: { address: a.address, seq: a.seq },
    });
  }
  remove(a: MAlloc) {
    this.allocs = this.allocs.filter((x) => x !== a);
  }

  /** allocate failed in another family: what it created goes, and so does the claim's ref to it. */
  rollback(a: MAlloc, claim: string | undefined) {
    this.remove(a);
    const r = claim === undefined ? undefined : this.ref(claim, a.family);
    if (claim === undefined || !r || r.address !== a.address || r.seq !== a.seq) return;
    const c = { ...this.claims.get(claim) };
    delete c[a.family === 4 ? 'v4' : 'v6'];
    if (c.v4 || c.v6) this.claims.set(claim, c);
    else this.claims.delete(claim);
  }

  /** Release of one alloc of a handle: a claimed one loses its handle, others are freed. */
  releaseAlloc(a: MAlloc): boolean {
    if (this.claimed(a)) {
      a.handle = null;
      delete a.gcMark;
      return false;
    }
    this.remove(a);
    return true;
  }

  releaseClaim(name: string) {
    for (const f of [4, 6] as const) {
      const a = this.target(name, f);
      if (!a) continue;
      if (a.handle === null) this.remove(a);
      else {
        delete a.claim;
        delete a.gcMark;
      }
    }
    this.claims.delete(name);
  }

  gc(node: string | undefined, valid: Set<string>, now: number, grace: number) {
    let marked = 0;
    let released = 0;
    for (const a of [...this.allocs]) {
      if (node !== undefined && a.node !== node) continue;
      if (this.claimed(a) || (a.handle !== null && valid.has(a.handle))) delete a.gcMark;
      else if (a.gcMark === undefined) {
        a.gcMark = now;
        marked++;
      } else if (now - a.gcMark >= grace) {
        this.remove(a);
        released++;
      }
    }
    return { marked, released };
  }
}
