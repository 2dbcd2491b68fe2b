#!/usr/bin/env bash
# A tag's whole life, end to end, on the embedded simulated fabric: install what is missing,
# build, start brokerd in a scratch directory, and drive it with the tagmem CLI while a
# `tagmem watch` prints the events. Nothing outside the scratch directory is touched.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}

"$top/tests/deps.sh"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null

scratch=$(mktemp -d /tmp/tagmem-demo.XXXXXX)
export TAGMEM_SOCKET=$scratch/brokerd.sock TAGMEM_ROOT=$scratch/sim
brokerd=$build/brokerd/brokerd
tagmem() { "$build/cli/tagmem" "$@"; }
step() { printf '\n\033[1m$ tagmem %s\033[0m\n' "$*"; tagmem "$@"; }
cleanup() {
	kill "${watch_pid:-}" "${broker_pid:-}" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$scratch"
}
trap cleanup EXIT

echo "== starting brokerd on the simulated DCD backend in $scratch"
"$brokerd" --socket "$TAGMEM_SOCKET" --state-dir "$scratch/state" --sim-root "$scratch/sim" \
	2> >(sed -u 's/^/   [brokerd] /' >&2) &
broker_pid=$!
until tagmem status >/dev/null 2>&1; do sleep 0.05; done
tagmem watch 2>/dev/null | sed -u 's/^/   [event] /' &
watch_pid=$!
sleep 0.2

tag=$(cat /proc/sys/kernel/random/uuid)
echo
echo "== the fabric manager allocates 2 GiB with tag $tag"
step fm add --size 2G --tag "$tag"
sleep 0.1
echo; echo "== the tag is a device now; any host finds it by tag"
step lookup "$tag"
step claim "$tag" --name demo-vm
step list
echo; echo "== the fabric manager wants it back, but it is claimed: the release waits"
step fm release --tag "$tag"
step show "$tag"
echo; echo "== the owner lets go; the release completes"
step release "$tag"
sleep 0.1
step status
echo; echo "== done: brokerd and the scratch directory are removed"
