#!/usr/bin/env bash
# The VM tier: boots a Debian kernel under QEMU (TCG, no KVM) with the host's root file system
# shared read-only over 9p and runs test/vm/scenarios/<name>.sh inside it (chrooted into the
# host file system, so /work/main, node and /usr/lib/cni are there). Results come back over a
# second, read-write 9p share. See docs/adr/0003-vm-tier.md.
#
#   bash test/vm/run.sh                      # every scenario
#   bash test/vm/run.sh ipvlan-l2 vlan-two-nics
#   TT_VM_TIMEOUT=600            whole-VM timeout in seconds (default max(600, 180 + 150/scenario))
#   TT_VM_SCENARIO_TIMEOUT=300   per-scenario timeout inside the VM (default 300)
#   TT_VM_PLUGIN=reference       run the scenarios with the reference CNI plugins (checks the
#                                VM and fabric set-up, not Tartan); default: tartan
#   TT_VM_TARTAN=/abs/path       test this tartan binary instead of dist/tartan (must be visible
#                                in the VM: not under /tmp, /run or /dev)
#   TT_VM_NO_BUILD=1             do not run scripts/build.mjs before booting
#   TT_VM_KEEP=1                 keep the run directory (.cache/vm/runs/...) and print its path
#
# Exit status: 0 only if the VM booted and every scenario passed. A skipped scenario (exit 77)
# is printed as SKIP and makes the run fail: a skip is never a pass.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${TT_VM_CACHE:-$REPO/.cache/vm}
SCENARIO_TIMEOUT=${TT_VM_SCENARIO_TIMEOUT:-300}

loud_fail() {
  echo "" >&2
  echo "VM tier FAILED: $*" >&2
  exit 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- which scenarios ----------------------------------------------------------------------------
all=()
for f in "$HERE"/scenarios/*.sh; do
  [[ -e $f ]] && all+=("$(basename "$f" .sh)")
done
if (($#)); then
  scenarios=()
  for s in "$@"; do
    s=$(basename "$s" .sh)
    [[ -f $HERE/scenarios/$s.sh ]] || loud_fail "unknown scenario '$s' (have: ${all[*]})"
    scenarios+=("$s")
  done
else
  scenarios=("${all[@]}")
fi
((${#scenarios[@]})) || loud_fail "no scenarios in $HERE/scenarios"
# Whole-VM timeout: 600 s, more when many scenarios run (TCG on a loaded 2-core host is slow).
default_timeout=$((180 + 150 * ${#scenarios[@]}))
((default_timeout >= 600)) || default_timeout=600
BOOT_TIMEOUT=${TT_VM_TIMEOUT:-$default_timeout}

command -v qemu-system-x86_64 >/dev/null || loud_fail "qemu-system-x86_64 missing (run .ci/install-deps.sh)"

# --- build (cached) -----------------------------------------------------------------------------
t_build=$(now)
bash "$HERE/build.sh" || loud_fail "could not build the kernel/initramfs (test/vm/build.sh)"
if [[ ${TT_VM_PLUGIN:-tartan} == tartan && -z ${TT_VM_TARTAN:-} && -z ${TT_VM_NO_BUILD:-} && -f $REPO/scripts/build.mjs ]]; then
  # build.mjs rebuilds dist/tartan only when src/ is newer: cheap when fresh
  (cd "$REPO" && node scripts/build.mjs) || loud_fail "could not build dist/tartan (node scripts/build.mjs)"
fi
echo "vm: build step $(since "$t_build") s (kernel $(cat "$CACHE/kernel.version"))"

# --- run directory = the read-write share -------------------------------------------------------
mkdir -p "$CACHE/runs"
RUN=$(mktemp -d "$CACHE/runs/$(date +%Y%m%d-%H%M%S)-XXXX")
chmod 0777 "$RUN"
{
  printf 'TT_REPO=%q\n' "$REPO"
  printf 'TT_SCENARIOS=%q\n' "${scenarios[*]}"
  printf 'TT_VM_SCENARIO_TIMEOUT=%q\n' "$SCENARIO_TIMEOUT"
  printf 'TT_VM_PLUGIN=%q\n' "${TT_VM_PLUGIN:-tartan}"
  if [[ -n ${TT_VM_TARTAN:-} ]]; then printf "TARTAN=%q\n" "$TT_VM_TARTAN"; fi
} >"$RUN/job.env"

QEMU_PID=
cleanup() {
  if [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
    kill "$QEMU_PID" 2>/dev/null || true
    sleep 0.5
    kill -9 "$QEMU_PID" 2>/dev/null || true
  fi
  if [[ -z ${TT_VM_KEEP:-} ]]; then
    # keep the 5 newest run directories for post-mortems, drop older ones
    ls -1dt "$CACHE"/runs/*/ 2>/dev/null | tail -n +6 | xargs -r rm -rf
  else
    echo "vm: run directory kept: $RUN"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- boot ---------------------------------------------------------------------------------------
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
t_boot=$(now)
qemu-system-x86_64 \
  -accel tcg,thread=multi -cpu max -m 1536 -smp 2 \
  -nodefaults -no-user-config -display none -nic none -no-reboot \
  -kernel "$CACHE/vmlinuz" -initrd "$CACHE/initrd.gz" \
  -append "console=ttyS0 panic=-1 quiet loglevel=4 mitigations=off clocksource=tsc tsc=reliable" \
  -serial "file:$RUN/console.log" \
  -device virtio-rng-pci \
  -netdev hubport,id=tt-vm-nic,hubid=0 -device virtio-net-pci,netdev=tt-vm-nic,mac=52:54:00:7e:00:01 \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$RUN,mount_tag=results,security_model=none" \
  </dev/null >"$RUN/qemu.out" 2>&1 &
QEMU_PID=$!
echo "vm: QEMU pid $QEMU_PID, run dir $RUN, scenarios: ${scenarios[*]}"

declare -A reported=()
booted=
timed_out=
results=()
failed=0

report() { # scenario
  local s=$1 rc dur verdict
  rc=$(<"$RUN/$s.rc")
  dur=$(cat "$RUN/$s.time" 2>/dev/null || echo '?')
  echo "---------------- $s (output) ----------------"
  sed 's/^/  | /' "$RUN/$s.log" 2>/dev/null || true
  if [[ -f $RUN/$s.leaks ]]; then
    echo "  | vm: LEAKED (removed by the runner): $(<"$RUN/$s.leaks")"
  fi
  case $rc in
    0) verdict=PASS ;;
    77) verdict=SKIP ;;
    124) verdict="FAIL (timeout ${SCENARIO_TIMEOUT}s)" ;;
    *) verdict="FAIL (exit $rc)" ;;
  esac
  [[ $verdict == PASS && -f $RUN/$s.leaks ]] && verdict="FAIL (leaked state)"
  [[ $verdict == PASS ]] || failed=1
  echo "$verdict: $s (${dur} s)"
  results+=("$(printf '%-24s %-22s %6s s' "$s" "$verdict" "$dur")")
  reported[$s]=1
}

