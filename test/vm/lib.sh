# shellcheck shell=bash
# Helpers for VM-tier scenarios (sourced by test/vm/scenarios/*.sh; they run inside the VM,
# chrooted into the host's file system, as root, with a fresh kernel per boot).
#
# Mind `set -o pipefail`: never end a pipeline with a reader that stops early (grep -q, head)
# when a writer precedes it: the writer's SIGPIPE fails the pipeline. Capture, then grep.
#
# Conventions: everything a scenario creates is named tt-vm-*; `defer` registers cleanup that
# runs (in reverse order) when the scenario exits, pass or fail. A failed check exits non-zero
# with a message saying what was expected and what the kernel showed.
#
# Plugin under test (TT_VM_PLUGIN):
#   tartan    $TT_REPO/dist/tartan (the default; SKIP = exit 77 when it is missing, which
#             run.sh reports as a failure, never as a pass)
#   reference the containernetworking reference plugins in /usr/lib/cni plus hand-made host
#             parents: proves the VM/fabric set-up itself, not Tartan.
set -euo pipefail

TT_REPO=${TT_REPO:-/work/main}
TARTAN=${TARTAN:-$TT_REPO/dist/tartan}
CNI_BIN=/usr/lib/cni
PLUGIN=${TT_VM_PLUGIN:-tartan}
SCENARIO=$(basename "${BASH_SOURCE[1]:-$0}" .sh)

_t0=$(date +%s%N)
log() { printf '[%6.2fs] %s\n' "$(( ($(date +%s%N) - _t0) / 10000000 ))e-2" "$*"; }
fail() {
  log "FAIL: $*"
  exit 1
}
skip() {
  log "SKIP: $*"
  exit 77
}

# --- cleanup stack ------------------------------------------------------------------------------
_deferred=()
defer() { _deferred+=("$*"); }
_run_deferred() {
  local rc=$? i
  set +e
  if ((rc != 0 && rc != 77)); then tartan_logs; fi
  for ((i = ${#_deferred[@]} - 1; i >= 0; i--)); do
    eval "${_deferred[i]}" >/dev/null 2>&1
  done
  exit "$rc"
}
trap _run_deferred EXIT

WORK=$(mktemp -d "/tmp/tt-vm-$SCENARIO-XXXX")
defer "rm -rf '$WORK'"
mkdir -p "$WORK/networks"

require_plugin() {
  case $PLUGIN in
    tartan)
      [[ -x $TARTAN ]] || skip "$TARTAN does not exist (build it: node scripts/build.mjs); TT_VM_PLUGIN=reference runs the reference plugins instead"
      log "plugin under test: $TARTAN"
      ;;
    reference) log "plugin under test: reference plugins in $CNI_BIN (infrastructure check, not Tartan)" ;;
    *) fail "TT_VM_PLUGIN must be tartan or reference, not '$PLUGIN'" ;;
  esac
}

# --- namespaces and links -----------------------------------------------------------------------
netns_add() { # name...
  local n
  for n in "$@"; do
    ip netns add "$n"
    defer "ip netns del '$n'"
    ip -n "$n" link set lo up
  done
}

# veth_to_fabric <node-ns> <node-ifname> <fabric-ns> <fabric-ifname>
veth_to_fabric() {
  ip link add "tt-vm-tmp$$" type veth peer name "tt-vm-tmq$$"
  ip link set "tt-vm-tmp$$" netns "$1" name "$2"
  ip link set "tt-vm-tmq$$" netns "$3" name "$4"
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
}

link_exists() { ip -n "$1" link show dev "$2" >/dev/null 2>&1; }
expect_link() { # ns ifname [what]
  link_exists "$1" "$2" || fail "expected link $2 in $1${3:+ ($3)}; have: $(ip -n "$1" -br link | awk '{print $1}' | tr '\n' ' ')"
  log "ok: $1 has $2${3:+ ($3)}"
}
expect_no_link() { # ns ifname [what]
  ! link_exists "$1" "$2" || fail "expected no link $2 in $1${3:+ ($3)}; it is still there: $(ip -n "$1" -d link show dev "$2")"
  log "ok: $1 has no $2${3:+ ($3)}"
}
# expect_detail <ns> <ifname> <regex> [what]: `ip -d link show` of that link matches regex
expect_detail() {
  local d
  d=$(ip -n "$1" -d link show dev "$2" 2>&1) || fail "no link $2 in $1"
  grep -Eq -- "$3" <<<"$d" || fail "link $2 in $1 should match /$3/${4:+ ($4)}; ip -d link says:
$d"
  log "ok: $1 $2 matches /$3/${4:+ ($4)}"
}
expect_addr() { # ns ifname cidr
  local a
  a=$(ip -n "$1" -o addr show dev "$2" 2>&1) || true
  grep -q " $3 " <<<"$a" || fail "expected address $3 on $2 in $1; ip addr says: $a"
  log "ok: $1 $2 has $3"
}

