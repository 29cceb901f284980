// The IPAM state in the datastore: key names, value shapes and validated reads.
//
// Keys (<net> network name, <f> 4 or 6, <node> and <handle> URI-encoded, <block> the block
// CIDR with ':' -> '-' and '/' -> '_', e.g. 10.0.0.64_26 or fd00--40_122):
//
//   ipam/<net>/v<f>/meta                           {cidr, blockPrefix}
//     Written by the first allocation. Blocks are cut with this blockPrefix; a spec whose cidr
//     or blockPrefix differs is refused (ERR_IPAM_RANGE): blocks of two sizes could overlap
//     and hand one address out twice. Every block claim reads it again (meta.ts); it goes
//     last when the family's records are forgotten (forget.ts).
//   ipam/<net>/v<f>/cidrs/<block>                  {cidr, node: string | null}
//     Who a block belongs to: created once (create-if-absent is the lock-free claim of a
//     block) and never changed, so it may be remembered. null: a block created for a fixed
//     address, affine to no node.
//   ipam/<net>/v<f>/nodes/<node or ->/blocks/<block>   {cidr, node, seq, allocs}
//     THE source of truth for who holds an address. Its location follows from the cidrs
//     record ("-" for no affinity), so every address has exactly one place, fixed ones too,
//     and every write is a compare-and-swap on it. seq counts allocations in the block and
//     each alloc keeps the seq it got, so a late release carrying an older seq cannot free
//     the address after it was handed out again; blocks are deleted only with all of their
//     family's records, when it holds nothing (forget.ts). allocs is sparse: {<offset from block start, decimal>: Alloc}, so a /64
//     costs what a /26 does.
//     Alloc = {handle: "<containerId>/<ifname>" | null, seq, node, claim?, gcMark?}: handle is
//     null only for an address a persistent claim keeps between pods; node is where the
//     handle's pod runs (not necessarily the block's node); gcMark is when GC first saw it
//     without a valid attachment.
//   ipam/<net>/v<f>/nodes/<node>/borrowed/<handle>  {block, blockNode}
//     The handle holds an address in a block that is not the node's own (borrowed, or fixed).
//     Written before that alloc, so a repeated allocate finds it.
//   ipam/<net>/claims/<name>                       {v4?: ClaimRef, v6?: ClaimRef}
//     Persistent claims (StatefulSet / IPAMClaim). ClaimRef = {block, blockNode, address,
//     seq} names the alloc, which carries claim: <name> and survives its handle's release.
//
// Why the node prefix: a node's allocation reads one list, `nodes/<node>/`, which returns its
// blocks and its borrowed pointers together, then makes one compare-and-swap (and with the
// node cache, cache.ts, usually only the compare-and-swap). Listing every block of the
// network instead (50 nodes x 4 blocks x ~5 KB: ~1 MB per pod on etcd) is left to the rare
// paths: no free block left, GC, usage.
import * as v from 'valibot';
import { TartanError } from '../cni/errors.js';
import { dict, issuesText, notList } from '../cni/validation.js';
import type { Entry, Store } from '../store/types.js';
import { type Family, parseCidr, sizeOf } from './ip.js';

const count = v.pipe(v.number(), v.safeInteger(), v.minValue(0));

const AllocSchema = v.object({
  handle: v.nullable(v.string()),
  seq: count,
  node: v.string(),
  claim: v.optional(v.string()),
  gcMark: v.optional(v.pipe(v.number(), v.finite())),
});

const BlockSchema = v.object({
  cidr: v.string(),
  node: v.nullable(v.string()),
  seq: count,
  allocs: dict(v.pipe(v.string(), v.regex(/^\d+$/)), AllocSchema),
});

const CidrSchema = v.object({ cidr: v.string(), node: v.nullable(v.string()) });
const BorrowedSchema = v.object({
  block: v.string(),
  blockNode: v.nullable(v.string()),
  // When GC first saw the pointer lead to no alloc of its handle (see gc.ts).
  gcMark: v.optional(v.pipe(v.number(), v.finite())),
});
const ClaimRefSchema = v.object({
  block: v.string(),
  blockNode: v.nullable(v.string()),
  address: v.string(),
  seq: count,
});
// Every field optional: a list would pass as an empty claim without the notList guard.
const ClaimSchema = v.pipe(
  notList,
  v.object({ v4: v.optional(ClaimRefSchema), v6: v.optional(ClaimRefSchema) }),
);
const MetaSchema = v.object({ cidr: v.string(), blockPrefix: v.pipe(v.number(), v.safeInteger()) });

