#!/usr/bin/env bash
# Builds what the VM tier boots: a Debian 6.1 kernel (downloaded with apt, unpacked, never
# installed) and an initramfs holding busybox-static, the kernel modules the scenarios need
# and test/vm/init. Everything goes to .cache/vm/ (git-ignored); reruns are no-ops.
#
#   bash test/vm/build.sh            # build if anything changed, print the artefact paths
#   TT_VM_REFRESH=1 bash ...         # re-pick the newest linux-image-6.1.0-*-amd64 from apt
#   TT_VM_KERNEL=6.1.0-56-amd64 ...  # pin a kernel ABI
#
# Outputs: $CACHE/vmlinuz, $CACHE/initrd.gz, $CACHE/kernel.version (symlinks/files).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${TT_VM_CACHE:-$REPO/.cache/vm}
mkdir -p "$CACHE"

log() { echo "vm-build: $*" >&2; }
die() {
  echo "vm-build: ERROR: $*" >&2
  exit 1
}

for tool in dpkg-deb depmod modprobe cpio busybox apt-get apt-cache flock gzip; do
  command -v "$tool" >/dev/null || die "missing tool '$tool' (run .ci/install-deps.sh: kmod busybox-static cpio)"
done
BUSYBOX=$(command -v busybox)
[[ $(ldd "$BUSYBOX" 2>&1 || true) == *"not a dynamic"* ]] || die "$BUSYBOX is not static: install busybox-static"

# One build at a time (other engineers may run the tier concurrently).
exec 9>"$CACHE/.build.lock"
flock 9

# ---------------------------------------------------------------------------------------------
# 1. Kernel: pick, download, unpack.
# ---------------------------------------------------------------------------------------------
newest_kernel() {
  apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null |
    awk '{print $1}' | sed 's/^linux-image-//' | sort -V -r
}

KVER=${TT_VM_KERNEL:-}
if [[ -z $KVER && -z ${TT_VM_REFRESH:-} && -s $CACHE/kernel.version ]]; then
  KVER=$(<"$CACHE/kernel.version")
  [[ -f $CACHE/kernel-$KVER/boot/vmlinuz-$KVER ]] || KVER=