# show <ns> [ifname...]: kernel state, for the log
show() {
  local ns=$1
  shift
  echo "      --- $ns: ip -d link / ip addr${*:+ ($*)}"
  if (($#)); then
    local i
    for i in "$@"; do
      ip -n "$ns" -d link show dev "$i" 2>&1 | sed 's/^/      /'
      ip -n "$ns" -br addr show dev "$i" 2>&1 | sed 's/^/      /'
    done
  else
    ip -n "$ns" -d link show | sed 's/^/      /'
    ip -n "$ns" -br addr | sed 's/^/      /'
  fi
}

# ping_ok <from-ns> <dst> [what]
ping_ok() {
  local out
  if out=$(ip netns exec "$1" ping -c 3 -i 0.2 -W 2 "$2" 2>&1); then
    log "ok: ping $1 -> $2${3:+ ($3)}: $(grep -Eo '[0-9]+ received' <<<"$out"), $(grep -Eo 'rtt [^ ]+ = [^ ]+' <<<"$out" | cut -d' ' -f4)"
  else
    echo "$out" | sed 's/^/      /'
    show "$1"
    fail "ping $1 -> $2${3:+ ($3)} failed"
  fi
}
ping_fails() { # <from-ns> <dst> [what]
  if ip netns exec "$1" ping -c 2 -i 0.2 -W 1 "$2" >/dev/null 2>&1; then
    fail "ping $1 -> $2 should fail${3:+ ($3)}"
  fi
  log "ok: ping $1 -> $2 fails${3:+ ($3)}"
}

# --- CNI ----------------------------------------------------------------------------------------
# cni <node-ns> <ADD|DEL|CHECK> <container-id> <pod-ns> <ifname> <conf-file> [plugin-binary]
# Runs the plugin inside the node's netns (node "-": the VM's own), as a runtime would on that
# node. On failure prints stdout+stderr and fails the scenario. CNI_ARGS from the environment
# is passed through.
cni() {
  local node=$1 cmd=$2 cid=$3 pod=$4 ifname=$5 conf=$6 bin=${7:-$TARTAN}
  local out rc t0 ms in=(ip netns exec "$node")
  [[ $node == - ]] && in=()
  t0=$(date +%s%N)
  set +e
  out=$("${in[@]}" env -i PATH="$PATH" CNI_COMMAND="$cmd" CNI_CONTAINERID="$cid" \
    CNI_NETNS="/run/netns/$pod" CNI_IFNAME="$ifname" CNI_PATH="$CNI_BIN" \
    ${CNI_ARGS:+CNI_ARGS="$CNI_ARGS"} "$bin" <"$conf" 2>"$WORK/cni.stderr")
  rc=$?
  set -e
  ms=$((($(date +%s%N) - t0) / 1000000))
  if ((rc != 0)); then
    echo "      --- $(basename "$bin") $cmd on $node for $pod ($cid) exited $rc after ${ms} ms"
    echo "      config: $(tr -d '\n' <"$conf")"
    echo "      stdout: $out"
    sed 's/^/      stderr: /' "$WORK/cni.stderr"
    fail "CNI $cmd $cid ($(basename "$bin")) failed"
  fi
  log "cni: $(basename "$bin") $cmd $cid on $node ($pod/$ifname): ok in ${ms} ms"
  [[ -n $out ]] && echo "      result: $(tr -d '\n ' <<<"$out" | cut -c1-600)"
  return 0
}

# --- Tartan config ------------------------------------------------------------------------------
# network_file <name> <yaml-spec-body> : writes $WORK/networks/<name>.yaml (a ClusterNetwork)
network_file() {
  {
    echo "apiVersion: tartan.io/v1alpha1"
    echo "kind: ClusterNetwork"
    echo "metadata: { name: $1 }"
    echo "spec:"
    sed 's/^/  /' <<<"$2"
  } >"$WORK/networks/$1.yaml"
}

# tartan_conf <node-name> <interfaces-json-array> > file : one conflist plugin entry.
# One shared IPAM file store (all "nodes" see the same file system), per-node state.
tartan_conf() {
  cat <<EOF
{
  "cniVersion": "1.1.0",
  "name": "tartan",
  "type": "tartan",
  "networksDir": "$WORK/networks",
  "store": { "type": "file", "path": "$WORK/ipam.db" },
  "stateDir": "$WORK/state-$1",
  "nodeName": "$1",
  "logFile": "$WORK/tartan-$1.log",
  "logLevel": "debug",
  "interfaces": $2
}
EOF
}

# dump Tartan's log files (for failures)
tartan_logs() {
  local f
  for f in "$WORK"/tartan-*.log; do
    [[ -f $f ]] || continue
    echo "      --- $f (last 30 lines)"
    tail -n 30 "$f" | sed 's/^/      /'
  done
}

# --- reference-plugin helpers -------------------------------------------------------------------
# ref_conf <type> <name> <json-fields> <subnet> <ip/prefix> : a reference plugin + static IPAM
ref_conf() {
  cat <<EOF
{ "cniVersion": "1.0.0", "name": "$2", "type": "$1", $3,
  "ipam": { "type": "static", "addresses": [ { "address": "$5" } ] } }
EOF
}
