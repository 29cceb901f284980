// A real single-node Kubernetes cluster for end-to-end tests: startKube() (etcd +
// kube-apiserver), an isolated containerd 1.6 with CRI (test/harness/clients/containerd.ts,
// pause and busybox images imported), and a kubelet built by `bash scripts/build-kube.sh
// kubelet`, all stopped by PID. No scheduler and no controller-manager: pods are created
// through the API with spec.nodeName set; images are local (imagePullPolicy: Never).
// See docs/adr/0007-e2e-kubelet.md. A missing prerequisite FAILS; nothing is skipped.
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { freePorts } from './etcd.js';
import { KUBE_APISERVER_BIN, startKube, type KubeHandle } from './kube.js';
import { Containerd } from './clients/containerd.js';
import { BUSYBOX_IMAGE } from './clients/images.js';
import {
  CACHE_BIN,
  CreatedPaths,
  mkTmp,
  mountsUnder,
  pidAlive,
  removeCgroupTree,
  removeDir,
  requireCommands,
  requireRoot,
  run,
  sh,
  sleep,
  stopPid,
  unmountUnder,
} from './clients/util.js';
import type { KubeClient } from '../../src/k8s/client.js';

export const KUBELET_BIN = process.env.TARTAN_KUBELET_BIN ?? join(CACHE_BIN, 'kubelet');
export const TEST_IMAGE = BUSYBOX_IMAGE.ref;
/** Generous: the first kubelet start on a loaded 2-core machine takes a while. */
export const CLUSTER_TIMEOUT_MS = 240_000;

/** Host sysctls the kubelet sets when protectKernelDefaults is false; restored in stop(). */
const KUBELET_SYSCTLS = [
  'vm.overcommit_memory',
  'vm.panic_on_oom',
  'kernel.panic',
  'kernel.panic_on_oops',
  'kernel.keys.root_maxkeys',
  'kernel.keys.root_maxbytes',
];
/** Created by the kubelet outside its root dir (legacy container log symlinks). */
const HOST_PATHS = ['/var/log/containers'];

export interface ClusterOptions {
  /** CRI's CNI dirs (containerd 1.6 takes one bin dir: see makeCniBinDir). */
  cniBinDir: string;
  cniConfDir: string;
  nodeName?: string;
}

export interface PodSandbox {
  id: string;
  /** /var/run/netns/cni-<uuid>: usable with `nsenter --net=`. */
  netns: string;
  /** The pause process. */
  pid: number;
}

export interface Cluster {
  kube: KubeHandle;
  ctrd: Containerd;
  nodeName: string;
  kubeletPid: number;
  /** The kubelet's --root-dir. */
  rootDir: string;
  client(): KubeClient;
  /** Creates a namespace (idempotent). */
  namespace(name: string): Promise<void>;
  /** POSTs a pod bound to this node (nodeName, imagePullPolicy Never filled in). */
  createPod(ns: string, pod: PodManifest): Promise<PodObject>;
  waitPodRunning(ns: string, name: string, timeoutMs?: number): Promise<PodObject>;
  /** DELETE through the API, then wait until the object is gone (kubelet confirmed). */
  deletePod(ns: string, name: string, timeoutMs?: number): Promise<void>;
  /** The pod's CRI sandbox (by pod UID). */
  sandbox(pod: PodObject): Promise<PodSandbox>;
  kubeletLogTail(lines?: number): string;
  stop(): Promise<void>;
}

export interface PodManifest {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
}

export interface PodObject {
  metadata: { name: string; namespace: string; uid: string; annotations?: Record<string, string> };
  spec: Record<string, unknown>;
  status?: {
    phase?: string;
    podIP?: string;
    podIPs?: { ip: string }[];
    conditions?: { type: string; status: string }[];
    containerStatuses?: { state?: Record<string, unknown> }[];
  };
}

function cgroupRoots(): string[] {
  const base = '/sys/fs/cgroup';
  if (existsSync(join(base, 'cgroup.controllers'))) return [base];
  return readdirSync(base)
    .map((h) => join(base, h))
    .filter((d) => existsSync(join(d, 'cgroup.procs')));
}

async function readSysctls(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const k of KUBELET_SYSCTLS) {
    const r = await run('sysctl', ['-n', k]);
    if (r.code === 0) out.set(k, r.stdout.trim());
  }
  return out;
}

