// Delegation against fake plugins: /bin/sh scripts in a temp CNI_PATH that record their
// stdin and environment, so what a real plugin would be told is asserted, not mocked.
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SUPPORTED_VERSIONS } from '../cni/spec.js';
import {
  asConflist,
  delegateAdd,
  delegateCheck,
  delegateDel,
  delegateGc,
  delegateStatus,
  type DelegateEnv,
} from './delegate.js';

let dir: string;
let bin: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tartan-unit-'));
  bin = join(dir, 'bin');
  mkdirSync(bin);
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const RESULT =
  '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.9.0.5/24","interface":0}]}';

/** A fake plugin: records the call, then runs `body` (default: a result on ADD). */
function plugin(name: string, body = `[ "$CNI_COMMAND" = ADD ] && echo '${RESULT}'; exit 0`) {
  const p = join(bin, name);
  writeFileSync(
    p,
    [
      '#!/bin/sh',
      `cat > "${dir}/${name}.$CNI_COMMAND.stdin"`,
      `env > "${dir}/${name}.$CNI_COMMAND.env"`,
      `echo "$CNI_COMMAND ${name}" >> "${dir}/calls"`,
      body,
      '',
    ].join('\n'),
  );
  chmodSync(p, 0o755);
  return p;
}

const calls = () =>
  existsSync(join(dir, 'calls')) ? readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n') : [];
const stdin = (name: string, cmd: string) =>
  JSON.parse(readFileSync(join(dir, `${name}.${cmd}.stdin`), 'utf8')) as Record<string, unknown>;
const envOf = (name: string, cmd: string) =>
  Object.fromEntries(
    readFileSync(join(dir, `${name}.${cmd}.env`), 'utf8')
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );

const env = (over: Partial<DelegateEnv> = {}): DelegateEnv => ({
  containerId: 'c1',
  netns: '/var/run/netns/p1',
  ifname: 'net1',
  cniArgs: 'IgnoreUnknown=1',
  cniPath: [bin],
  runtimeConfig: undefined,
  ...over,
});

const V = SUPPORTED_VERSIONS;
const one = (type: string, extra: Record<string, unknown> = {}) => ({
  cniVersion: '1.0.0',
  name: 'd',
  type,
  ...extra,
});

describe('DEL of a delegate that never ran', () => {
  it('succeeds when the plugin is not in CNI_PATH, also after a successful ADD', async () => {
    await delegateDel(one('nosuch'), undefined, env(), V);
    plugin('fake');
    const out = await delegateAdd(one('fake'), env(), V);
    rmSync(join(bin, 'fake'));
    await delegateDel(out.conflist, out.result, env(), V);
    expect(calls()).toEqual(['ADD fake']);
  });

  it('still runs DEL of the plugins that are there', async () => {
    plugin('a');
    const list = { cniVersion: '1.0.0', name: 'l', plugins: [{ type: 'a' }, { type: 'gone' }] };
    await delegateDel(list, undefined, env(), V);
    expect(calls()).toEqual(['DEL a']);
  });

  it('succeeds for a config that could never have run', async () => {
    for (const conf of [
      one('../bin/fake'),
      { cniVersion: '1.0.0', name: 'x' },
      { cniVersion: '1.0.0', name: 'x', plugins: [] },
      one('fake', { cniVersion: '0.1.0' }),
    ])
      await delegateDel(conf, undefined, env(), V);
  });

  it('succeeds when the plugin cannot be started (missing interpreter)', async () => {
    writeFileSync(join(bin, 'noint'), `#!${dir}/nosuch-shell\n`);
    chmodSync(join(bin, 'noint'), 0o755);
    await delegateDel(one('noint'), undefined, env(), V);
  });

  it('fails when the plugin ran and returned an error', async () => {
    plugin('fake', `echo '{"cniVersion":"1.0.0","code":11,"msg":"try again later"}'; exit 1`);
    await expect(delegateDel(one('fake'), undefined, env(), V)).rejects.toMatchObject({
      code: 'ERR_DELEGATE',
      cniCode: 11,
    });
  });
});

