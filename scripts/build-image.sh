#!/usr/bin/env bash
# Builds the Tartan container image (node agent, controller, and the shim the DaemonSet's
# init container installs) as a docker-archive, without a registry or a daemon:
#   bash scripts/build-image.sh [OUT.tar]        (default dist/tartan-image.tar)
# Load it with `ctr -n k8s.io image import`, `podman load` or `docker load`. The reference
# is $TARTAN_IMAGE (default localhost/tartan:dev).
#
# One layer from this machine's files: node and its libraries, iproute2 (`ip`, `bridge`),
# util-linux `nsenter`, coreutils `install`, dash as /bin/sh, busybox-static for the shell tools the manifests' scripts use,
# dist/ and the production node_modules. Reproducible: sorted tar, fixed mtimes and owners.
set -euo pipefail
cd "$(dirname "$0")/.."

REF=${TARTAN_IMAGE:-localhost/tartan:dev}
OUT=${1:-dist/tartan-image.tar}
for c in node ip bridge nsenter tar sha256sum ldd /bin/busybox; do
  command -v "$c" >/dev/null || { echo "build-image: $c missing (bash .ci/install-deps.sh)" >&2; exit 1; }
done
[[ -x dist/tartan-shim && -f dist/tartan-agent.js ]] || node scripts/build.mjs

stage=$(mktemp -d /tmp/tartan-image-XXXXXX)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
mkdir -p "$root"/{bin,etc,proc,sys,dev,tmp,run,var/lib,opt/tartan}
ln -s ../run "$root/var/run"
chmod 1777 "$root/tmp"

# Real tools with their shared libraries (and the dynamic loader), at their host paths.
tools=(/usr/bin/node /usr/sbin/ip /usr/sbin/bridge /usr/bin/nsenter /usr/bin/install /usr/bin/dash)
copy() { cp --parents -L "$1" "$root"; }
for t in "${tools[@]}"; do
  copy "$t"
  ldd "$t" | awk '$3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
    [[ -e "$root$lib" ]] || copy "$lib"
  done
done
# busybox for sed, mv, rm ...; its applets never shadow the real tools. /bin/sh is dash:
# busybox's sh runs its own applets (a crippled `ip`) before looking at PATH.
ln -s ../usr/bin/dash "$root/bin/sh"
cp /bin/busybox "$root/bin/busybox"
for a in $(/bin/busybox --list); do
  case $a in busybox | sh | ip | bridge | nsenter | node | install) continue ;; esac
  ln -s busybox "$root/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"

# The programs: dist/ (no benchmarks, no source maps) and the production dependencies. The
# CNI executable is the shim-only build (every call in a cluster goes through the agent):
# the full dist/tartan stays out, 110 MB the nodes would pull for nothing.
mkdir -p "$root/opt/tartan/dist"
cp package.json "$root/opt/tartan/"
(cd dist && find . -maxdepth 3 \( -name 'bench-*' -o -name '*.map' -o -name '*.tar' -o -path ./tartan \) -prune -o -type f -print |
  while read -r f; do mkdir -p "$root/opt/tartan/dist/$(dirname "$f")" && cp "$f" "$root/opt/tartan/dist/$f"; done)
npm ls --omit=dev --all --parseable 2>/dev/null | tail -n +2 | while read -r dir; do
  rel=${dir#"$PWD"/}
  mkdir -p "$root/opt/tartan/$rel"
  # The package itself; nested node_modules are listed (and copied) on their own. A native
  # addon needs its JavaScript and the built .node file, not its sources or build tree.
  if [[ -f "$dir/binding.gyp" ]]; then
    (cd "$dir" && find . -path ./node_modules -prune -o -type f \( -path './build/Release/*.node' \
      -o -path './lib/*' -o -name package.json \) -print | grep -v test_extension |
      cpio -pdm --quiet "$root/opt/tartan/$rel")
  else
    (cd "$dir" && find . -path ./node_modules -prune -o -type f -print | cpio -pdm --quiet "$root/opt/tartan/$rel")
  fi
done

tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$stage/layer.tar" .
layer_sha=$(sha256sum "$stage/layer.tar" | cut -d' ' -f1)
cat >"$stage/config.json" <<EOF
{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z",
 "config":{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"WorkingDir":"/opt/tartan",
  "Cmd":["node","/opt/tartan/dist/tartan-agent.js"]},
 "rootfs":{"type":"layers","diff_ids":["sha256:$layer_sha"]},
 "history":[{"created":"1970-01-01T00:00:00Z","created_by":"scripts/build-image.sh"}]}
EOF
config_sha=$(sha256sum "$stage/config.json" | cut -d' ' -f1)
mv "$stage/config.json" "$stage/$config_sha.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["layer.tar"]}]\n' "$config_sha" "$REF" >"$stage/manifest.json"
mkdir -p "$(dirname "$OUT")"
tar -C "$stage" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
  -cf "$OUT.tmp" manifest.json "$config_sha.json" layer.tar
mv -f "$OUT.tmp" "$OUT"
echo "build-image: $REF -> $OUT ($(du -h "$OUT" | cut -f1), layer sha256:${layer_sha:0:12})"