export type Alloc = v.InferOutput<typeof AllocSchema>;
export type Block = v.InferOutput<typeof BlockSchema>;
export type Borrowed = v.InferOutput<typeof BorrowedSchema>;
export type CidrOwner = v.InferOutput<typeof CidrSchema>;
export type ClaimRef = v.InferOutput<typeof ClaimRefSchema>;
export type Claim = v.InferOutput<typeof ClaimSchema>;

/** Location name of blocks without affinity; not a valid node name (see assertNodeName). */
export const NO_NODE = '-';

const enc = encodeURIComponent;
const fam = (net: string, f: Family) => `ipam/${enc(net)}/v${f}/`;
const blockName = (cidr: string) => cidr.replaceAll(':', '-').replace('/', '_');
const where = (node: string | null) => (node === null ? NO_NODE : enc(node));

export const keys = {
  /** Everything of one network. */
  network: (net: string) => `ipam/${enc(net)}/`,
  family: (net: string, f: Family) => fam(net, f),
  meta: (net: string, f: Family) => `${fam(net, f)}meta`,
  cidrs: (net: string, f: Family) => `${fam(net, f)}cidrs/`,
  cidr: (net: string, f: Family, cidr: string) => `${fam(net, f)}cidrs/${blockName(cidr)}`,
  nodes: (net: string, f: Family) => `${fam(net, f)}nodes/`,
  node: (net: string, f: Family, node: string) => `${fam(net, f)}nodes/${enc(node)}/`,
  block: (net: string, f: Family, node: string | null, cidr: string) =>
    `${fam(net, f)}nodes/${where(node)}/blocks/${blockName(cidr)}`,
  borrowed: (net: string, f: Family, node: string, handle: string) =>
    `${fam(net, f)}nodes/${enc(node)}/borrowed/${enc(handle)}`,
  claims: (net: string) => `ipam/${enc(net)}/claims/`,
  claim: (net: string, name: string) => `ipam/${enc(net)}/claims/${enc(name)}`,
};

export const handleOf = (containerId: string, ifname: string) => `${containerId}/${ifname}`;

export type RecordKind = 'meta' | 'cidr' | 'block' | 'borrowed' | 'claim';

const KEY =
  /^ipam\/[^/]+\/(?:v([46])\/(?:(meta)|(cidrs)\/[^/]+|nodes\/[^/]+\/(blocks|borrowed)\/[^/]+)|(claims)\/[^/]+)$/;

/** What a key of the layout above holds, and its family (none for a claim). */
export function recordKind(key: string): { kind: RecordKind; family?: Family } | undefined {
  const m = KEY.exec(key);
  if (!m) return undefined;
  if (m[5]) return { kind: 'claim' };
  const family = Number(m[1]) as Family;
  const kind = m[2] ? 'meta' : m[3] ? 'cidr' : m[4] === 'blocks' ? 'block' : 'borrowed';
  return { kind, family };
}

/** Human description of who holds an alloc, for ERR_IPAM_TAKEN messages. */
export function holderOf(a: Alloc): string {
  const parts: string[] = [];
  if (a.handle !== null) {
    const slash = a.handle.lastIndexOf('/');
    const [id, ifname] = [a.handle.slice(0, slash), a.handle.slice(slash + 1)];
    parts.push(`container ${id} interface ${ifname} on node ${a.node}`);
  }
  if (a.claim !== undefined) parts.push(`claim ${a.claim}`);
  return parts.join(', ');
}

function check<T>(
  schema: v.GenericSchema<unknown, T>,
  e: Entry,
  extra?: (value: T) => string | undefined,
): Entry<T> {
  const r = v.safeParse(schema, e.value);
  const problem = r.success ? extra?.(r.output) : issuesText(r.issues);
  if (problem !== undefined)
    throw new TartanError('ERR_STORE_CORRUPT', `IPAM record ${e.key} is invalid: ${problem}`);
  return { key: e.key, rev: e.rev, value: r.output as T };
}

