#!/usr/bin/env bash
# scripts/build-test-rootfs.sh [OUT_DIR]
#
# Builds the tiny container root file system virtkit's LXC plugin tests start, from Debian's
# busybox-static only (no download beyond apt). OUT_DIR defaults to <repo>/.cache/test-rootfs.
#
#   OUT_DIR/rootfs/          the root file system: busybox and its applet links, /sbin/init below
#   OUT_DIR/manifest.json    what was built
#
# /sbin/init (a busybox sh script, PID 1 of the container):
#   prints VIRTKIT-CT-READY <hostname> on the console, then waits;
#   SIGPWR (lxc-stop's default halt signal) or SIGUSR2: prints VIRTKIT-CT-POWEROFF, exits 0;
#   SIGINT (lxc-stop -r): prints VIRTKIT-CT-REBOOT and calls reboot(2) (`reboot -f`), so LXC
#   restarts the container;
#   with VIRTKIT_IGNORE_HALT=1 in its environment it ignores SIGPWR (a container that does
#   not stop gracefully).
#
# Cached: when manifest.json records the same busybox version and sha256 of this script, it
# prints "test rootfs: cached" and does nothing. Missing apt packages (lxc, socat, util-linux,
# busybox-static) are installed (needs root or sudo).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${1:-$REPO_ROOT/.cache/test-rootfs}"
# lxc: the lxc-* tools the driver runs; socat: its console relay; util-linux: setpriv (its
# watchers die with the manager); busybox-static: the rootfs.
HOST_PACKAGES="lxc socat util-linux busybox-static"

export LC_ALL=C

LOG_PREFIX="test rootfs"
say() { echo "$LOG_PREFIX: $*" >&2; }
die() { echo "$LOG_PREFIX: error: $*" >&2; exit 1; }
# shellcheck source=lib/apt.sh
. "$REPO_ROOT/scripts/lib/apt.sh"

# shellcheck disable=SC2086
ensure_packages $HOST_PACKAGES
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "busybox-static installed but $BUSYBOX is missing"
BUSYBOX_VERSION=$(dpkg-query -W -f='${Version}' busybox-static)
SCRIPT_SHA256=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)

mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
exec 9>"$OUT_DIR/.lock"
flock 9
rm -rf "$OUT_DIR"/.build.*

manifest_get() {
  sed -n "s/^  \"$1\": \"\\(.*\\)\",\\{0,1\\}\$/\\1/p" "$OUT_DIR/manifest.json" 2>/dev/null | head -n1
}
if [ -f "$OUT_DIR/manifest.json" ] &&
   [ "$(manifest_get busyboxVersion)" = "$BUSYBOX_VERSION" ] &&
   [ "$(manifest_get scriptSha256)" = "$SCRIPT_SHA256" ] &&
   [ -x "$OUT_DIR/rootfs/sbin/init" ]; then
  echo "test rootfs: cached"
  exit 0
fi
say "building in $OUT_DIR"

WORK=$(mktemp -d "$OUT_DIR/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
R="$WORK/rootfs"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,run,var/log}
chmod 1777 "$R/tmp"
cp "$BUSYBOX" "$R/bin/busybox"
for applet in $("$BUSYBOX" --list-full); do
  [ "$applet" = bin/busybox ] && continue
  ln -sf /bin/busybox "$R/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
echo 'root:x:0:' > "$R/etc/group"
: > "$R/etc/hostname"

rm -f "$R/sbin/init"
cat > "$R/sbin/init" <<'EOF'
#!/bin/sh
# virtkit test container init (scripts/build-test-rootfs.sh)
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t tmpfs tmpfs /tmp 2>/dev/null
if [ "$VIRTKIT_IGNORE_HALT" = 1 ]; then trap '' PWR USR2; else trap 'echo VIRTKIT-CT-POWEROFF; exit 0' PWR USR2; fi
trap 'echo VIRTKIT-CT-REBOOT; reboot -f' INT
echo "VIRTKIT-CT-READY $(hostname) ${VIRTKIT_GREETING:-}"
while :; do sleep 3600 & wait $!; done
EOF
chmod 755 "$R/sbin/init"

rm -rf "$OUT_DIR/rootfs"
mv "$R" "$OUT_DIR/rootfs"
cat > "$OUT_DIR/manifest.json" <<EOF
{
  "rootfs": "rootfs",
  "busyboxVersion": "$BUSYBOX_VERSION",
  "scriptSha256": "$SCRIPT_SHA256"
}
EOF
say "done"