while :; do
  if [[ -z $booted && -f $RUN/booted ]]; then
    booted=$(since "$t_boot")
    read -r guest_up rest <"$RUN/booted" || true
    echo "vm: booted in ${booted} s (guest uptime ${guest_up} s at 9p mount)${rest:+; $rest}"
  fi
  for s in "${scenarios[@]}"; do
    [[ -z ${reported[$s]:-} && -f $RUN/$s.rc ]] && report "$s"
  done
  kill -0 "$QEMU_PID" 2>/dev/null || break
  if [[ $(since "$t_boot" | cut -d. -f1) -ge $BOOT_TIMEOUT ]]; then
    timed_out=1
    kill "$QEMU_PID" 2>/dev/null || true
    break
  fi
  sleep 0.2
done
wait "$QEMU_PID" 2>/dev/null || true
qemu_rc_note=$(tail -c 2000 "$RUN/qemu.out" 2>/dev/null | grep -v 'multidevs' || true)
QEMU_PID=
vm_total=$(since "$t_boot")
# a last look: the final .rc may have landed just before QEMU exited
for s in "${scenarios[@]}"; do
  [[ -z ${reported[$s]:-} && -f $RUN/$s.rc ]] && report "$s"
done

dump_console() {
  echo "---- console.log (last 40 lines) ----" >&2
  tail -n 40 "$RUN/console.log" >&2 2>/dev/null || true
  [[ -n $qemu_rc_note ]] && {
    echo "---- qemu output ----" >&2
    echo "$qemu_rc_note" >&2
  }
  [[ -f $RUN/init-error ]] && echo "---- init error: $(<"$RUN/init-error")" >&2
  TT_VM_KEEP=1
}

problem=
if [[ -z $booted ]]; then
  dump_console
  problem="the VM did not boot (no results share mounted after ${vm_total} s${timed_out:+, timeout}); see above"
fi
for s in "${scenarios[@]}"; do
  if [[ -z ${reported[$s]:-} ]]; then
    failed=1
    if [[ -f $RUN/$s.start ]]; then
      echo "---------------- $s (output so far) ----------------"
      sed 's/^/  | /' "$RUN/$s.log" 2>/dev/null || true
    fi
    if [[ -n $timed_out ]]; then why="VM timeout after ${BOOT_TIMEOUT} s"; else why="the VM stopped first"; fi
    echo "FAIL: $s (did not finish: $why)"
    results+=("$(printf '%-24s %-22s %6s' "$s" "FAIL (did not finish)" "-")")
  fi
done
if [[ -n $booted && ! -f $RUN/exit ]]; then
  dump_console
  problem=${problem:-"the VM stopped before the guest runner finished${timed_out:+ (timeout ${BOOT_TIMEOUT}s)}"}
fi

echo ""
echo "==================== VM tier summary ===================="
echo "kernel $(cat "$CACHE/kernel.version"), QEMU TCG, boot ${booted:-n/a} s, VM total ${vm_total} s"
echo "host load average at start: $load_start, at end: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores; TCG timings scale with it)"
printf '%s\n' "${results[@]}"
[[ -n $problem ]] && loud_fail "$problem"
((failed == 0)) || loud_fail "$(printf '%s\n' "${results[@]}" | grep -cv ' PASS ') of ${#scenarios[@]} scenario(s) did not pass"
echo "VM tier PASSED (${#scenarios[@]} scenarios)"
