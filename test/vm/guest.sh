#!/usr/bin/env bash
# Runs inside the VM, chrooted into the host's (read-only) root file system, started by
# test/vm/init. Runs each scenario named in $TT_VM_RESULTS/job.env and leaves, per scenario,
# <name>.log (output), <name>.time (seconds) and, last, <name>.rc (exit code) on the results
# share. 77 from a scenario means SKIP (reported as such, never as a pass).
set -u
R=${TT_VM_RESULTS:?}
# shellcheck source=/dev/null
. "$R/job.env"
export TT_REPO TT_VM_RESULTS TT_VM_PLUGIN
if [[ -n ${TARTAN:-} ]]; then export TARTAN; fi
ip link set lo up

now() { date +%s.%N; }
for s in ${TT_SCENARIOS:?}; do
  f=$TT_REPO/test/vm/scenarios/$s.sh
  now >"$R/$s.start"
  t0=$(now)
  if [[ -f $f ]]; then
    timeout -k 10 "${TT_VM_SCENARIO_TIMEOUT:-300}" bash "$f" >"$R/$s.log" 2>&1 </dev/null
    rc=$?
    ((rc == 124)) && echo "guest: scenario timed out after ${TT_VM_SCENARIO_TIMEOUT:-300} s" >>"$R/$s.log"
  else
    echo "guest: no such scenario file: $f" >"$R/$s.log"
    rc=127
  fi
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", b - a }' >"$R/$s.time"
  # The host polls for <name>.rc while the VM runs: write it whole, then rename it in.
  echo "$rc" >"$R/$s.rc.tmp" && mv "$R/$s.rc.tmp" "$R/$s.rc"
  # Leftovers are a scenario bug: record them (the next scenario still starts clean-ish).
  left=$(ip netns list 2>/dev/null | awk '{print $1}' | grep '^tt-vm-' || true)
  links=$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep '^tt-vm-' || true)
  if [[ -n $left$links ]]; then
    echo "netns: $(tr '\n' ' ' <<<"$left") links: $(tr '\n' ' ' <<<"$links")" >"$R/$s.leaks"
    for n in $left; do ip netns del "$n" 2>/dev/null; done
    for l in $links; do ip link del "$l" 2>/dev/null; done
  fi
done
exit 0
