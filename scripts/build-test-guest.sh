#!/usr/bin/env bash
# scripts/build-test-guest.sh [OUT_DIR]
#
# Builds the tiny Linux guest that virtkit's KVM/QEMU plugin tests boot, from Debian packages
# only (no compiler, no network beyond apt). OUT_DIR defaults to <repo>/.cache/test-guest.
#
#   OUT_DIR/vmlinuz             kernel of Debian's linux-image-cloud-amd64 (extracted, never installed)
#   OUT_DIR/initramfs.cpio.gz   busybox-static initramfs (cpio newc, gzip); its /init is described below
#   OUT_DIR/disk.qcow2          empty 64 MiB qcow2 scratch disk
#   OUT_DIR/manifest.json       what was built; paths in it are relative to OUT_DIR
#   OUT_DIR/debs/               the downloaded kernel .deb, kept so rebuilds do not download again
#
# Guest protocol on the serial console (ttyS0; cmdline "console=ttyS0 quiet panic=-1"):
#   VIRTKIT-GUEST-DISK <name> <bytes>   one line per virtio disk (/dev/vdX), printed before READY
#   VIRTKIT-GUEST-READY                 modules loaded, acpid listening: the power button now works
#   VIRTKIT-GUEST-POWEROFF              ACPI power button pressed (QMP system_powerdown); the guest then
#                                       runs `poweroff -f`, so QEMU reports SHUTDOWN and exits
#   VIRTKIT-GUEST-PANIC                 with virtkit.panic_after=N on the cmdline: N s after READY the
#                                       guest panics (sysrq c); pvpanic tells QEMU (GUEST_PANICKED)
# A power-button press before READY is lost (nothing listens yet). Reboot requests need no handling.
#
# Cached: when manifest.json records the same kernel package/version, busybox version and sha256 of
# this script, and all outputs exist, it prints "test guest: cached" and does nothing.
# Missing apt packages are installed (needs root or sudo); everything else runs unprivileged.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${1:-$REPO_ROOT/.cache/test-guest}"
KERNEL_META=linux-image-cloud-amd64
# Modules the guest needs, in no particular order; their dependencies come from modules.dep.
# pvpanic_mmio: a guest panic reaches QEMU (GUEST_PANICKED) through the pvpanic ISA device.
GUEST_MODULES="button evdev virtio_pci virtio_blk pvpanic_mmio"
CMDLINE="console=ttyS0 quiet panic=-1"
DISK_SIZE=64M
# Debian packages this script and the QEMU tests use (ip for bridges, pgrep, setpriv).
HOST_PACKAGES="qemu-system-x86 qemu-utils busybox-static cpio gzip iproute2 procps util-linux"

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C

START_MS=$(date +%s%3N)
LOG_PREFIX="test guest"
say() { echo "$LOG_PREFIX: $*" >&2; }
die() { echo "$LOG_PREFIX: error: $*" >&2; exit 1; }
elapsed() { local ms=$(( $(date +%s%3N) - START_MS )); printf '%d.%01ds' $((ms / 1000)) $((ms % 1000 / 100)); }

# shellcheck source=lib/apt.sh
. "$REPO_ROOT/scripts/lib/apt.sh"

# ------------------------------------------------------------------------------------------------
# 1. host packages, output dir, lock
# ------------------------------------------------------------------------------------------------
# shellcheck disable=SC2086
ensure_packages $HOST_PACKAGES
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "busybox-static installed but $BUSYBOX is missing"
BUSYBOX_VERSION=$(dpkg-query -W -f='${Version}' busybox-static)

mkdir -p "$OUT_DIR/debs"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
exec 9>"$OUT_DIR/.lock"
flock 9   # one build per OUT_DIR at a time; a second caller waits, then sees the cache
rm -rf "$OUT_DIR"/.build.*   # leftovers of an interrupted build (safe: we hold the lock)

