#!/usr/bin/env bash
# Builds Kubernetes binaries from the k8s.io/kubernetes Go module into .cache/bin/, for the
# test tiers that need a real control plane (test/harness/kube.ts) or a kubelet
# (test/harness/kubelet.ts, the e2e tier).
# Usage: scripts/build-kube.sh [command ...]     (default: kube-apiserver)
#        e.g. scripts/build-kube.sh kube-apiserver kubelet
# The kubelet uses the same pin as the API server (no version skew; on this cgroup v1 host it
# runs with failCgroupV1: false, see docs/adr/0007-e2e-kubelet.md): ~70 s to build once the
# API server's packages are in Go's build cache.
# Idempotent: a binary is rebuilt only when missing or stamped with another version.
# The version is pinned below (see docs/adr/0005-kubernetes-test-control-plane.md);
# KUBE_VERSION=v1.x.y overrides it. First build: ~300 modules downloaded, then a long
# compile (kube-apiserver ~10-25 min on 2 busy cores); Go's build cache makes reruns quick.
# Needs: Go >= the version in k8s.io/kubernetes' go.mod, and the Go module proxy.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.cache/bin"
mkdir -p "$bin"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
export CGO_ENABLED="${CGO_ENABLED:-0}"
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "build-kube: go is not installed (needs Go >= 1.26)" >&2; exit 1; }

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
# Every k8s.io/kubernetes v1.X.Y release is published with its staging modules
# (k8s.io/api, k8s.io/apiserver, ...) at v0.X.Y.
STAGING_VERSION="v0${KUBE_VERSION#v1}"
cmds=("$@")
((${#cmds[@]})) || cmds=(kube-apiserver)

# Version skew policy: a kubelet must not be newer than the API server it talks to.
if [[ " ${cmds[*]} " == *" kubelet "* && -f "$bin/kube-apiserver.version" ]]; then
  api="$(cat "$bin/kube-apiserver.version")"
  if [[ "$(printf '%s\n%s\n' "$api" "$KUBE_VERSION" | sort -V | tail -1)" != "$api" ]]; then
    echo "build-kube: warning: kubelet $KUBE_VERSION is newer than kube-apiserver $api (unsupported skew)" >&2
  fi
fi

todo=()
for c in "${cmds[@]}"; do
  [[ $c =~ ^[a-z0-9-]+$ ]] || { echo "build-kube: bad command name '$c'" >&2; exit 2; }
  if [[ -x "$bin/$c" && "$(cat "$bin/$c.version" 2>/dev/null)" == "$KUBE_VERSION" ]]; then
    echo "build-kube: $bin/$c is $KUBE_VERSION already"
  else
    todo+=("$c")
  fi
done
((${#todo[@]})) || exit 0

# A throwaway main module that requires k8s.io/kubernetes. Its own go.mod points the staging
# modules at ./staging/src/..., which only works inside its repository, so the
# same modules are replaced here by their published versions.
work="$(mktemp -d /tmp/tartan-kube-build-XXXXXX)"
trap 'rm -rf "$work"' EXIT
cd "$work"
gomod="$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
[[ -f $gomod ]] || { echo "build-kube: could not download k8s.io/kubernetes@$KUBE_VERSION" >&2; exit 1; }
# Only the staging modules that are also required: the samples (e.g. sample-cli-plugin) are
# replaced upstream but never required, and some are not published at every version.
mapfile -t staging < <(sed -n 's|^[[:space:]]*\(k8s.io/[a-z0-9./-]*\) => ./staging/src/.*|\1|p' "$gomod")
{
  echo "module tartan.test/kube-build"
  echo
  echo "go $(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  echo "replace ("
  for m in "${staging[@]}"; do
    if grep -Eq "^[[:space:]]+$m v0\.0\.0" "$gomod"; then echo "	$m => $m $STAGING_VERSION"; fi
  done
  echo ")"
} >go.mod
echo 'package main' >tools.go
pkgs=()
for c in "${todo[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
# go get resolves the whole module graph with the replacements and writes go.sum.
go get "${pkgs[@]/%/@$KUBE_VERSION}" >/dev/null

minor="${KUBE_VERSION#v1.}"
minor="${minor%%.*}"
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
for c in "${todo[@]}"; do
  start=$SECONDS
  echo "build-kube: building $c $KUBE_VERSION (slow the first time)"
  go build -trimpath -ldflags "$ldflags" -o "$bin/$c.tmp" "k8s.io/kubernetes/cmd/$c"
  mv -f "$bin/$c.tmp" "$bin/$c"
  echo "$KUBE_VERSION" >"$bin/$c.version"
  echo "build-kube: built $bin/$c $KUBE_VERSION in $((SECONDS - start)) s"
done
