#!/usr/bin/env bash
# Theory of operation: `tagmem attach` against real QEMU 7.2 processes (paused with -S: the
# monitor is all that matters here, so no guest kernel is needed). Refusals change nothing:
# a missing socket, a socket that is not QMP, a VM without nvdimm support, a VM with no free
# memory slot, a tag held by another VM. The success path: the tag is claimed for the VM at
# a pinned slot only once QEMU confirmed, detach says plainly that QEMU 7.2 cannot unplug an
# nvdimm, and when QEMU exits the broker notices the monitor closing and releases the tag.
. "$(dirname "$0")/lib.sh"

start_host_brokerd
fail() { echo "FAIL: $*" >&2; tail -n 20 "$G/brokerd.log" >&2; exit 1; }

A=a1a1a1a1-1111-4222-8333-444444444444
B=b1b1b1b1-1111-4222-8333-444444444444
tagmem image create "$G/state/images/a.img" --size 32M --tag $A >/dev/null
tagmem image create "$G/state/images/b.img" --size 32M --tag $B >/dev/null
snapshot() { jq -S -c '.claims' "$G/state/registry.json"; }
before=$(snapshot)

# qemu_paused NAME MACHINE MEM [ARGS…]: a paused QEMU with a QMP socket at $G/NAME.qmp
qemu_paused() {
	local name=$1 machine=$2 mem=$3
	shift 3
	qemu-system-x86_64 -accel tcg -machine "$machine" -m "$mem" -S -display none -nodefaults \
		-qmp "unix:$G/$name.qmp,server=on,wait=off" "$@" &
	EXTRA_PIDS+=($!)
	for _ in $(seq 1 200); do [ -S "$G/$name.qmp" ] && return 0; sleep 0.05; done
	fail "QEMU $name did not open its monitor"
}
expect_error() { # CODE command…
	local code=$1 out
	shift
	out=$(tagmem --json "$@" 2>/dev/null) && fail "'$*' succeeded"
	[ "$(jq -r .error.code <<<"$out")" = "$code" ] || fail "'$*': expected $code, got: $out"
	[ "$(tagmem --json show $A | jq -r .state)" = ready ] || fail "'$*' left A claimed"
	[ "$(snapshot)" = "$before" ] || fail "'$*' changed the registry"
}

# the CLI refuses a socket path that does not exist; brokerd's own answer, over the socket:
tagmem attach $A --vm v0 --qmp "$G/nothing.sock" 2>/dev/null && fail "attach to nothing succeeded"
out=$(echo '{"id":1,"op":"attach","tag":"'$A'","vm":"v0","qmp":"'$G'/nothing.sock"}' |
	python3 -c 'import socket,sys,os; s=socket.socket(socket.AF_UNIX); s.settimeout(20); s.connect(os.environ["TAGMEM_SOCKET"]); s.sendall(sys.stdin.buffer.read()); print(s.makefile().readline())')
[ "$(jq -r .error.code <<<"$out")" = unreachable ] || fail "missing socket: $out"

python3 -c '
import socket, os, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(4)
while True:
    c, _ = s.accept(); c.sendall(b"220 smtp.example ESMTP\n"); c.close()' "$G/notqmp.sock" &
EXTRA_PIDS+=($!)
until [ -S "$G/notqmp.sock" ]; do sleep 0.05; done
expect_error invalid_argument attach $A --vm v1 --qmp "$G/notqmp.sock"

qemu_paused plain pc 256M,slots=2,maxmem=1G
expect_error unsupported attach $A --vm plain --qmp "$G/plain.qmp"

# a VM with one memory slot, already used by a cold-plugged nvdimm
mapfile -t cold < <(tagmem qemu-args $B --vm full)
qemu_paused full pc,nvdimm=on 256M,slots=1,maxmem=1G "${cold[@]}"
before=$(snapshot)
expect_error qemu_error attach $A --vm full --qmp "$G/full.qmp"
grep -q "QEMU refused the nvdimm" <(tagmem attach $A --vm full --qmp "$G/full.qmp" 2>&1) ||
	fail "the refusal does not say what QEMU refused"