/**
 * startKube() with `--allow-privileged=true` (as kubeadm sets it): the agent DaemonSet is
 * privileged, and the API server refuses privileged pods without it. startKube() takes no
 * extra flags, so the binary is wrapped by a script that execs it (same PID).
 * TODO(lead): an `extraArgs` option on startKube() would replace this wrapper.
 */
export async function startKubePrivileged(): Promise<KubeHandle> {
  if (!existsSync(KUBE_APISERVER_BIN))
    throw new Error(
      `kube-apiserver not built: run "bash scripts/build-kube.sh" (no ${KUBE_APISERVER_BIN})`,
    );
  const dir = mkTmp('tartan-kube-wrap-');
  const wrapper = join(dir, 'kube-apiserver');
  writeFileSync(wrapper, `#!/bin/sh\nexec '${KUBE_APISERVER_BIN}' --allow-privileged=true "$@"\n`, {
    mode: 0o755,
  });
  try {
    const kube = await startKube({ bin: wrapper });
    const stop = kube.stop;
    // In place (not a spread copy): `pid` is a getter that follows restarts.
    kube.stop = async () => {
      try {
        await stop();
      } finally {
        removeDir(dir);
      }
    };
    return kube;
  } catch (e) {
    removeDir(dir);
    throw e;
  }
}

