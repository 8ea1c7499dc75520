# Sourced by the scripts that need Debian packages (build-test-guest.sh, build-test-rootfs.sh).
# The caller defines say() and die() (its own message prefix) and LOG_PREFIX before sourcing.
# Missing packages are installed with apt (needs root, or sudo without a password).

export DEBIAN_FRONTEND=noninteractive

# Run a command as root (directly, or through sudo when available).
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else die "need root to run: $*"
  fi
}

APT_OPTS=(-q -o DPkg::Lock::Timeout=300)
[ "$(id -u)" = 0 ] && APT_OPTS+=(-o APT::Sandbox::User=root)   # no "unsandboxed download" warning

# Run a command quietly: its output is shown only when it fails.
quietly() {
  local log rc=0
  log=$(mktemp)
  "$@" >"$log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then cat "$log" >&2; rm -f "$log"; echo "$LOG_PREFIX: failed ($rc): $*" >&2; return "$rc"; fi
  rm -f "$log"
}

APT_UPDATED=0
apt_update_once() {
  [ "$APT_UPDATED" = 1 ] && return 0
  APT_UPDATED=1
  say "apt-get update"
  quietly as_root apt-get "${APT_OPTS[@]}" update
}

is_installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }

# Install whichever of the given packages are missing.
ensure_packages() {
  local p missing=()
  for p in "$@"; do is_installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} = 0 ] && return 0
  apt_update_once
  say "apt-get install ${missing[*]}"
  quietly as_root apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "${missing[@]}"
}
