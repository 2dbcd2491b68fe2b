#!/usr/bin/env bash
# Theory of operation: a kill -9 of brokerd at any point of a save leaves no VM paused that
# was running. A real QEMU (firmware only: running is all it needs to do) has its RAM on a
# tagged image; brokerd is killed while the save copies (the VM stopped, the save's
# temporary growing), with --resume and without. The VM stays paused while brokerd is gone,
# and runs again once brokerd starts. A save that completed without --resume leaves the VM
# paused on purpose, and a restart must not resume it. A second save to a file being saved
# is refused while the first runs. The test sees QEMU's state on a
# second QMP socket of its own (brokerd holds the first).
. "$(dirname "$0")/lib.sh"

R=5a5a0001-1111-4222-8333-444444444444   # the VM's RAM
start_host_brokerd
tagmem image create "$G/state/images/ram.img" --size 1G --tag $R >/dev/null
mapfile -t args < <(tagmem qemu-args --vm kv --ram $R --no-channel)
fail() { echo "FAIL: $*" >&2; tail -n 20 "$G/brokerd.log" >&2; exit 1; }
# status: QEMU's run state, asked on the test's own QMP socket
status() {
	python3 - "$G/t.qmp" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
def rd():
    while True:
        m = json.loads(f.readline())
        if "event" not in m:
            return m
rd()
for cmd in ("qmp_capabilities", "query-status"):
    f.write(json.dumps({"execute": cmd}) + "\n"); f.flush(); m = rd()
print(m["return"]["status"])
PY
}
wait_status() { # WANT SECONDS
	local st=
	for _ in $(seq 1 $(($2 * 10))); do
		st=$(status) && [ "$st" = "$1" ] && return 0
		sleep 0.1
	done
	fail "QEMU is $st, not $1, after $2 s"
}
qemu-system-x86_64 -accel tcg -machine pc -m 1G -display none -nodefaults "${args[@]}" \
	-qmp "unix:$G/b.qmp,server=on,wait=off" -qmp "unix:$G/t.qmp,server=on,wait=off" \
	2>>"$G/qemu.log" &
EXTRA_PIDS+=($!)
until [ -S "$G/t.qmp" ] && [ -S "$G/b.qmp" ]; do sleep 0.02; done
wait_status running 10
# the RAM image has bytes to copy, so a save takes a while
dd if=/dev/urandom of="$G/state/images/ram.img" bs=1M count=768 conv=notrunc status=none

for how in --resume ""; do
	rm -f "$G/s.save" "$G"/.s.save.tmp-*  # a killed save leaves its temporary (the next removes it)
	tagmem vm save kv "$G/s.save" --qmp "$G/b.qmp" --threads 1 $how >"$G/save.out" 2>&1 &
	save=$!
	# the save's temporary exists once the VM is stopped; the kill comes while it copies
	for _ in $(seq 1 2000); do
		compgen -G "$G/.s.save.tmp-*" >/dev/null && break
		sleep 0.005
	done
	compgen -G "$G/.s.save.tmp-*" >/dev/null || fail "the save never began: $(cat "$G/save.out")"
	kill -9 "$HOST_BROKERD_PID"
	wait "$HOST_BROKERD_PID" 2>/dev/null || true
	wait "$save" 2>/dev/null || true
	[ ! -e "$G/s.save" ] || fail "the save completed before the kill: the test cannot tell"
	st=$(status)
	# stopped: "paused", or "postmigrate" once QEMU's part (the device state) is written
	[ "$st" = paused ] || [ "$st" = postmigrate ] ||
		fail "QEMU is $st with brokerd killed mid-save, not stopped"
	[ -n "$(ls "$G/state/paused")" ] || fail "no pause mark recorded for the paused VM"
	mv "$G/brokerd.log" "$G/brokerd.1.log"
	start_host_brokerd
	wait_status running 10
	grep -q "running again" "$G/brokerd.log" || fail "the log does not say the VM runs again"
	for _ in $(seq 1 50); do [ -z "$(ls "$G/state/paused")" ] && break; sleep 0.1; done
	[ -z "$(ls "$G/state/paused")" ] || fail "the pause mark outlived the resume"
	echo "host: killed mid-save (${how:-no --resume}): paused while brokerd was gone, running after its restart"
done

# a complete save without --resume: stopped on purpose, and a restart keeps it so
out=$(tagmem --json vm save kv "$G/s.save" --threads 2 2>&1) || fail "save: $out"
[ -s "$G/s.save" ] || fail "the save wrote nothing"
st=$(status)
[ "$st" = paused ] || [ "$st" = postmigrate ] || fail "QEMU is $st after a save without --resume"
[ -z "$(ls "$G/state/paused")" ] || fail "a completed save left its pause mark"
kill "$HOST_BROKERD_PID"
wait "$HOST_BROKERD_PID" 2>/dev/null || true
start_host_brokerd
sleep 1
[ "$(status)" = "$st" ] || fail "a restart resumed a VM a completed save stopped on purpose"
echo "host: a completed save without --resume stays stopped across a restart"

# two saves to one FILE at once: the second is refused while the first runs (they used to
# share a temporary, and one was acknowledged while FILE held the other's bytes)
rm -f "$G/s.save"
tagmem --json vm save kv "$G/s.save" --qmp "$G/b.qmp" --threads 1 --resume >"$G/save1.out" 2>&1 &
save1=$!
for _ in $(seq 1 2000); do
	compgen -G "$G/.s.save.tmp-*" >/dev/null && break
	sleep 0.005
done
out=$(tagmem vm save kv "$G/s.save" --qmp "$G/b.qmp" 2>&1) && fail "a second save to the same file was accepted"
grep -q "under way" <<<"$out" || fail "the second save: $(cat -A <<<"$out")"
wait "$save1" || fail "the first save: $(cat "$G/save1.out")"
jq -e '.bytes > 0' "$G/save1.out" >/dev/null || fail "the first save: $(cat "$G/save1.out")"
echo "host: a second save to a file being saved is refused: ${out##*: }"