# success, then detach, then the VM exits
qemu_paused good pc,nvdimm=on 256M,slots=4,maxmem=1G
out=$(tagmem --json attach $A --vm good --qmp "$G/good.qmp") || fail "attach failed: $out"
[ "$(jq -r .slot <<<"$out")" = 0 ] || fail "slot: $out"
[ "$(tagmem --json show $A | jq -r '[.state, .owner.name, .attached] | join(" ")')" = "claimed good true" ] ||
	fail "A after attach: $(tagmem --json show $A)"
[ "$(jq -r --arg t $A '.claims[] | select(.tag == $t) | .name' "$G/state/registry.json")" = good ] ||
	fail "the registry does not hold the attachment"
[ "$(tagmem --json show $A | jq -r .label.nvdimm_slot)" = 0 ] || fail "label not written for slot 0"
expect_busy=$(tagmem --json attach $A --vm other --qmp "$G/good.qmp" 2>/dev/null | jq -r .error.code || true)
[ "$expect_busy" = busy ] || fail "a tag held by one VM went to another: $expect_busy"
[ "$(tagmem --json release $A 2>/dev/null | jq -r .error.code || true)" = busy ] ||
	fail "a hot-plugged tag was released while its VM still maps it"
tagmem detach $A | grep -q "cannot unplug an nvdimm" || fail "detach did not say why"
[ "$(tagmem --json show $A | jq -r .state)" = release_pending ] || fail "detach did not mark A"
kill "${EXTRA_PIDS[-1]}"
for _ in $(seq 1 100); do
	[ "$(tagmem --json show $A | jq -r .state)" = ready ] && break
	sleep 0.05
done
[ "$(tagmem --json show $A | jq -r .state)" = ready ] || fail "A not released when its VM exited"
grep -q "VM good exited" "$G/brokerd.log" || fail "no log line for the VM exit"
[ -z "$(jq -r --arg t $A '.claims[] | select(.tag == $t) | .name' "$G/state/registry.json")" ] ||
	fail "the registry still holds A"
# an unprivileged user may only point brokerd at a QMP socket of its own
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chmod 755 "$G"
	qemu_paused rootvm pc,nvdimm=on 256M,slots=4,maxmem=1G
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$BUILD_DIR/cli/tagmem" --json \
		attach $B --vm x --qmp "$G/rootvm.qmp" 2>/dev/null || true)
	[ "$(jq -r .error.code <<<"$out")" = permission_denied ] ||
		fail "nobody pointed brokerd at root's QMP socket: $out"
fi

# two tags that share their first 8 hex digits, in one VM: cold-plugged together, then two
# more hot-plugged together (QEMU refused the pair with "Duplicate ID" when ids were cut)
P1=11111111-2222-4333-8444-000000000001 P2=11111111-2222-4333-8444-000000000002
P3=11111111-2222-4333-8444-000000000003 P4=11111111-2222-4333-8444-000000000004
for t in $P1 $P2 $P3 $P4; do
	tagmem image create "$G/state/images/$t.img" --size 16M --tag $t >/dev/null
done
mapfile -t pair < <(tagmem qemu-args $P1 $P2 --vm twins)
qemu-system-x86_64 -accel tcg -machine pc,nvdimm=on -m 256M,slots=4,maxmem=1G -S -display none \
	-nodefaults -qmp "unix:$G/twins.qmp,server=on,wait=off" "${pair[@]}" 2>"$G/twins.err" &
EXTRA_PIDS+=($!)
for _ in $(seq 1 200); do [ -S "$G/twins.qmp" ] && break; sleep 0.05; done
[ -S "$G/twins.qmp" ] && kill -0 "${EXTRA_PIDS[-1]}" 2>/dev/null ||
	fail "QEMU refused two tags sharing a prefix: $(cat "$G/twins.err")"
for t in $P3 $P4; do
	out=$(tagmem --json attach $t --vm twins --qmp "$G/twins.qmp") ||
		fail "hot-plug of $t next to a tag sharing its prefix: $out"
done
echo "qmp-attach: ok"
