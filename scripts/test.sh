#!/usr/bin/env bash
# Sets up a fresh clone and runs the whole test suite (what CI runs).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
export PATH="$root/.cache/tools/node_modules/.bin:$PATH"
# The tiny guest the QEMU tests boot (installs qemu and friends from apt when missing; cached).
bash scripts/build-test-guest.sh
# The busybox root file system the LXC tests start (installs lxc, socat from apt when missing; cached).
bash scripts/build-test-rootfs.sh
node scripts/gen.mjs --check
pnpm exec tsc -p packages/plugin-test/tsconfig.json --noEmit
pnpm exec tsc -p packages/plugin-kvm/tsconfig.json --noEmit
pnpm exec tsc -p packages/plugin-lxc/tsconfig.json --noEmit
pnpm exec vitest run