describe('plugin lookup and start', () => {
  it('skips a directory with the plugin name earlier in CNI_PATH', async () => {
    const early = join(dir, 'early');
    mkdirSync(join(early, 'fake'), { recursive: true });
    plugin('fake');
    await delegateAdd(one('fake'), env({ cniPath: [early, bin] }), V);
    expect(calls()).toEqual(['ADD fake']);
  });

  it('retries a plugin whose binary is busy being written (ETXTBSY)', async () => {
    const fd = openSync(plugin('fake'), 'r+');
    setTimeout(() => closeSync(fd), 150);
    await delegateAdd(one('fake'), env(), V);
    expect(calls()).toEqual(['ADD fake']);
  });

  it('turns a spawn error into ERR_DELEGATE', async () => {
    writeFileSync(join(dir, 'interp'), 'not executable');
    writeFileSync(join(bin, 'badint'), `#!${dir}/interp\n`);
    chmodSync(join(bin, 'badint'), 0o755);
    await expect(delegateAdd(one('badint'), env(), V)).rejects.toMatchObject({
      code: 'ERR_DELEGATE',
      cniCode: 106,
    });
  });
});

describe('deadline', () => {
  const hang = () =>
    plugin('hang', `sleep 30 & echo $! > "${dir}/grandchild"; sleep 30; echo '${RESULT}'`);
  const alive = (pid: number) => {
    try {
      return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };

  it('kills a hung plugin and its process group', async () => {
    hang();
    const t0 = Date.now();
    await expect(delegateAdd(one('hang'), env({ timeoutMs: 300 }), V)).rejects.toMatchObject({
      code: 'ERR_DELEGATE',
      message: expect.stringMatching(/hang ADD did not finish within 0.3 s/),
    });
    expect(Date.now() - t0).toBeLessThan(3000);
    const pid = Number(readFileSync(join(dir, 'grandchild'), 'utf8'));
    for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
    expect(alive(pid)).toBe(false);
  });

  it('takes the deadline from TARTAN_DELEGATE_TIMEOUT_S', async () => {
    hang();
    process.env.TARTAN_DELEGATE_TIMEOUT_S = '0.2';
    try {
      await expect(delegateDel(one('hang'), undefined, env(), V)).rejects.toMatchObject({
        code: 'ERR_DELEGATE',
        message: expect.stringMatching(/within 0.2 s/),
      });
    } finally {
      delete process.env.TARTAN_DELEGATE_TIMEOUT_S;
    }
  });

  it('leaves no timer behind after a normal exit', async () => {
    plugin('fake');
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    await delegateAdd(one('fake'), env(), V);
    expect(timers()).toBe(before);
  });
});

describe('CHECK', () => {
  const failing = `[ "$CNI_COMMAND" = CHECK ] && { echo '{"code":4,"msg":"no CHECK"}'; exit 1; }
echo '${RESULT}'`;

  it('keeps disableCheck and disableGC in the recorded conflist and honours disableCheck', async () => {
    plugin('fake', failing);
    const raw = { cniVersion: '1.0.0', name: 'l', disableCheck: true, disableGC: 'true' };
    const out = await delegateAdd({ ...raw, plugins: [{ type: 'fake' }] }, env(), V);
    expect(out.conflist).toMatchObject({ disableCheck: true, disableGC: true });
    await delegateCheck(out.conflist, out.result, env(), V);
    expect(calls()).toEqual(['ADD fake']);
  });

  it('does not call plugins of a conflist below 0.4.0', async () => {
    plugin('fake', failing);
    const out = await delegateAdd(one('fake', { cniVersion: '0.3.1' }), env(), V);
    await delegateCheck(out.conflist, out.result, env(), V);
    expect(calls()).toEqual(['ADD fake']);
  });

  it('calls the plugin otherwise, and fails with it', async () => {
    plugin('fake', failing);
    const out = await delegateAdd(one('fake'), env(), V);
    await expect(delegateCheck(out.conflist, out.result, env(), V)).rejects.toMatchObject({
      code: 'ERR_DELEGATE',
      cniCode: 4,
    });
    expect(stdin('fake', 'CHECK').prevResult).toBeDefined();
  });
});

describe('stderr of a failed delegate', () => {
  it('is in the error details next to the CNI error object', async () => {
    plugin(
      'fake',
      `echo "bridge cni0: permission denied" >&2
echo '{"cniVersion":"1.0.0","code":11,"msg":"try again later"}'; exit 1`,
    );
    await expect(delegateAdd(one('fake'), env(), V)).rejects.toMatchObject({
      code: 'ERR_DELEGATE',
      cniCode: 11,
      message: 'fake ADD failed: try again later',
      details: 'bridge cni0: permission denied',
    });
  });

  it('is bounded, keeping its end', async () => {
    plugin('fake', `head -c 100000 /dev/zero | tr '\\0' x >&2; echo " the cause" >&2; exit 2`);
    const e = (await delegateAdd(one('fake'), env(), V).catch((x: unknown) => x)) as Error;
    expect(e.message.length).toBeLessThan(5000);
    expect(e.message).toMatch(/the cause$/);
  });
});

describe('GC', () => {
  const list = (extra: Record<string, unknown> = {}) => ({
    cniVersion: '1.1.0',
    name: 'l',
    plugins: [{ type: 'a', capabilities: { ips: true } }, { type: 'b' }],
    ...extra,
  });
  const valid = [{ containerID: 'c1', ifname: 'net1' }];

  it('sends the valid attachments to every plugin, without an attachment in the env', async () => {
    plugin('a');
    plugin('b');
    await delegateGc(list(), valid, env(), V);
    expect(calls()).toEqual(['GC a', 'GC b']);
    expect(stdin('a', 'GC')).toMatchObject({
      cniVersion: '1.1.0',
      name: 'l',
      type: 'a',
      'cni.dev/valid-attachments': valid,
    });
    expect(envOf('b', 'GC')).toMatchObject({ CNI_COMMAND: 'GC', CNI_CONTAINERID: '' });
  });

  it('is skipped below 1.1.0 and with disableGC', async () => {
    plugin('a');
    plugin('b');
    await delegateGc(list({ cniVersion: '1.0.0' }), valid, env(), V);
    await delegateGc(list({ disableGC: true }), valid, env(), V);
    expect(calls()).toEqual([]);
  });

  it('runs every plugin, then fails with the failures', async () => {
    plugin('a', `echo '{"code":11,"msg":"locked"}'; exit 1`);
    plugin('b');
    await expect(delegateGc(list(), valid, env(), V)).rejects.toMatchObject({
      code: 'ERR_DELEGATE',
      message: expect.stringMatching(/a GC failed: locked/),
    });
    expect(calls()).toEqual(['GC a', 'GC b']);
  });
});

describe('STATUS', () => {
  const list = { cniVersion: '1.1.0', name: 'l', plugins: [{ type: 'a' }, { type: 'b' }] };

  it('asks every plugin', async () => {
    plugin('a');
    plugin('b');
    await delegateStatus(list, env(), V);
    expect(calls()).toEqual(['STATUS a', 'STATUS b']);
    expect(stdin('b', 'STATUS')).toMatchObject({ cniVersion: '1.1.0', name: 'l', type: 'b' });
  });

  it('fails on the first plugin not ready, keeping its code', async () => {
    plugin(
      'a',
      `echo '{"cniVersion":"1.1.0","code":50,"msg":"no route to the datastore"}'; exit 1`,
    );
    plugin('b');
    await expect(delegateStatus(list, env(), V)).rejects.toMatchObject({
      code: 'ERR_DELEGATE',
      cniCode: 50,
    });
    expect(calls()).toEqual(['STATUS a']);
  });

  it('is skipped below 1.1.0', async () => {
    plugin('a', 'exit 1');
    await delegateStatus({ ...list, cniVersion: '1.0.0' }, env(), V);
    expect(calls()).toEqual([]);
  });
});

describe('the version of a delegated conflist', () => {
  const plugins = [{ type: 'bridge' }];
  it('is picked from cniVersions and cniVersion together, as libcni does', () => {
    const pick = (raw: Record<string, unknown>) =>
      asConflist({ ...raw, plugins }, SUPPORTED_VERSIONS).cniVersion;
    expect(pick({ cniVersion: '1.0.0', cniVersions: ['2.0.0'] })).toBe('1.0.0');
    expect(pick({ cniVersion: '1.0.0', cniVersions: [] })).toBe('1.0.0');
    expect(pick({ cniVersion: '0.4.0', cniVersions: ['1.1.0', '0.3.1'] })).toBe('1.1.0');
    expect(pick({ cniVersions: ['0.4.0'] })).toBe('0.4.0');
  });
});
