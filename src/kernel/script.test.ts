// The iproute2 driver's script says where a run stopped (ADR 0011), also when a netns
// cannot be entered. Run with a stand-in nsenter (nothing reaches the kernel).
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { buildScript, failedStep } from './script.js';
import type { Step } from './types.js';

let dir = '';
afterEach(() => rmSync(dir, { recursive: true, force: true }));

it('names the first op of a sysctl group whose netns cannot be entered', () => {
  dir = mkdtempSync(join(tmpdir(), 'tartan-unit-'));
  // nsenter: fails for /ns-b as for a netns that is gone; does nothing for any other.
  writeFileSync(
    join(dir, 'nsenter'),
    `#!/bin/sh\ncase "$1" in --net=/ns-b) echo "nsenter: cannot open /ns-b" >&2; exit 1 ;; esac\nexit 0\n`,
  );
  chmodSync(join(dir, 'nsenter'), 0o755);
  const sysctl = (key: string) => ({ op: 'sysctl' as const, key, value: '1' });
  const steps: Step[] = [
    { t: { ns: '/ns-a' }, ops: [sysctl('net/ipv4/conf/default/arp_notify')] },
    { t: { ns: '/ns-b' }, ops: [sysctl('net/ipv6/conf/default/accept_dad')] },
  ];
  const { script, labels } = buildScript(steps, { bestEffort: false });
  const r = spawnSync('sh', ['-s'], {
    input: script,
    encoding: 'utf8',
    env: { PATH: `${dir}:${process.env.PATH}` },
  });
  expect(r.status).not.toBe(0);
  expect(failedStep(r.stderr, labels)).toMatchObject({
    label: expect.stringContaining('in netns /ns-b'),
    at: { step: 1, op: 0 },
  });
});
