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
# The same suite on the current LTS, Node 24 (the npm registry's `node` package, installed into
# .cache/node24), as the project supports both. VIRTKIT_SKIP_NODE24=1 skips it.
if [ "${VIRTKIT_SKIP_NODE24:-}" != 1 ] && [ "$(node -p 'process.versions.node.split(".")[0]')" != 24 ]; then
  node24="$root/.cache/node24/node_modules/.bin/node"
  if [ ! -x "$node24" ] || [ "$("$node24" -p 'process.versions.node.split(".")[0]')" != 24 ]; then
    echo "test: installing Node 24 into .cache/node24" >&2
    npm install --silent --no-audit --no-fund --prefix "$root/.cache/node24" node@24 >&2
  fi
  echo "test: the suite again on Node $("$node24" --version)" >&2
  PATH="$(dirname "$node24"):$PATH" "$node24" node_modules/vitest/vitest.mjs run
fi
