#!/usr/bin/env bash
# Sets up a fresh clone: pnpm (into .cache/tools, no global install), dependencies, build.
# Idempotent and cached: a second run only rebuilds what changed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
PNPM_VERSION="$(node -p "require('./package.json').packageManager.split('@')[1]")"
tools="$root/.cache/tools"
if [ ! -x "$tools/node_modules/.bin/pnpm" ] || [ "$("$tools/node_modules/.bin/pnpm" --version)" != "$PNPM_VERSION" ]; then
  echo "setup: installing pnpm $PNPM_VERSION into .cache/tools" >&2
  npm install --silent --no-audit --no-fund --prefix "$tools" "pnpm@$PNPM_VERSION" >&2
fi
export PATH="$tools/node_modules/.bin:$PATH"
echo "setup: installing dependencies" >&2
pnpm install --frozen-lockfile --prefer-offline --reporter=silent >&2 || pnpm install --frozen-lockfile >&2
echo "setup: building" >&2
pnpm run --silent build >&2
