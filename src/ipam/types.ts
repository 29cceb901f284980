// The public IPAM contract (re-exported by index.ts).
import type { NetworkSpec } from '../network/schema.js';
import type { Family } from './ip.js';

/** 'dynamic', 'none' (no address of that family: L2 only), or a fixed address with or
 * without its /prefix (the prefix, if given, must be the network's). */
export type AddrRequest = 'dynamic' | 'none' | string;

export interface AllocateRequest {
  network: string;
  spec: NetworkSpec;
  node: string;
  containerId: string;
  ifname: string;
  /** Default: 'dynamic' if the network has an ipv4 range, else 'none'. */
  ip?: AddrRequest;
  /** Default: 'dynamic' if the network has an ipv6 range, else 'none'. */
  ip6?: AddrRequest;
  /** Persistent claim name (StatefulSet pod / IPAMClaim): the address outlives the pod. */
  claim?: string;
}

export interface Allocation {
  family: Family;
  address: string;
  prefixLength: number;
  gateway?: string;
  /** Per-block sequence number: pass it back on release so a late release cannot free a reused address. */
  seq: number;
  /** CIDR of the block holding the address. */
  block: string;
  /** The node that block is affine to (null: none), which is where its record lives.
   * Immutable, so passing it back on release saves a lookup; it may be left out. */
  blockNode?: string | null;
}

export interface ReleaseRequest {
  network: string;
  spec: NetworkSpec;
  containerId: string;
  ifname: string;
  /** What allocate returned (e.g. from the attachment record): frees exactly these, checked by seq. */
  allocations?: Allocation[];
  /** Without allocations: the node the attachment was on, so only its blocks are read (else all). */
  node?: string;
}

/** A persistent claim as listed (Ipam.claims). */
export interface ClaimInfo {
  name: string;
  /** The addresses it keeps, address/prefix. */
  ips: string[];
  /** Handles ("<containerId>/<ifname>") of the pod interfaces holding them now. */
  holders: string[];
}

export interface GcRequest {
  network: string;
  spec: NetworkSpec;
  /** Only addresses allocated on this node are considered; omit for a cluster-wide valid set. */
  node?: string;
  /** The attachments that are still alive (CNI GC `cni.dev/valid-attachments`). */
  valid: Array<{ containerId: string; ifname: string }>;
  /** Minimum time between the first observation and the release (default 5 minutes). */
  graceMs?: number;
  now?: number;
}

export interface Usage {
  family: Family;
  /** Addresses that may be handed out: pools - excludes - network/broadcast/gateway. */
  capacity: bigint;
  inUse: number;
  blocks: number;
}

export interface Ipam {
  allocate(req: AllocateRequest): Promise<Allocation[]>;
  release(req: ReleaseRequest): Promise<number>;
  find(
    network: string,
    spec: NetworkSpec,
    containerId: string,
    ifname: string,
    node?: string,
  ): Promise<Allocation[]>;
  gc(req: GcRequest): Promise<{ marked: number; released: number }>;
  releaseClaim(network: string, spec: NetworkSpec, claim: string): Promise<void>;
  /** The network's persistent claims. */
  claims(network: string, spec: NetworkSpec): Promise<ClaimInfo[]>;
  usage(network: string, spec: NetworkSpec): Promise<Usage[]>;
}

export interface IpamOptions {
  /** CAS retries per operation before ERR_IPAM_CONTENTION (default 20). */
  maxRetries?: number;
  /**
   * Keep a copy of the records of the nodes this instance allocates for, checked by every
   * compare-and-swap (default true; see cache.ts). Turn it off if several long-lived
   * processes may allocate for the same node at the same time.
   */
  nodeCache?: boolean;
  random?: () => number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}