/** A client certificate for the node, signed by the cluster CA (Node authorizer identity). */
async function nodeCert(kube: KubeHandle, dir: string, node: string) {
  const caDir = dirname(kube.kubeconfigPath); // startKube's temp dir: ca.crt, ca.key
  const key = join(dir, 'node.key');
  const csr = join(dir, 'node.csr');
  const crt = join(dir, 'node.crt');
  const ext = join(dir, 'node.ext');
  await sh('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  await sh('openssl', ['req', '-new', '-key', key, '-subj', `/O=system:nodes/CN=system:node:${node}`, '-out', csr]); // prettier-ignore
  writeFileSync(
    ext,
    'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n',
  );
  await sh('openssl', [
    'x509', '-req', '-in', csr, '-CA', join(caDir, 'ca.crt'), '-CAkey', join(caDir, 'ca.key'),
    '-CAcreateserial', '-CAserial', join(dir, 'ca.srl'), '-days', '2', '-sha256',
    '-extfile', ext, '-out', crt,
  ]); // prettier-ignore
  return { crt, key };
}

export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  requireRoot();
  requireCommands('openssl', 'sysctl', 'umount', 'nsenter');
  if (!existsSync(KUBELET_BIN))
    throw new Error(
      `kubelet not built: run "bash scripts/build-kube.sh kubelet" (no ${KUBELET_BIN})`,
    );
  const node = opts.nodeName ?? `tt-e2e-node-${process.pid}`;
  const created = new CreatedPaths(HOST_PATHS);
  const sysctls = await readSysctls();
  const chains = await kubeChains();
  const dir = mkTmp('tartan-kubelet-');
  const cgroupRoot = basename(dir);
  const rootDir = join(dir, 'root');
  const logsDir = join(dir, 'pod-logs');
  const kubeletLog = join(dir, 'kubelet.log');
  let kube: KubeHandle | undefined;
  let ctrd: Containerd | undefined;
  let pid = 0;

  const cleanup = async (): Promise<string[]> => {
    const problems: string[] = [];
    if (pid) await stopPid(pid, 15_000);
    if (ctrd) {
      // The kubelet's sandboxes: stop (CNI DEL) and remove them before containerd goes.
      const r = await ctrd.crictl(['pods', '-q']);
      for (const id of r.stdout.split('\n').filter(Boolean)) {
        const st = await ctrd.crictl(['stopp', id]);
        const rm = await ctrd.crictl(['rmp', '-f', id]);
        if (st.code !== 0 || rm.code !== 0)
          problems.push(`sandbox ${id}: stopp ${st.stderr.trim()} / rmp ${rm.stderr.trim()}`);
      }
      try {
        await ctrd.stop();
      } catch (e) {
        problems.push(`containerd: ${(e as Error).message}`);
      }
    }
    await kube?.stop();
    const cg = await removeCgroupTree(cgroupRoot);
    if (cg.length) problems.push(`cgroups still in use: ${cg.join(', ')}`);
    if (mountsUnder(dir).length) await run('umount', ['-R', rootDir]);
    await unmountUnder(dir);
    const left = mountsUnder(dir);
    if (left.length) problems.push(`mounts left under ${dir}: ${left.join(', ')}`);
    else removeDir(dir);
    // Legacy log symlinks the kubelet made for our containers.
    if (existsSync('/var/log/containers'))
      for (const f of readdirSync('/var/log/containers')) {
        const p = join('/var/log/containers', f);
        try {
          if (lstatSync(p).isSymbolicLink() && readlinkSync(p).startsWith(dir)) rmSync(p);
        } catch {
          /* raced */
        }
      }
    created.removeCreated();
    problems.push(...(await removeNewKubeChains(chains)));
    for (const [k, v] of sysctls) await run('sysctl', ['-q', '-w', `${k}=${v}`]);
    return problems;
  };

  try {
    kube = await startKubePrivileged();
    ctrd = await Containerd.start({
      cniBinDir: opts.cniBinDir,
      cniConfDir: opts.cniConfDir,
      withTestImage: true,
    });
    // The kubelet's cgroup root must exist in every hierarchy; pods go below it.
    for (const r of cgroupRoots()) mkdirSync(join(r, cgroupRoot), { recursive: true });
    for (const d of [rootDir, logsDir, join(dir, 'pki')]) mkdirSync(d, { recursive: true });
    const cert = await nodeCert(kube, dir, node);
    const b64 = (f: string) => Buffer.from(readFileSync(f)).toString('base64');
    writeFileSync(
      join(dir, 'kubeconfig'),
      [
        'apiVersion: v1',
        'kind: Config',
        `clusters: [{name: tt, cluster: {server: "${kube.url}", certificate-authority-data: ${Buffer.from(kube.ca).toString('base64')}}}]`,
        `users: [{name: node, user: {client-certificate-data: ${b64(cert.crt)}, client-key-data: ${b64(cert.key)}}}]`,
        'contexts: [{name: tt, context: {cluster: tt, user: node}}]',
        'current-context: tt',
        '',
      ].join('\n'),
    );
    const [port] = await freePorts(1);
    writeFileSync(
      join(dir, 'kubelet.yaml'),
      JSON.stringify(
        {
          apiVersion: 'kubelet.config.k8s.io/v1beta1',
          kind: 'KubeletConfiguration',
          // This machine: cgroup v1 (hybrid), PID 1 is not systemd, swap may be on.
          failCgroupV1: false,
          cgroupDriver: 'cgroupfs',
          cgroupRoot: `/${cgroupRoot}`,
          cgroupsPerQOS: true,
          failSwapOn: false,
          containerRuntimeEndpoint: `unix://${ctrd.socket}`,
          address: '127.0.0.1',
          port,
          readOnlyPort: 0,
          healthzPort: 0,
          authentication: {
            anonymous: { enabled: false },
            webhook: { enabled: false },
            x509: { clientCAFile: join(dirname(kube.kubeconfigPath), 'ca.crt') },
          },
          authorization: { mode: 'AlwaysAllow' },
          podLogsDir: logsDir,
          resolvConf: '/etc/resolv.conf',
          localStorageCapacityIsolation: false,
          evictionHard: {
            'memory.available': '1Mi',
            'nodefs.available': '1%',
            'imagefs.available': '1%',
            'nodefs.inodesFree': '1%',
          },
          imageGCHighThresholdPercent: 100,
          imageGCLowThresholdPercent: 99,
          nodeStatusUpdateFrequency: '2s',
          syncFrequency: '5s',
          fileCheckFrequency: '5s',
          serializeImagePulls: false,
          registerNode: true,
          // No KUBE-FIREWALL / KUBE-KUBELET-CANARY / KUBE-IPTABLES-HINT chains on the host.
          makeIPTablesUtilChains: false,
          maxPods: 110,
        },
        null,
        2,
      ),
    );
    const fd = openSync(kubeletLog, 'a');
    const child = spawn(
      KUBELET_BIN,
      [
        `--config=${join(dir, 'kubelet.yaml')}`,
        `--kubeconfig=${join(dir, 'kubeconfig')}`,
        `--hostname-override=${node}`,
        `--root-dir=${rootDir}`,
        `--cert-dir=${join(dir, 'pki')}`,
        '--v=2',
      ],
      { detached: true, stdio: ['ignore', fd, fd] },
    );
    closeSync(fd);
    if (!child.pid) throw new Error('kubelet did not start');
    pid = child.pid;
    child.unref();
    const client = kube.client();
    const tail = (lines = 40) => {
      try {
        return readFileSync(kubeletLog, 'utf8').split('\n').slice(-lines).join('\n');
      } catch {
        return '(no kubelet log)';
      }
    };
    // Ready: the Node object exists with condition Ready=True.
    const deadline = Date.now() + CLUSTER_TIMEOUT_MS - 30_000;
    for (;;) {
      if (!pidAlive(pid)) throw new Error(`kubelet exited:\n${tail(60)}`);
      const res = await client.request<{
        status?: { conditions?: { type: string; status: string }[] };
      }>({
        method: 'GET',
        path: `/api/v1/nodes/${node}`,
      });
      if (
        res.status === 200 &&
        res.body.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')
      )
        break;
      if (Date.now() > deadline)
        throw new Error(
          `node ${node} not Ready (${res.status} ${JSON.stringify(res.body.status?.conditions ?? [])}):\n${tail(60)}`,
        );
      await sleep(500);
    }

    const kubeH = kube;
    const ctrdH = ctrd;
    const getPod = async (ns: string, name: string) =>
      client.request<PodObject>({ method: 'GET', path: `/api/v1/namespaces/${ns}/pods/${name}` });
    let stopped: Promise<void> | undefined;
    return {
      kube: kubeH,
      ctrd: ctrdH,
      nodeName: node,
      kubeletPid: pid,
      rootDir,
      client: () => kubeH.client(),
      async namespace(name) {
        const res = await client.request({
          method: 'POST',
          path: '/api/v1/namespaces',
          body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } },
        });
        if (res.status !== 201 && res.status !== 409)
          throw new Error(`namespace ${name}: ${res.status} ${JSON.stringify(res.body)}`);
      },
      async createPod(ns, pod) {
        const spec = {
          nodeName: node,
          automountServiceAccountToken: false,
          dnsPolicy: 'Default',
          terminationGracePeriodSeconds: 1,
          enableServiceLinks: false,
          containers: [
            {
              name: 'main',
              image: TEST_IMAGE,
              imagePullPolicy: 'Never',
              command: ['/bin/sleep', '3600'],
            },
          ],
          ...pod.spec,
        };
        return client.must<PodObject>({
          method: 'POST',
          path: `/api/v1/namespaces/${ns}/pods`,
          body: { apiVersion: 'v1', kind: 'Pod', metadata: pod.metadata, spec },
        });
      },
      async waitPodRunning(ns, name, timeoutMs = 120_000) {
        const end = Date.now() + timeoutMs;
        let last: PodObject | undefined;
        for (;;) {
          const res = await getPod(ns, name);
          if (res.status === 200) {
            last = res.body;
            if (last.status?.phase === 'Running' && last.status.podIP) return last;
            if (last.status?.phase === 'Failed') break;
          }
          if (Date.now() > end) break;
          await sleep(300);
        }
        const events = await client.request<{ items: { reason: string; message: string }[] }>({
          method: 'GET',
          path: `/api/v1/namespaces/${ns}/events?fieldSelector=involvedObject.name=${name}`,
        });
        throw new Error(
          `pod ${ns}/${name} not Running: ${JSON.stringify(last?.status ?? null)}\nevents: ${JSON.stringify(
            events.body.items?.map((e) => `${e.reason}: ${e.message}`),
          )}\n--- kubelet ---\n${tail(30)}`,
        );
      },
      async deletePod(ns, name, timeoutMs = 120_000) {
        const res = await client.request({
          method: 'DELETE',
          path: `/api/v1/namespaces/${ns}/pods/${name}`,
        });
        if (res.status !== 200 && res.status !== 202 && res.status !== 404)
          throw new Error(`delete pod ${ns}/${name}: ${res.status} ${JSON.stringify(res.body)}`);
        const end = Date.now() + timeoutMs;
        for (;;) {
          if ((await getPod(ns, name)).status === 404) return;
          if (Date.now() > end)
            throw new Error(`pod ${ns}/${name} still exists after ${timeoutMs} ms:\n${tail(30)}`);
          await sleep(300);
        }
      },
      async sandbox(pod) {
        const r = await ctrdH.crictl([
          'pods', '-o', 'json', '--state', 'ready', '--label', `io.kubernetes.pod.uid=${pod.metadata.uid}`,
        ]); // prettier-ignore
        if (r.code !== 0) throw new Error(`crictl pods: ${r.stderr}`);
        const items = (JSON.parse(r.stdout) as { items?: { id: string }[] }).items ?? [];
        if (items.length !== 1)
          throw new Error(`pod ${pod.metadata.name}: ${items.length} ready sandboxes`);
        const id = items[0]!.id;
        const info = (await ctrdH.inspectPod(id)) as { info?: { pid?: number } };
        return { id, netns: await ctrdH.podNetns(id), pid: info.info?.pid ?? 0 };
      },
      kubeletLogTail: tail,
      stop: () =>
        (stopped ??= (async () => {
          // Pods still bound to the node go first, while the kubelet runs (CNI DEL).
          const pods = await client.request<{ items?: PodObject[] }>({
            method: 'GET',
            path: `/api/v1/pods?fieldSelector=spec.nodeName=${node}`,
          });
          const problems: string[] = [];
          for (const p of pods.body.items ?? []) {
            try {
              await this_deletePod(client, p.metadata.namespace, p.metadata.name);
            } catch (e) {
              problems.push((e as Error).message);
            }
          }
          problems.push(...(await cleanup()));
          if (problems.length) throw new Error(problems.join('\n'));
        })()),
    };
  } catch (e) {
    const problems = await cleanup();
    const msg = e instanceof Error ? e.message : String(e);
    throw new Error(`${msg}${problems.length ? `\ncleanup: ${problems.join('\n')}` : ''}`, {
      cause: e,
    });
  }
}

