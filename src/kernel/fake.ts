// An in-memory kernel for unit tests: it models links, addresses, routes and rules per
// namespace well enough for the attach pipeline, and fails on demand so rollback paths
// can be exercised without root.
import { TartanError } from '../cni/errors.js';
import {
  atPosition,
  runPosition,
  type AddrInfo,
  type Kernel,
  type LinkInfo,
  type NetnsKind,
  type Op,
  type RouteInfo,
  type RuleInfo,
  type Target,
} from './types.js';

interface NsState {
  links: Map<string, LinkInfo>;
  addrs: AddrInfo[];
  routes: RouteInfo[];
  rules: RuleInfo[];
  sysctls: Map<string, string>;
}

export interface FakeKernel extends Kernel {
  ns(path?: string): NsState;
  addNetns(path: string): void;
  removeNetns(path: string): void;
  /** The next op matching pred fails (once, or always). */
  failOn(pred: (op: Op, t: Target) => boolean, always?: boolean): void;
  ops: Array<{ t: Target; op: Op }>;
}

export function createFakeKernel(hostLinks: string[] = ['lo', 'eth0']): FakeKernel {
  const spaces = new Map<string, NsState>();
  const fresh = (): NsState => ({
    links: new Map(),
    addrs: [],
    routes: [],
    rules: [],
    sysctls: new Map(),
  });
  let ifindex = 1;
  const host = fresh();
  for (const n of hostLinks)
    host.links.set(n, { ifindex: ifindex++, ifname: n, flags: ['UP'], mtu: 1500 });
  spaces.set('', host);
  let failures: Array<{ pred: (op: Op, t: Target) => boolean; always: boolean }> = [];
  const ops: Array<{ t: Target; op: Op }> = [];

  const space = (t: Target | string | undefined): NsState => {
    const key = typeof t === 'string' ? t : (t?.ns ?? '');
    const s = spaces.get(key);
    if (!s) throw new TartanError('ERR_KERNEL', `netns ${key} does not exist`);
    return s;
  };
  const need = (s: NsState, name: string) => {
    const l = s.links.get(name);
    if (!l) throw new TartanError('ERR_KERNEL', `Cannot find device "${name}"`);
    return l;
  };
  const addLink = (
    s: NsState,
    l: Omit<LinkInfo, 'ifindex' | 'flags' | 'mtu'> & { mtu?: number },
  ) => {
    if (s.links.has(l.ifname))
      throw new TartanError('ERR_KERNEL', `RTNETLINK answers: File exists (${l.ifname})`);
    s.links.set(l.ifname, {
      ifindex: ifindex++,
      flags: [],
      mtu: 1500,
      address: `02:00:00:00:00:${(ifindex % 256).toString(16).padStart(2, '0')}`,
      ...l,
    });
  };
  const removeLink = (s: NsState, name: string) => {
    s.links.delete(name);
    s.addrs = s.addrs.filter((a) => a.dev !== name);
    s.routes = s.routes.filter((r) => r.dev !== name);
    // Deleting one end of a veth pair deletes the other.
    for (const sp of spaces.values())
      for (const [n, l] of sp.links) if (l.link === name && l.kind === 'veth') sp.links.delete(n);
  };

  function applyOne(t: Target, o: Op): void {
    const s = space(t);
    switch (o.op) {
      case 'macvlan-add':
      case 'ipvlan-add':
        need(s, o.parent);
        addLink(space(o.intoNs ?? t), {
          ifname: o.name,
          kind: o.op === 'macvlan-add' ? 'macvlan' : 'ipvlan',
          mode: o.mode,
          link: o.parent,
          ...(o.op === 'macvlan-add' && o.mac ? { address: o.mac } : {}),
        });
        return;
      case 'veth-add':
        // Both ends or neither, as the kernel makes a pair.
        if (space(o.peerNs ?? t).links.has(o.peer))
          throw new TartanError('ERR_KERNEL', `RTNETLINK answers: File exists (${o.peer})`);
        addLink(s, {
          ifname: o.name,
          kind: 'veth',
          link: o.peer,
          ...(o.mtu ? { mtu: o.mtu } : {}),
        });
        addLink(space(o.peerNs ?? t), {
          ifname: o.peer,
          kind: 'veth',
          link: o.name,
          ...(o.mtu ? { mtu: o.mtu } : {}),
          ...(o.peerMac ? { address: o.peerMac } : {}),
        });
        return;
      case 'vlan-add':
        need(s, o.parent);
        addLink(s, { ifname: o.name, kind: 'vlan', vlanId: o.id, link: o.parent });
        return;
      case 'vxlan-add':
        need(s, o.dev);
        addLink(s, { ifname: o.name, kind: 'vxlan', vni: o.vni });
        return;
      case 'bridge-add':
        addLink(s, { ifname: o.name, kind: 'bridge' });
        return;
      case 'link-set': {
        let l = need(s, o.name);
        if (o.down) l.flags = l.flags.filter((f) => f !== 'UP');
        if (o.newName) {
          if (s.links.has(o.newName)) throw new TartanError('ERR_KERNEL', 'File exists');
          s.links.delete(o.name);
          l = { ...l, ifname: o.newName };
          s.links.set(o.newName, l);
        }
        if (o.mtu) l.mtu = o.mtu;
        if (o.mac) l.address = o.mac;
        if (o.master) {
          need(s, o.master);
          l.master = o.master;
        }
        if (o.intoNs) {
          const dst = o.intoNs.startsWith('/proc/') ? host : space(o.intoNs);
          s.links.delete(l.ifname);
          addLink(dst, { ...l });
        }
        if (o.up && !l.flags.includes('UP')) l.flags.push('UP');
        return;
      }
      case 'link-del':
        need(s, o.name);
        removeLink(s, o.name);
        return;
      case 'addr-add':
        need(s, o.dev);
        if (s.addrs.some((a) => a.cidr === o.cidr && a.dev === o.dev))
          throw new TartanError('ERR_KERNEL', 'File exists');
        s.addrs.push({ dev: o.dev, cidr: o.cidr, family: o.cidr.includes(':') ? 6 : 4, flags: [] });
        return;
      case 'addr-del':
        s.addrs = s.addrs.filter((a) => !(a.dev === o.dev && a.cidr === o.cidr));
        return;
      case 'route-add': {
        need(s, o.dev);
        const dst = o.dst === '0.0.0.0/0' || o.dst === '::/0' ? 'default' : o.dst;
        const table = String(o.table ?? 'main');
        // `replace` within the family: an IPv6 default does not replace the IPv4 one.
        const v6 = (r: { dst: string; gw?: string | undefined }) =>
          r.dst.includes(':') || !!r.gw?.includes(':');
        s.routes = s.routes.filter(
          (r) => !(r.dst === dst && (r.table ?? 'main') === table && v6(r) === v6(o)),
        );
        s.routes.push({ dst, dev: o.dev, table, ...(o.gw ? { gw: o.gw } : {}) });
        return;
      }
      case 'rule-add': {
        const [src, len] = o.from.split('/');
        s.rules.push({
          priority: o.priority,
          src: src!,
          srclen: Number(len),
          table: String(o.table),
          family: o.from.includes(':') ? 6 : 4,
        });
        return;
      }
      case 'rule-del': {
        const [src] = o.from.split('/');
        const i = s.rules.findIndex((r) => r.priority === o.priority && r.src === src);
        if (i < 0) throw new TartanError('ERR_KERNEL', 'No such file or directory');
        s.rules.splice(i, 1);
        return;
      }
      case 'fdb-append':
        need(s, o.dev);
        return;
      case 'sysctl':
        s.sysctls.set(o.key, o.value);
        return;
    }
  }

  return {
    ops,
    ns: (p) => space(p ?? ''),
    addNetns: (p) => void spaces.set(p, fresh()),
    removeNetns: (p) => {
      const gone = spaces.get(p);
      spaces.delete(p);
      // As the kernel does: virtual links die with the netns, physical ones (no kind) go
      // back to the initial namespace, down, renamed "dev<N>" if their name is taken there.
      for (const l of gone?.links.values() ?? []) {
        if (l.kind || l.ifname === 'lo') continue;
        const ifname = host.links.has(l.ifname) ? `dev${l.ifindex}` : l.ifname;
        host.links.set(ifname, { ...l, ifname, flags: l.flags.filter((f) => f !== 'UP') });
      }
    },
    failOn: (pred, always = false) => void failures.push({ pred, always }),
    async apply(t, list, opts = {}) {
      for (const [i, o] of list.entries()) {
        ops.push({ t, op: o });
        const f = failures.find((x) => x.pred(o, t));
        try {
          if (f) {
            if (!f.always) failures = failures.filter((x) => x !== f);
            throw new TartanError('ERR_KERNEL', `injected failure at ${o.op}`);
          }
          applyOne(t, o);
        } catch (e) {
          // Where it stopped, as the real drivers say (types.ts RunPosition).
          if (!opts.bestEffort) throw e instanceof Error ? atPosition(e, { step: 0, op: i }) : e;
        }
      }
    },
    async run(steps, opts = {}) {
      for (const [i, st] of steps.entries()) {
        try {
          await this.apply(st.t, st.ops, opts);
        } catch (e) {
          const op = runPosition(e)?.op ?? 0;
          const out =
            st.label && e instanceof TartanError
              ? new TartanError(e.code, `${st.label}: ${e.message}`)
              : (e as Error);
          throw atPosition(out, { step: i, op });
        }
      }
    },
    async linkExists(name) {
      return host.links.has(name);
    },
    async linkKind(name) {
      const l = host.links.get(name);
      return l && (l.kind === 'veth' || l.kind === undefined ? '' : l.kind);
    },
    async links(t) {
      return [...space(t).links.values()].map((l) => ({ ...l, flags: [...l.flags] }));
    },
    async addresses(t) {
      return space(t).addrs.map((a) => ({ ...a }));
    },
    async routes(t, table) {
      const want = String(table ?? 'main');
      return space(t)
        .routes.filter((r) => (r.table ?? 'main') === want)
        .map((r) => ({ ...r }));
    },
    async rules(t) {
      return space(t).rules.map((r) => ({ ...r }));
    },
    async netnsKind(path): Promise<NetnsKind> {
      return spaces.has(path) ? 'net' : 'missing';
    },
  };
}