# ------------------------------------------------------------------------------------------------
# 2. which kernel: the linux-image-<abi>-cloud-amd64 package the metapackage currently depends on
# ------------------------------------------------------------------------------------------------
KERNEL_PKG=
KERNEL_PKG_VERSION=
resolve_kernel() {
  # Candidate metapackage, e.g. "Depends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)".
  # (One apt-cache call: without a pkgcache.bin, as in Debian containers, each costs ~0.5-1 s.)
  local dep
  KERNEL_PKG='' KERNEL_PKG_VERSION=''
  dep=$(apt-cache show --no-all-versions "$KERNEL_META" 2>/dev/null | sed -n 's/^Depends: //p' |
    tr ',|' '\n' | sed 's/^ *//' | grep '^linux-image-[0-9]' | head -n1) || true
  [ -n "$dep" ] || return 1
  KERNEL_PKG=${dep%% *}
  if [[ $dep =~ \(=\ *([^\ \)]+)\) ]]; then
    KERNEL_PKG_VERSION=${BASH_REMATCH[1]}
  else   # not pinned to an exact version: take the candidate
    KERNEL_PKG_VERSION=$(apt-cache policy "$KERNEL_PKG" 2>/dev/null | awk '$1 == "Candidate:" { print $2; exit }')
  fi
  [ -n "$KERNEL_PKG_VERSION" ] && [ "$KERNEL_PKG_VERSION" != "(none)" ]
}
if ! resolve_kernel; then
  apt_update_once
  resolve_kernel || die "cannot resolve the kernel package behind $KERNEL_META (apt sources without bookworm main?)"
fi

SCRIPT_SHA256=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)

# ------------------------------------------------------------------------------------------------
# 3. cache check
# ------------------------------------------------------------------------------------------------
# manifest.json is written by this script with one "key": value per line, so sed can read it back.
manifest_get() {
  sed -n "s/^  \"$1\": \"\\(.*\\)\",\\{0,1\\}\$/\\1/p" "$OUT_DIR/manifest.json" 2>/dev/null | head -n1
}
if [ -f "$OUT_DIR/manifest.json" ] &&
   [ "$(manifest_get kernelPackage)" = "$KERNEL_PKG" ] &&
   [ "$(manifest_get kernelPackageVersion)" = "$KERNEL_PKG_VERSION" ] &&
   [ "$(manifest_get busyboxVersion)" = "$BUSYBOX_VERSION" ] &&
   [ "$(manifest_get scriptSha256)" = "$SCRIPT_SHA256" ] &&
   [ -s "$OUT_DIR/vmlinuz" ] && [ -s "$OUT_DIR/initramfs.cpio.gz" ] && [ -s "$OUT_DIR/disk.qcow2" ]; then
  echo "test guest: cached"
  exit 0
fi
say "building in $OUT_DIR ($KERNEL_PKG $KERNEL_PKG_VERSION)"

