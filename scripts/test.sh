#!/usr/bin/env bash
# The whole test suite, every tier. Needs root (network namespaces) and the packages from
# .ci/install-deps.sh; a tier whose prerequisite is missing FAILS, it is never skipped.
set -uo pipefail
cd "$(dirname "$0")/.."

tiers=("${@:-lint unit kernel agent services k8s e2e clients vm}")
read -r -a tiers <<<"${tiers[*]}"
failed=()

need_root() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "FAIL: the $1 tier needs root (network namespaces); run as root" >&2
    return 1
  fi
}

run_tier() {
  local t=$1
  echo "=== tier: $t ==="
  case $t in
    lint) npm run --silent typecheck && npx eslint . && npx prettier --check . ;;
    unit) npx vitest run --project unit ;;
    kernel) need_root kernel && node scripts/build.mjs && npx vitest run --project kernel ;;
    services) node scripts/build.mjs && npx vitest run --project services ;;
    clients) need_root clients && node scripts/build.mjs && bash scripts/build-go-tools.sh && npx vitest run --project clients ;;
    agent) need_root agent && node scripts/build.mjs && npx vitest run --project agent ;;
    k8s) bash scripts/build-kube.sh && npx vitest run --project k8s ;;
    e2e) need_root e2e && node scripts/build.mjs && bash scripts/build-image.sh && bash scripts/build-go-tools.sh crictl && bash scripts/build-kube.sh kube-apiserver kubelet && npx vitest run --project e2e && npm run --silent test:e2e:resilience ;;
    vm) need_root vm && node scripts/build.mjs && bash test/vm/run.sh ;;
    *) echo "unknown tier $t" >&2; return 2 ;;
  esac
}

for t in "${tiers[@]}"; do
  if ! run_tier "$t"; then failed+=("$t"); fi
done

if ((${#failed[@]})); then
  echo "FAILED tiers: ${failed[*]}" >&2
  exit 1
fi
echo "all tiers passed: ${tiers[*]}"
