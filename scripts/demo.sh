#!/usr/bin/env bash
# Sets up a fresh clone and shows the main job on the embedded test:///default node:
# list, define from a JSON file, start, suspend, resume, shut down, info, events.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
export PATH="$root/.cache/tools/node_modules/.bin:$PATH"
run() { printf '\n$ %s\n' "$*"; "$@"; }
run pnpm exec virtkit plugins
run pnpm exec virtkit -c test:///default \
  'list --all; define examples/domains/web1.json; list --all; start web1; suspend web1; resume web1; dominfo web1; shutdown web1; dominfo web1; events'