/** What a schema cannot express: the record sits where its cidr and node say, offsets fit. */
function blockProblem(key: string, f: Family, b: Block): string | undefined {
  const c = parseCidr(b.cidr, f);
  if (!c || !key.endsWith(`/nodes/${where(b.node)}/blocks/${blockName(b.cidr)}`))
    return `cidr ${b.cidr} or node ${b.node} does not match the key`;
  const size = sizeOf(f, c[1]);
  for (const [off, a] of Object.entries(b.allocs)) {
    if (BigInt(off) >= size) return `offset ${off} is outside ${b.cidr}`;
    if (a.seq > b.seq) return `alloc ${off} has seq ${a.seq} above the block's ${b.seq}`;
  }
  return undefined;
}

export const asBlock = (e: Entry, f: Family) =>
  check(BlockSchema, e, (b) => blockProblem(e.key, f, b));
export const asCidr = (e: Entry) =>
  check(CidrSchema, e, (c) =>
    e.key.endsWith(`/cidrs/${blockName(c.cidr)}`)
      ? undefined
      : `cidr ${c.cidr} does not match the key`,
  );
export const asBorrowed = (e: Entry) => check(BorrowedSchema, e);
export const asClaim = (e: Entry) => check(ClaimSchema, e);
export const asMeta = (e: Entry) => check(MetaSchema, e);

const read =
  <T>(as: (e: Entry) => Entry<T>) =>
  async (s: Store, key: string): Promise<Entry<T> | undefined> => {
    const e = await s.get(key);
    return e && as(e);
  };
export const getCidr = read(asCidr);
export const getBorrowed = read(asBorrowed);
export const getClaim = read(asClaim);
export const getBlock = (s: Store, key: string, f: Family) => read((e) => asBlock(e, f))(s, key);

export interface NodeRecords {
  blocks: Entry<Block>[];
  borrowed: Map<string, Entry<Borrowed>>;
}

/** One list: a node's blocks and the pointers to the addresses it holds elsewhere. */
export async function readNode(
  s: Store,
  net: string,
  f: Family,
  node: string,
): Promise<NodeRecords> {
  const prefix = keys.node(net, f, node);
  return classifyNode(prefix, await s.list(prefix), f);
}

export function classifyNode(prefix: string, entries: readonly Entry[], f: Family): NodeRecords {
  const out: NodeRecords = { blocks: [], borrowed: new Map() };
  for (const e of entries) {
    const rest = e.key.slice(prefix.length);
    if (rest.startsWith('blocks/')) out.blocks.push(asBlock(e, f));
    else if (rest.startsWith('borrowed/'))
      out.borrowed.set(decodeURIComponent(rest.slice('borrowed/'.length)), asBorrowed(e));
    else throw new TartanError('ERR_STORE_CORRUPT', `IPAM record ${e.key} is not expected here`);
  }
  return out;
}

/** Every claimed block of the network and family: cidr -> node (the rare paths only). */
export async function listCidrs(
  s: Store,
  net: string,
  f: Family,
): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>();
  for (const e of await s.list(keys.cidrs(net, f))) {
    const c = asCidr(e).value;
    out.set(c.cidr, c.node);
  }
  return out;
}

/** Every block of the network and family (the rare paths only). */
export async function listBlocks(s: Store, net: string, f: Family): Promise<Entry<Block>[]> {
  return (await listNodes(s, net, f)).blocks;
}

export interface PointerEntry {
  node: string;
  handle: string;
  e: Entry<Borrowed>;
}

/** Every block and every borrow pointer of the network and family, in one list (GC). */
export async function listNodes(
  s: Store,
  net: string,
  f: Family,
): Promise<{ blocks: Entry<Block>[]; pointers: PointerEntry[] }> {
  const prefix = keys.nodes(net, f);
  const out: { blocks: Entry<Block>[]; pointers: PointerEntry[] } = { blocks: [], pointers: [] };
  for (const e of await s.list(prefix)) {
    const m = /^([^/]+)\/(blocks|borrowed)\/([^/]+)$/.exec(e.key.slice(prefix.length));
    if (m?.[2] === 'blocks') out.blocks.push(asBlock(e, f));
    else if (m && v.is(BorrowedSchema, e.value))
      // A damaged pointer is left alone (GC cannot judge it); the blocks are the truth.
      out.pointers.push({
        node: decodeURIComponent(m[1]!),
        handle: decodeURIComponent(m[3]!),
        e: e as Entry<Borrowed>,
      });
  }
  return out;
}
