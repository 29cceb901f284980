// The narrow driver layer for kernel work. Everything Tartan does to links, addresses,
// routes and rules goes through a Kernel; the real one drives iproute2, the fake one
// records operations for unit tests. The calling process never changes network namespace:
// work inside a pod's namespace runs in a child process started there.

/** Where an operation runs: the process's own namespace ("host") or a netns path. */
export type Target = { ns?: string | undefined };
export const HOST: Target = {};

export type Op =
  | {
      op: 'macvlan-add';
      name: string;
      parent: string;
      mode: string;
      intoNs?: string;
      mac?: string;
      mtu?: number;
    }
  | { op: 'ipvlan-add'; name: string; parent: string; mode: string; intoNs?: string; mtu?: number }
  | { op: 'veth-add'; name: string; peer: string; peerNs?: string; mtu?: number; peerMac?: string }
  | { op: 'vlan-add'; name: string; parent: string; id: number; mtu?: number }
  | {
      op: 'vxlan-add';
      name: string;
      vni: number;
      port: number;
      local: string;
      dev: string;
      group?: string;
      mtu?: number;
    }
  | { op: 'bridge-add'; name: string; mtu?: number }
  | {
      op: 'link-set';
      name: string;
      up?: boolean;
      down?: boolean;
      mtu?: number;
      master?: string;
      newName?: string;
      mac?: string;
      intoNs?: string;
    }
  | { op: 'link-del'; name: string }
  | { op: 'addr-add'; dev: string; cidr: string; nodad?: boolean }
  | { op: 'addr-del'; dev: string; cidr: string }
  | {
      op: 'route-add';
      dst: string;
      gw?: string;
      dev: string;
      table?: number;
      src?: string;
      metric?: number;
      onlink?: boolean;
    }
  | { op: 'rule-add'; from: string; table: number; priority: number }
  | { op: 'rule-del'; from: string; table: number; priority: number }
  | { op: 'fdb-append'; dev: string; dst: string }
  | { op: 'sysctl'; key: string; value: string };

export interface LinkInfo {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  address?: string;
  operstate?: string;
  link?: string;
  kind?: string;
  mode?: string;
  vlanId?: number;
  vni?: number;
  master?: string;
}

export interface AddrInfo {
  dev: string;
  family: 4 | 6;
  cidr: string;
  flags: string[];
}

export interface RouteInfo {
  dst: string;
  gw?: string;
  dev?: string;
  table?: string;
  protocol?: string;
  scope?: string;
}

export interface RuleInfo {
  priority: number;
  src?: string;
  srclen?: number;
  table: string;
  family: 4 | 6;
}

export type NetnsKind = 'net' | 'missing' | 'not-netns';

/**
 * Where a run() stopped: the index of the step in the array given to run() and of the op in
 * that step that failed. Every earlier op was applied, this one and later ones were not.
 * Drivers attach it to the error they throw (runPosition reads it); a caller that must know
 * what exists to undo it (a link the failing op did not create is someone else's) uses it.
 */
export interface RunPosition {
  step: number;
  op: number;
}

/** The position a driver recorded on a run's error, if it knows it. */
export function runPosition(e: unknown): RunPosition | undefined {
  const at = (e as { runPosition?: RunPosition } | null)?.runPosition;
  return at && Number.isInteger(at.step) && Number.isInteger(at.op) ? at : undefined;
}

/** Records on a run's error where the run stopped. */
export function atPosition<E extends Error>(e: E, at: RunPosition): E {
  (e as E & { runPosition?: RunPosition }).runPosition = { step: at.step, op: at.op };
  return e;
}

/** A target and its ops, run in order. */
export interface Step {
  t: Target;
  ops: Op[];
  /** Prefix for error messages, e.g. "interface net1 (network oam)". */
  label?: string;
}

export interface Kernel {
  /** How ops reach the kernel: rtnetlink from this process, or iproute2 processes. */
  readonly driver?: 'netlink' | 'iproute2';
  /** Runs ops in order; stops at the first failure unless bestEffort (used for undo). */
  apply(t: Target, ops: Op[], opts?: { bestEffort?: boolean }): Promise<void>;
  /** Runs several steps (each a target and its ops) in order, in as few processes as the
   * driver can (the real one: a single sh script of iproute2 batches). */
  run(steps: Step[], opts?: { bestEffort?: boolean }): Promise<void>;
  links(t: Target): Promise<LinkInfo[]>;
  /** Whether a link exists in the process's own namespace. */
  linkExists(name: string): Promise<boolean>;
  /**
   * What a host link is, as the kernel types it (bridge, vlan, vxlan, bond, ...; '' for a
   * plain device such as a NIC or a veth), or undefined if there is none by that name.
   */
  linkKind(name: string): Promise<string | undefined>;
  addresses(t: Target): Promise<AddrInfo[]>;
  routes(t: Target, table?: number): Promise<RouteInfo[]>;
  rules(t: Target): Promise<RuleInfo[]>;
  netnsKind(path: string, precise?: boolean): Promise<NetnsKind>;
}