async function this_deletePod(client: KubeClient, ns: string, name: string): Promise<void> {
  await client.request({ method: 'DELETE', path: `/api/v1/namespaces/${ns}/pods/${name}` });
  const end = Date.now() + 60_000;
  while (Date.now() < end) {
    const r = await client.request({
      method: 'GET',
      path: `/api/v1/namespaces/${ns}/pods/${name}`,
    });
    if (r.status === 404) return;
    await sleep(300);
  }
  throw new Error(`pod ${ns}/${name} was not deleted by the kubelet within 60 s`);
}

/** iptables/ip6tables chains named KUBE-* per table ("v4 filter KUBE-FIREWALL"). */
async function kubeChains(): Promise<Set<string>> {
  const out = new Set<string>();
  for (const [fam, cmd] of [
    ['v4', 'iptables'],
    ['v6', 'ip6tables'],
  ] as const)
    for (const t of ['filter', 'nat', 'mangle']) {
      const r = await run(cmd, ['-w', '-t', t, '-S']);
      for (const l of r.stdout.split('\n')) {
        const m = /^-N (KUBE-\S+)$/.exec(l);
        if (m) out.add(`${fam} ${t} ${m[1]}`);
      }
    }
  return out;
}

/**
 * The kubelet runs with makeIPTablesUtilChains: false; should a KUBE-* chain appear anyway
 * (another kubelet release), remove what was not there before and say so.
 */
async function removeNewKubeChains(before: Set<string>): Promise<string[]> {
  const fresh = [...(await kubeChains())].filter((c) => !before.has(c));
  for (const c of fresh) {
    const [fam, table, chain] = c.split(' ') as [string, string, string];
    const cmd = fam === 'v4' ? 'iptables' : 'ip6tables';
    for (const builtin of ['INPUT', 'OUTPUT', 'FORWARD', 'PREROUTING', 'POSTROUTING'])
      while ((await run(cmd, ['-w', '-t', table, '-D', builtin, '-j', chain])).code === 0);
    await run(cmd, ['-w', '-t', table, '-F', chain]);
    await run(cmd, ['-w', '-t', table, '-X', chain]);
  }
  return fresh.length ? [`the kubelet created iptables chains (removed): ${fresh.join(', ')}`] : [];
}