WORK=$(mktemp -d "$OUT_DIR/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# ------------------------------------------------------------------------------------------------
# 4. kernel .deb (kept in OUT_DIR/debs) and extraction
# ------------------------------------------------------------------------------------------------
# The cached .deb for $KERNEL_PKG at $KERNEL_PKG_VERSION, if there is a sound one: right package and
# version, and (when apt knows it) the SHA256 from the package lists, so a truncated file is refused.
deb_sha256() {
  apt-cache show --no-all-versions "$KERNEL_PKG=$KERNEL_PKG_VERSION" 2>/dev/null | sed -n 's/^SHA256: //p' | head -n1
}
find_cached_deb() {
  local f want
  want=$(deb_sha256) || true
  for f in "$OUT_DIR/debs/${KERNEL_PKG}_"*.deb; do
    [ -f "$f" ] || continue
    [ "$(dpkg-deb -f "$f" Package 2>/dev/null)" = "$KERNEL_PKG" ] || continue
    [ "$(dpkg-deb -f "$f" Version 2>/dev/null)" = "$KERNEL_PKG_VERSION" ] || continue
    [ -z "$want" ] || [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$want" ] || continue
    echo "$f"; return 0
  done
  return 1
}
download_deb() {
  ( cd "$WORK" && apt-get "${APT_OPTS[@]}" download "$KERNEL_PKG=$KERNEL_PKG_VERSION" )
}
DEB=$(find_cached_deb || true)
if [ -z "$DEB" ]; then
  say "apt-get download $KERNEL_PKG=$KERNEL_PKG_VERSION"
  if ! quietly download_deb; then
    # stale package lists (the mirror moved on): refresh once, resolve again, retry
    [ "$APT_UPDATED" = 0 ] || die "download of $KERNEL_PKG failed"
    apt_update_once
    resolve_kernel || die "cannot resolve the kernel package behind $KERNEL_META"
    quietly download_deb
  fi
  NEW_DEB=$(ls "$WORK"/"${KERNEL_PKG}"_*.deb)
  rm -f "$OUT_DIR"/debs/linux-image-*.deb        # drop debs of older kernels
  mv "$NEW_DEB" "$OUT_DIR/debs/"
  DEB=$(find_cached_deb) || die "downloaded .deb does not match $KERNEL_PKG $KERNEL_PKG_VERSION"
fi

KTREE="$WORK/kernel"
dpkg-deb -x "$DEB" "$KTREE"
KERNEL_VERSION=$(ls "$KTREE/lib/modules")
[ "$(echo "$KERNEL_VERSION" | wc -l)" = 1 ] || die "expected one module tree in $DEB, found: $KERNEL_VERSION"
[ -f "$KTREE/boot/vmlinuz-$KERNEL_VERSION" ] || die "no boot/vmlinuz-$KERNEL_VERSION in $DEB"
MODDIR="$KTREE/lib/modules/$KERNEL_VERSION"

# Newer Debian kernels may ship compressed modules. busybox insmod/depmod are not guaranteed to
# read every format, so decompress them all once here; the initramfs then carries plain .ko files.
decompress_modules() {   # suffix package command...
  local suffix=$1 pkg=$2; shift 2
  [ -n "$(find "$MODDIR" -name "*.ko.$suffix" -print -quit)" ] || return 0
  ensure_packages "$pkg"
  find "$MODDIR" -name "*.ko.$suffix" -print0 | xargs -0r -n 64 -P "$(nproc)" "$@"
}
decompress_modules xz xz-utils xz -d
decompress_modules zst zstd zstd -q -d --rm
decompress_modules gz gzip gzip -d

# Debian's package does not ship modules.dep (postinst runs depmod); generate it for this tree.
if [ ! -s "$MODDIR/modules.dep" ]; then
  "$BUSYBOX" depmod -b "$KTREE" "$KERNEL_VERSION"
fi
[ -s "$MODDIR/modules.dep" ] || die "depmod produced no modules.dep for $KERNEL_VERSION"

# ------------------------------------------------------------------------------------------------
# 5. module load order: dependency-first walk over modules.dep, skipping built-in modules
# ------------------------------------------------------------------------------------------------
modname() { local b=${1##*/}; b=${b%%.ko*}; echo "${b//-/_}"; }
declare -A MOD_PATH=() MOD_DEPS=() IS_BUILTIN=() VISITED=()
while IFS= read -r line; do
  path=${line%%:*}; path=${path%.xz}; path=${path%.zst}; path=${path%.gz}
  n=$(modname "$path")
  MOD_PATH[$n]=$path
  MOD_DEPS[$n]=${line#*:}
done < "$MODDIR/modules.dep"
if [ -f "$MODDIR/modules.builtin" ]; then
  while IFS= read -r path; do IS_BUILTIN[$(modname "$path")]=1; done < "$MODDIR/modules.builtin"
fi
LOAD_ORDER=()
visit() {
  local n=$1 d
  [ -z "${VISITED[$n]:-}" ] || return 0
  VISITED[$n]=1
  [ -z "${IS_BUILTIN[$n]:-}" ] || return 0      # built into this kernel: nothing to load
  [ -n "${MOD_PATH[$n]:-}" ] || die "module $n is neither in modules.dep nor modules.builtin of $KERNEL_VERSION"
  for d in ${MOD_DEPS[$n]}; do visit "$(modname "$d")"; done
  LOAD_ORDER+=("${MOD_PATH[$n]}")
}
for m in $GUEST_MODULES; do visit "${m//-/_}"; done

# ------------------------------------------------------------------------------------------------
# 6. initramfs tree
# ------------------------------------------------------------------------------------------------
ROOT="$WORK/root"
mkdir -p "$ROOT"/{bin,dev,etc/acpi,etc/virtkit,proc,run,sys,tmp} "$ROOT/lib/modules/$KERNEL_VERSION"
cp "$BUSYBOX" "$ROOT/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$ROOT/bin/$applet"
done
# The kernel's built-in initramfs already provides /dev/console; add one too when we may mknod.
if [ "$(id -u)" = 0 ]; then mknod -m 600 "$ROOT/dev/console" c 5 1 2>/dev/null || true; fi

: > "$ROOT/etc/virtkit/modules"
for rel in ${LOAD_ORDER[@]+"${LOAD_ORDER[@]}"}; do
  mkdir -p "$ROOT/lib/modules/$KERNEL_VERSION/${rel%/*}"
  cp "$MODDIR/$rel" "$ROOT/lib/modules/$KERNEL_VERSION/$rel"
  echo "/lib/modules/$KERNEL_VERSION/$rel" >> "$ROOT/etc/virtkit/modules"
done

cat > "$ROOT/init" <<'INIT'
#!/bin/sh
# PID 1 of the virtkit test guest. Output goes to /dev/console (ttyS0).
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Start on a fresh line: the kernel's boot stub leaves terminal-reset escapes without a newline.
echo

# Modules, dependencies first (order computed at build time from modules.dep).
while read -r ko; do
  insmod "$ko" || echo "VIRTKIT-GUEST-WARN insmod failed: $ko"
done < /etc/virtkit/modules

# busybox acpid opens /dev/input/event0..N once at start-up, so it must start after evdev and
# button have created them. It maps the power-button key to the "PWRF" event; /etc/acpid.conf
# maps that to the action /etc/acpi/power-button.
# The acpid command returns as soon as it has forked into the background, before the daemon has
# opened the event devices; a press in that gap is lost. The daemon writes its pid file only after
# opening them, so READY waits for the pid file (up to 5 s).
acpid -c /etc/acpi -a /etc/acpid.conf -l /run/acpid.log -p /run/acpid.pid
tries=0
while [ ! -s /run/acpid.pid ]; do
  tries=$((tries + 1))
  if [ "$tries" -gt 500 ]; then
    echo "VIRTKIT-GUEST-WARN acpid is not running; the power button will not work"
    break
  fi
  usleep 10000
done

for blk in /sys/block/vd*; do
  [ -e "$blk/size" ] || continue
  echo "VIRTKIT-GUEST-DISK ${blk##*/} $(( $(cat "$blk/size") * 512 ))"
done
echo "VIRTKIT-GUEST-READY"

# Tests of crash handling ask for a kernel panic N seconds after READY (virtkit.panic_after=N
# on the kernel command line); pvpanic then reports it to QEMU (GUEST_PANICKED).
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    virtkit.panic_after=*)
      sleep "${arg#*=}"
      echo "VIRTKIT-GUEST-PANIC"
      echo c > /proc/sysrq-trigger
      ;;
  esac
done

# Idle forever (if PID 1 exited, the kernel would panic, and panic=-1 reboots at once).
while :; do sleep 3600; done
INIT

# key in the event description -> action path relative to acpid's config dir (-c)
printf '%s\n' "PWRF power-button" "PWRB power-button" > "$ROOT/etc/acpid.conf"
cat > "$ROOT/etc/acpi/power-button" <<'ACTION'
#!/bin/sh
# Spawned by acpid on an ACPI power-button press. acpid sends our stdout to its log, hence /dev/console.
echo "VIRTKIT-GUEST-POWEROFF" > /dev/console
sync
poweroff -f
ACTION
chmod 755 "$ROOT/init" "$ROOT/etc/acpi/power-button"

# Reproducible archive: sorted names, fixed mtimes, root-owned, no gzip timestamp.
find "$ROOT" -exec touch -h -d @0 {} +
( cd "$ROOT" && find . -mindepth 1 | sort | cpio --quiet -o -H newc -R 0:0 --reproducible ) |
  gzip -9 -n > "$WORK/initramfs.cpio.gz"

cp "$KTREE/boot/vmlinuz-$KERNEL_VERSION" "$WORK/vmlinuz"
quietly qemu-img create -q -f qcow2 "$WORK/disk.qcow2" "$DISK_SIZE"

# ------------------------------------------------------------------------------------------------
# 7. publish: outputs first, manifest (the cache record) last
# ------------------------------------------------------------------------------------------------
json_list() { local out='' x; for x in "$@"; do out+="${out:+, }\"$x\""; done; echo "[$out]"; }
LOADED_NAMES=()
for rel in ${LOAD_ORDER[@]+"${LOAD_ORDER[@]}"}; do LOADED_NAMES+=("$(modname "$rel")"); done
cat > "$WORK/manifest.json" <<JSON
{
  "kernelVersion": "$KERNEL_VERSION",
  "kernel": "vmlinuz",
  "initrd": "initramfs.cpio.gz",
  "disk": "disk.qcow2",
  "cmdline": "$CMDLINE",
  "builtAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "kernelPackage": "$KERNEL_PKG",
  "kernelPackageVersion": "$KERNEL_PKG_VERSION",
  "busyboxVersion": "$BUSYBOX_VERSION",
  "scriptSha256": "$SCRIPT_SHA256",
  "modules": $(json_list ${LOADED_NAMES[@]+"${LOADED_NAMES[@]}"}),
  "markers": {"ready": "VIRTKIT-GUEST-READY", "disk": "VIRTKIT-GUEST-DISK", "poweroff": "VIRTKIT-GUEST-POWEROFF"}
}
JSON
rm -f "$OUT_DIR/manifest.json"
for f in vmlinuz initramfs.cpio.gz disk.qcow2; do mv -f "$WORK/$f" "$OUT_DIR/$f"; done
mv -f "$WORK/manifest.json" "$OUT_DIR/manifest.json"

echo "test guest: built kernel $KERNEL_VERSION, initramfs $(stat -c %s "$OUT_DIR/initramfs.cpio.gz") bytes, modules: ${LOADED_NAMES[*]:-none} ($(elapsed))"