fi
if [[ -z $KVER ]]; then
  mapfile -t candidates < <(newest_kernel)
  if ((${#candidates[@]} == 0)); then
    log "no linux-image-6.1.0-*-amd64 in the apt lists; running apt-get update"
    apt-get update -qq >&2 || true
    mapfile -t candidates < <(newest_kernel)
  fi
  ((${#candidates[@]})) || die "apt knows no linux-image-6.1.0-*-amd64 package"
else
  candidates=("$KVER")
fi

KVER=
for cand in "${candidates[@]}"; do
  tree=$CACHE/kernel-$cand
  if [[ -f $tree/boot/vmlinuz-$cand && -f $tree/.unpacked ]]; then
    KVER=$cand
    break
  fi
  deb=$(ls "$CACHE"/linux-image-"$cand"_*.deb 2>/dev/null | head -1 || true)
  if [[ -z $deb ]]; then
    log "downloading linux-image-$cand"
    if ! (cd "$CACHE" && apt-get download "linux-image-$cand" >&2 2>"$CACHE/apt-download.err"); then
      log "apt-get download linux-image-$cand failed: $(tail -1 "$CACHE/apt-download.err"); trying an older one"
      continue
    fi
    deb=$(ls "$CACHE"/linux-image-"$cand"_*.deb | head -1)
  fi
  log "unpacking $(basename "$deb")"
  rm -rf "$tree" "$tree.tmp"
  mkdir -p "$tree.tmp"
  dpkg-deb -x "$deb" "$tree.tmp"
  depmod -b "$tree.tmp" "$cand"
  touch "$tree.tmp/.unpacked"
  mv "$tree.tmp" "$tree"
  KVER=$cand
  break
done
[[ -n $KVER ]] || die "could not fetch any of: ${candidates[*]}"
KROOT=$CACHE/kernel-$KVER
echo "$KVER" >"$CACHE/kernel.version"

# ---------------------------------------------------------------------------------------------
# 2. Modules: required ones fail the build when absent, optional ones only warn.
# ---------------------------------------------------------------------------------------------
REQUIRED_MODULES=(
  virtio_pci 9p 9pnet_virtio virtio_net
  veth bridge macvlan ipvlan 8021q bonding vxlan
)
OPTIONAL_MODULES=(
  virtio_rng dummy vrf sctp tun ipvtap macvtap
  nf_tables nf_conntrack nft_ct nft_chain_nat nft_nat nft_masq nft_redir nft_reject_inet
  nft_fib_inet nft_limit nft_log nft_hash nft_numgen nft_quota nft_compat nft_socket
  sch_ingress sch_htb sch_tbf cls_u32 cls_flower cls_bpf act_mirred act_gact act_police ifb
)
# Parameters: no default bond0 / dummy0 in the root namespace.
declare -A MODULE_PARAMS=([bonding]="max_bonds=0" [dummy]="numdummies=0")

# Stamp: rebuild the initramfs when the kernel, busybox, this script or init change.
stamp_input=$(
  echo "$KVER"
  sha256sum "$BUSYBOX" "$HERE/build.sh" "$HERE/init" | awk '{print $1}'
  echo "${REQUIRED_MODULES[*]} ${OPTIONAL_MODULES[*]}"
)
stamp=$(sha256sum <<<"$stamp_input" | cut -c1-16)
if [[ -f $CACHE/initrd-$stamp.gz && -z ${TT_VM_REBUILD:-} ]]; then
  ln -sfn "initrd-$stamp.gz" "$CACHE/initrd.gz"
  ln -sfn "kernel-$KVER/boot/vmlinuz-$KVER" "$CACHE/vmlinuz"
  log "cached: kernel $KVER, initramfs $stamp"
  exit 0
fi

log "building initramfs for $KVER"
STAGE=$CACHE/initramfs.tmp
rm -rf "$STAGE"
mkdir -p "$STAGE"/{bin,dev,proc,sys,host,results,etc/tt-vm,lib/modules/"$KVER"}
ln -s bin "$STAGE/sbin"
mkdir -p "$STAGE/usr"
ln -s ../bin "$STAGE/usr/bin"
ln -s ../bin "$STAGE/usr/sbin"
cp "$BUSYBOX" "$STAGE/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [[ $applet == busybox ]] || ln -sf busybox "$STAGE/bin/$applet"
done

# Ordered, de-duplicated insmod list. -C /dev/null: ignore the host's modprobe.d options.
declare -A seen=()
: >"$STAGE/etc/tt-vm/modules"
add_module() { # name required(0|1)
  local name=$1 required=$2 out path
  if ! out=$(modprobe -C /dev/null -d "$KROOT" -S "$KVER" --show-depends "$name" 2>&1); then
    ((required)) && die "module $name not found in $KVER: $out"
    log "warning: optional module $name not available ($out)"
    return 0
  fi
  while read -r kind path _; do
    [[ $kind == insmod ]] || continue # "builtin foo"
    local rel=${path#"$KROOT"/lib/modules/"$KVER"/}
    [[ -n ${seen[$rel]:-} ]] && continue
    seen[$rel]=1
    local base
    base=$(basename "$rel" .ko)
    base=${base//-/_}
    mkdir -p "$STAGE/lib/modules/$KVER/$(dirname "$rel")"
    cp "$path" "$STAGE/lib/modules/$KVER/$rel"
    echo "$rel ${MODULE_PARAMS[$base]:-}" >>"$STAGE/etc/tt-vm/modules"
  done <<<"$out"
}
for m in "${REQUIRED_MODULES[@]}"; do add_module "$m" 1; done
for m in "${OPTIONAL_MODULES[@]}"; do add_module "$m" 0; done
cp "$KROOT/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$STAGE/lib/modules/$KVER/"
depmod -b "$STAGE" "$KVER"
# busybox modprobe (the kernel's /sbin/modprobe for auto-loading) reads options from here.
{
  for k in "${!MODULE_PARAMS[@]}"; do echo "options $k ${MODULE_PARAMS[$k]}"; done
} >"$STAGE/etc/modprobe.conf"

install -m 0755 "$HERE/init" "$STAGE/init"
echo "$KVER" >"$STAGE/etc/tt-vm/kernel.version"

nmods=$(wc -l <"$STAGE/etc/tt-vm/modules")
(cd "$STAGE" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$CACHE/initrd-$stamp.gz.tmp"
mv "$CACHE/initrd-$stamp.gz.tmp" "$CACHE/initrd-$stamp.gz"
rm -rf "$STAGE"
# Drop stale initramfs images.
find "$CACHE" -maxdepth 1 -name 'initrd-*.gz' ! -name "initrd-$stamp.gz" -delete
ln -sfn "initrd-$stamp.gz" "$CACHE/initrd.gz"
ln -sfn "kernel-$KVER/boot/vmlinuz-$KVER" "$CACHE/vmlinuz"
log "built: kernel $KVER, initramfs $stamp ($(du -h "$CACHE/initrd-$stamp.gz" | cut -f1), $nmods modules)"
