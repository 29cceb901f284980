import type { CniResult } from '../cni/spec.js';
import type { NetworkSpec } from '../network/schema.js';

/** What Tartan did for one interface of a pod: enough to undo and to check it. */
export interface InterfaceRecord {
  ifname: string;
  network: string;
  /** A copy of the network's spec at ADD time, so DEL works after the network is gone. */
  spec: NetworkSpec;
  state: 'adding' | 'ready';
  /** Host parents this interface holds a reference on, innermost last. */
  parents: string[];
  /** type bridge: the host end of the veth pair. */
  hostVeth?: string;
  /** type host-device: the device's name on the host. */
  hostDevice?: string;
  allocations: {
    family: 4 | 6;
    address: string;
    prefixLength: number;
    gateway?: string;
    seq: number;
    block: string;
  }[];
  claim?: string;
  rules: { from: string; table: number; priority: number }[];
  routes: { dst: string; gw?: string; table?: number }[];
  /** type delegate: the effective conflist and its result, for DEL/CHECK with prevResult. */
  delegate?: { conflist: Record<string, unknown>; result: CniResult };
  /**
   * type delegate: the runtimeConfig its ADD was given (the runtime's, for the first
   * interface only, and the request's own), for its DEL and CHECK: libcni passes it to all
   * three, and portmap's DEL removes nothing without its portMappings.
   */
  runtimeConfig?: Record<string, unknown>;
  /** type delegate: the request's NPWG cni-args (the configuration's args.cni), kept for DEL. */
  cniConfArgs?: Record<string, unknown>;
  mac?: string;
  /** type bridge without an MTU of its own: the uplink's, which the veth pair was given. */
  mtu?: number;
  /** type host-device: the NIC's own MAC, restored on DEL. */
  hostMac?: string;
}

/** One CNI attachment (containerId + CNI_IFNAME): all the interfaces Tartan gave the pod. */
export interface AttachmentRecord {
  containerId: string;
  ifname: string;
  netns: string;
  /** The runtime's network configuration (its name) that made it; GC is per configuration. */
  cniNetwork?: string;
  cniVersion: string;
  node: string;
  created: string;
  interfaces: InterfaceRecord[];
  result?: CniResult;
}

export interface ParentRecord {
  name: string;
  kind: 'vlan' | 'vxlan' | 'bridge';
  /** Created by someone else: never removed by Tartan. */
  external: boolean;
  /** "<containerId>/<ifname>" of every interface using it. */
  users: string[];
  /** Parents this one depends on (e.g. a VLAN enslaved to a bridge). */
  lower?: string;
  /** What it was made for (ParentPlan.settings), while it has users. */
  settings?: string;
}
