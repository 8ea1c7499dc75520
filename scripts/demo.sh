#!/usr/bin/env bash
# Sets up a fresh clone and shows the main job: a real tiny VM on this node (KVM, or TCG
# where KVM is not really usable) booted, its console output and lifecycle events shown,
# then shut down; and the same verbs on the in-memory test:///default hypervisor.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
export PATH="$root/.cache/tools/node_modules/.bin:$PATH"
run() { printf '\n$ %s\n' "$*"; "$@"; }

# The tiny guest: a Debian cloud kernel and a busybox initramfs (cached after the first run).
bash scripts/build-test-guest.sh >/dev/null

# A node of its own under .cache/demo, so the demo starts clean and touches nothing else.
demo="$root/.cache/demo"
rm -rf "$demo" && mkdir -p "$demo"
guest="$root/.cache/test-guest"
printf '{"stateRoot":"%s/state","runtimeRoot":"%s/run"}\n' "$demo" "$demo" > "$demo/virtkit.json"
export VIRTKIT_CONFIG="$demo/virtkit.json"
# The demo runs embedded, on a node of its own, even if a virtkitd runs on this machine.
export VIRTKIT_EMBEDDED=1
cp "$guest/disk.qcow2" "$demo/disk.qcow2"
cat > "$demo/tiny.json" <<JSON
{
  "name": "tiny", "memoryMiB": 128, "vcpus": 1,
  "os": { "type": "hvm", "kernel": "$guest/vmlinuz", "initrd": "$guest/initramfs.cpio.gz", "cmdline": "console=ttyS0 quiet panic=-1" },
  "devices": { "disks": [ { "source": "$demo/disk.qcow2", "format": "qcow2" } ], "serials": [ { "logFile": "$demo/tiny-console.log" } ] }
}
JSON

run pnpm exec virtkit plugins
run pnpm exec virtkit -c qemu:///system 'nodeinfo; define .cache/demo/tiny.json; start tiny; dominfo tiny'
printf '\n# the guest boots (under TCG: ~2 s); its console, logged:\n'
for _ in $(seq 1 150); do grep -q VIRTKIT-GUEST-READY "$demo/tiny-console.log" 2>/dev/null && break; sleep 0.1; done
run cat "$demo/tiny-console.log"
run pnpm exec virtkit -c qemu:///system 'shutdown tiny; dominfo tiny; events; undefine tiny'

printf '\n# the same verbs on test:///default, the in-memory hypervisor for testing tools:\n'
run pnpm exec virtkit -c test:///default \
  'list --all; define examples/domains/web1.json; start web1; suspend web1; resume web1; shutdown web1; dominfo web1; events'
