#!/usr/bin/env bash
# Builds the Go tools that the "real clients" test tier drives, into .cache/bin/:
#   cnitool  our own small runtime over Debian's libcni 1.1.2 (test/harness/clients/cnitool)
#   crictl   the CRI client, from the Go module sigs.k8s.io/cri-tools
# Usage: scripts/build-go-tools.sh [cnitool] [crictl]   (default: both)
# Idempotent: a tool is rebuilt only when missing, out of date or at another version.
# crictl's first build downloads and compiles ~100 modules: 1-3 minutes on 2 cores.
# Needs: Go, golang-github-appc-cni-dev (.ci/install-deps.sh), the Go module proxy for crictl.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.cache/bin"
mkdir -p "$bin"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
# Go may be installed outside the default PATH (e.g. /usr/local/go).
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "build-go-tools: go is not installed (needs Go >= 1.24)" >&2; exit 1; }

want() { [[ $# -eq 0 ]] && return 0; local t; for t in "${tools[@]}"; do [[ $t == "$1" ]] && return 0; done; return 1; }
tools=("$@")
((${#tools[@]})) || tools=(cnitool crictl)

# --- cnitool (offline, GOPATH mode over /usr/share/gocode) -----------------------------
src="$root/test/harness/clients/cnitool"
libcni=/usr/share/gocode/src/github.com/containernetworking/cni/libcni
if want cnitool && [[ ! -d "$libcni" ]]; then
  echo "build-go-tools: $libcni missing (apt-get install golang-github-appc-cni-dev)" >&2
  exit 1
fi
if want cnitool && [[ ! -x "$bin/cnitool" || "$src/main.go" -nt "$bin/cnitool" ]]; then
  (cd "$src" && GO111MODULE=off GOPATH=/usr/share/gocode go build -o "$bin/cnitool.tmp" .)
  mv -f "$bin/cnitool.tmp" "$bin/cnitool"
  echo "build-go-tools: built $bin/cnitool"
fi

# --- crictl ------------------------------------------------------------------------------
# The proxy serves cri-tools v1.34.0 and v1.37.0 here (v1.26-v1.29 are not listed). v1.34
# speaks CRI v1 only, which containerd 1.6's CRI plugin serves.
CRICTL_VERSION="${CRICTL_VERSION:-v1.34.0}"
stamp="$bin/crictl.version"
if want crictl && [[ ! -x "$bin/crictl" || "$(cat "$stamp" 2>/dev/null)" != "$CRICTL_VERSION" ]]; then
  tmp="$(mktemp -d /tmp/tartan-crictl-build-XXXXXX)"
  trap 'rm -rf "$tmp"' EXIT
  GOBIN="$tmp" GO111MODULE=on go install \
    -ldflags "-X sigs.k8s.io/cri-tools/pkg/version.Version=${CRICTL_VERSION#v}" \
    "sigs.k8s.io/cri-tools/cmd/crictl@${CRICTL_VERSION}"
  mv -f "$tmp/crictl" "$bin/crictl"
  echo "$CRICTL_VERSION" >"$stamp"
  echo "build-go-tools: built $bin/crictl $CRICTL_VERSION"
fi
