// Container images built locally from Debian's busybox-static (no registry is reachable):
// a root filesystem tar (for `podman import`) and docker-archives (for `ctr image import`):
// manifest.json + <sha256>.json config (rootfs.diff_ids = sha256 of the layer) + layer.tar.
// Results are cached under .cache/images/, keyed by the busybox binary and the image config.
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { CACHE_DIR, mkTmp, removeDir, requireCommands, shSync } from './util.js';

const BUSYBOX = '/bin/busybox';
const IMAGES_DIR = join(CACHE_DIR, 'images');
const TAR_FLAGS = ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner'];

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function busyboxKey(): string {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} missing (apt-get install busybox-static)`);
  return sha256(readFileSync(BUSYBOX)).slice(0, 16);
}

/** A tar of a minimal busybox root filesystem (/bin/<applet> -> busybox). */
export function busyboxRootfsTar(): string {
  requireCommands('tar');
  const out = join(IMAGES_DIR, `busybox-rootfs-${busyboxKey()}.tar`);
  if (existsSync(out)) return out;
  mkdirSync(IMAGES_DIR, { recursive: true });
  const stage = mkTmp('tartan-rootfs-');
  try {
    const root = join(stage, 'root');
    for (const d of [
      'bin',
      'sbin',
      'etc',
      'proc',
      'sys',
      'dev',
      'tmp',
      'root',
      'run',
      'var',
      'usr/bin',
    ])
      mkdirSync(join(root, d), { recursive: true });
    shSync('cp', [BUSYBOX, join(root, 'bin/busybox')]);
    const applets = shSync(BUSYBOX, ['--list'])
      .split('\n')
      .filter((a) => a && a !== 'busybox');
    for (const a of applets) symlinkSync('busybox', join(root, 'bin', a));
    writeFileSync(
      join(root, 'etc/passwd'),
      'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n',
    );
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnobody:x:65534:\n');
    writeFileSync(join(root, 'etc/hosts'), '127.0.0.1 localhost\n');
    shSync('chmod', ['1777', join(root, 'tmp')]);
    shSync('tar', ['-C', root, ...TAR_FLAGS, '-cf', `${out}.tmp`, '.']);
    renameSync(`${out}.tmp`, out);
    return out;
  } finally {
    removeDir(stage);
  }
}

export interface ImageSpec {
  /** e.g. localhost/tartan-pause:1 */
  ref: string;
  cmd: string[];
  entrypoint?: string[];
}

/** A docker-archive of the busybox rootfs with the given command; returns its path. */
export function dockerArchive(spec: ImageSpec): string {
  const layer = busyboxRootfsTar();
  const layerSha = sha256(readFileSync(layer));
  const config = {
    architecture: 'amd64',
    os: 'linux',
    created: '1970-01-01T00:00:00Z',
    config: {
      Env: ['PATH=/bin:/sbin:/usr/bin'],
      Cmd: spec.cmd,
      ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
      WorkingDir: '/',
    },
    rootfs: { type: 'layers', diff_ids: [`sha256:${layerSha}`] },
    history: [
      { created: '1970-01-01T00:00:00Z', created_by: 'tartan test harness (busybox-static)' },
    ],
  };
  const configJson = JSON.stringify(config);
  const configSha = sha256(configJson);
  const safe = spec.ref.replace(/[^A-Za-z0-9._-]/g, '_');
  const out = join(IMAGES_DIR, `${safe}-${configSha.slice(0, 16)}.docker.tar`);
  if (existsSync(out)) return out;
  const stage = mkTmp('tartan-image-');
  try {
    writeFileSync(join(stage, `${configSha}.json`), configJson);
    shSync('cp', [layer, join(stage, 'layer.tar')]);
    writeFileSync(
      join(stage, 'manifest.json'),
      JSON.stringify([
        { Config: `${configSha}.json`, RepoTags: [spec.ref], Layers: ['layer.tar'] },
      ]),
    );
    shSync('tar', [
      '-C',
      stage,
      ...TAR_FLAGS,
      '-cf',
      `${out}.tmp`,
      'manifest.json',
      `${configSha}.json`,
      'layer.tar',
    ]);
    renameSync(`${out}.tmp`, out);
    return out;
  } finally {
    removeDir(stage);
  }
}

export const PAUSE_IMAGE: ImageSpec = {
  ref: 'localhost/tartan-pause:1',
  cmd: ['/bin/sleep', '2147483647'],
};
export const BUSYBOX_IMAGE: ImageSpec = { ref: 'localhost/tartan-busybox:1', cmd: ['/bin/sh'] };
