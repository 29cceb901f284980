// The README's main command and its scenario example, run as a user would.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { listNetns, run } from '../../src/lab/sh.js';

const root = join(import.meta.dirname, '../..');
const lab = (...args: string[]) =>
  run('node', [join(root, 'dist/lab.js'), ...args], undefined, process.env);

describe('lab', () => {
  it('runs the embedded default site: table, connectivity, isolation, nothing left', async () => {
    const r = await lab();
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/amf\s+node1\s+eth0\s+oam\s+macvlan\s+10\.10\.0\.10\/24/);
    expect(r.stdout).toMatch(
      /smf\s+node2\s+int0\s+internal\s+macvlan\/vxlan\s+10\.20\.0\.\d+\/24 fd00:20::/,
    );
    expect(r.stdout).toMatch(/\(isolation\)\s+upf\s+10\.10\.0\.10\s+blocked\s+ok/);
    expect(r.stdout).toMatch(/(\d+)\/\1 probes as expected/);
    expect(r.stdout).toMatch(/nothing left/);
    // The VLAN towards the radio side: reached where the kernel has 8021q, else a clear skip line.
    if (r.stdout.includes('SKIPPED VLAN'))
      expect(r.stdout).toMatch(/SKIPPED VLAN networks radio: this kernel has no 8021q module/);
    else expect(r.stdout).toMatch(/radio\s+upf\s+10\.40\.0\.20\s+reach\s+ok/);
    expect(await listNetns('tt-lab-')).toEqual([]);
  });

  it('up, status and down a user scenario file', async () => {
    const scenario = ['--scenario', join(root, 'docs/examples/two-sites.yaml')];
    try {
      const up = await lab('up', ...scenario);
      expect(up.code, up.stdout + up.stderr).toBe(0);
      const st = await lab('status', ...scenario);
      expect(st.code, st.stdout + st.stderr).toBe(0);
      expect(st.stdout).toMatch(
        /probe1\s+edge1\s+eth0\s+oam\s+macvlan\s+10\.50\.0\.11\/24 fd00:50::11\/64/,
      );
      expect(st.stdout).toMatch(/oam\s+probe2\s+fd00:50::11\s+reach\s+ok/);
      expect(await listNetns('tt-lab-twosite')).toHaveLength(5);
    } finally {
      const down = await lab('down', ...scenario);
      expect(down.code, down.stdout + down.stderr).toBe(0);
    }
    expect(await listNetns('tt-lab-')).toEqual([]);
  });

  it('runs a scenario file given alone, as the README shows (npm run lab -- --scenario FILE)', async () => {
    const r = await lab('--scenario', join(root, 'docs/examples/two-sites.yaml'));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/(\d+)\/\1 probes as expected/);
    expect(r.stdout).toMatch(/nothing left/);
    expect(await listNetns('tt-lab-')).toEqual([]);
    expect((await lab('--scenario')).code).toBe(2);
  });
});
