#!/usr/bin/env bash
# Theory of operation: save and restore with QEMU out of the RAM path. The VM's RAM is a
# tagged image (`qemu-args --ram`), and it has an nvdimm image and a DCD tag. The guest
# writes known bytes across its RAM (a tmpfs file), the nvdimm and the DCD tag, and sleeps.
# `tagmem vm save` stops it; QEMU writes only the device state (x-ignore-shared) and brokerd
# writes every backing into the file with parallel O_DIRECT writers. The QEMU process is
# killed; every backing is scribbled over; a new QEMU starts with the same arguments and
# -incoming defer, and `tagmem vm restore` puts the bytes back and starts it. The guest wakes
# where it slept and finds every byte it wrote. Refusals change nothing: a VM with memory
# that is not tagged capacity (nothing written); a disk that fills up in the middle of a save
# (the save before it stays whole, the temporary goes). kill -9 of brokerd in the middle of a
# save leaves the previous save as it was.
. "$(dirname "$0")/lib.sh"

R=5e5e0001-1111-4222-8333-444444444444   # the VM's RAM
N=5e5e0002-1111-4222-8333-444444444444   # an nvdimm image
D=5e5e0003-1111-4222-8333-444444444444   # a DCD tag
start_host_brokerd
tagmem image create "$G/state/images/ram.img" --size 512M --tag $R >/dev/null
tagmem image create "$G/state/images/n.img" --size 32M --tag $N >/dev/null
tagmem fm add --size 32M --tag $D >/dev/null
mapfile -t args < <(tagmem qemu-args $N $D --vm sv --ram $R)
fail() { echo "FAIL: $*" >&2; tail -n 20 "$G/brokerd.log" >&2; tail -n 5 "$G/console.log" >&2; exit 1; }

cat >"$G/checks.sh" <<GUEST
. /checks-lib.sh
N=$N D=$D
GUEST
cat >>"$G/checks.sh" <<'GUEST'
udevadm settle
mkdir -p /mnt/ram && mount -t tmpfs -o size=300M tmpfs /mnt/ram
random_file /mnt/ram/pattern $((200 << 20))       # in guest RAM: the tagged image
ram=$(file_digest /mnt/ram/pattern $((200 << 20)))
random_file /tmp/four $((4 << 20))
for t in $N $D; do
	dd if=/tmp/four of=/dev/disk/by-tag/$t bs=1M seek=1 conv=notrunc 2>/dev/null
done
sync
four() { dd if=/dev/disk/by-tag/$1 bs=1M skip=1 count=4 2>/dev/null | digest $((4 << 20)); }
n=$(four $N)
d=$(four $D)
eq "the nvdimm image holds what was written" "$n" "$(file_digest /tmp/four $((4 << 20)))"
eq "the DCD tag holds what was written" "$d" "$n"
echo "TAGMEM-SAVE-ME"
sleep 3   # guest time: it stands still while the VM is saved, gone and restored
echo "TAGMEM-WOKE"
eq "RAM: every byte of 200 MiB is back" "$(file_digest /mnt/ram/pattern $((200 << 20)))" "$ram"
eq "the nvdimm image's bytes are back" "$(four $N)" "$n"
eq "the DCD tag's bytes are back" "$(four $D)" "$d"
check "the guest keeps running: it can write" sh -c 'echo alive >/mnt/ram/after && test -s /mnt/ram/after'
exit $CHECKS_FAILED
GUEST

# refused, nothing written: a VM whose RAM is not tagged capacity (QEMU would have to copy it)
P=5e5e0004-1111-4222-8333-444444444444
tagmem image create "$G/state/images/p.img" --size 16M --tag $P >/dev/null
mapfile -t pargs < <(tagmem qemu-args $P --vm plain --no-channel)
qemu-system-x86_64 -accel tcg -machine pc,nvdimm=on -m 128M,slots=2,maxmem=1G -S -display none \
	-nodefaults "${pargs[@]}" -qmp "unix:$G/plain.qmp,server=on,wait=off" &
EXTRA_PIDS+=($!)
until [ -S "$G/plain.qmp" ]; do sleep 0.05; done
out=$(tagmem vm save plain "$G/plain.save" --qmp "$G/plain.qmp" 2>&1) && fail "a VM with untagged RAM was saved"
grep -q 'not one of its tags' <<<"$out" || fail "untagged RAM: $out"
[ ! -e "$G/plain.save" ] && [ -z "$(ls -a "$G" | grep '^\.plain')" ] || fail "the refused save left files"
echo "host: refused: ${out##*$'\n'}"

GUEST_MEM_SLOTS=4 GUEST_MAXMEM=2G
start_guest "$G/checks.sh" 400 "${args[@]}" -m 512M,slots=4,maxmem=2G \
	-qmp "unix:$G/vm.qmp,server=on,wait=off"
wait_console '^TAGMEM-SAVE-ME' 300
# a disk that fills in the middle of a save: the save before it stays as it was
mkdir -p "$G/small" && mount -t tmpfs -o size=700M tmpfs "$G/small"
trap 'umount -l "$G/small" 2>/dev/null || true; guest_cleanup' EXIT
out=$(tagmem --json vm save sv "$G/small/vm.save" --qmp "$G/vm.qmp") || fail "save: $out"
small=$(sha256sum <"$G/small/vm.save")
out=$(tagmem vm save sv "$G/small/vm.save" 2>&1) && fail "a save into a full disk succeeded"
grep -q 'No space left' <<<"$out" || fail "full disk: $out"
[ "$(sha256sum <"$G/small/vm.save")" = "$small" ] || fail "the full disk damaged the save before"
[ "$(ls -A "$G/small")" = vm.save ] || fail "the failed save left files: $(ls -A "$G/small")"
umount "$G/small"
echo "host: disk full mid-save: ${out##*$'\n'}"
out=$(tagmem --json vm save sv "$G/vm.save" 2>&1) || fail "save: $out"
echo "host: saved $(jq -r '.bytes' <<<"$out") bytes in $(jq -r '.usec / 1000 | floor' <<<"$out") ms ($(jq -r '.device_state_bytes' <<<"$out") of device state)"
first=$(sha256sum <"$G/vm.save")
# the first QEMU goes away; its backings are overwritten: only the save file has the bytes
kill -9 "$(pgrep -P "$GUEST_PID" qemu-system)"
wait "$GUEST_PID" 2>/dev/null || true
for f in "$G/state/images/ram.img" "$G/state/images/n.img" "$(tagmem lookup $D)"; do
	dd if=/dev/zero of="$f" bs=1M count=8 seek=1 conv=notrunc status=none
done
tagmem image budget $R --dirty 2M >/dev/null
# a new QEMU, the same arguments, waiting for the device state
for _ in $(seq 1 100); do tagmem --json list | jq -e '.[] | select(.owner.name == "sv")' >/dev/null && break; done
timeout 400 qemu-system-x86_64 -accel "$GUEST_ACCEL" -machine pc,nvdimm=on \
	-m 512M,slots=4,maxmem=2G -smp 1 -nographic -no-reboot \
	-kernel "$KERNEL" -initrd "$G/initrd.cpio.gz" -append "console=ttyS0 panic=-1 quiet" \
	"${args[@]}" -qmp "unix:$G/vm2.qmp,server=on,wait=off" -incoming defer >>"$G/console.log" 2>&1 &
GUEST_PID=$!
until [ -S "$G/vm2.qmp" ]; do sleep 0.05; done
for _ in $(seq 1 100); do
	out=$(tagmem --json vm restore sv "$G/vm.save" --qmp "$G/vm2.qmp" 2>&1) && break
	grep -q 'another QMP socket\|busy' <<<"$out" || fail "restore: $out"
	sleep 0.1   # the first QEMU's monitor is still going away
done
echo "host: restored $(jq -r '.bytes' <<<"$out") bytes in $(jq -r '.usec / 1000 | floor' <<<"$out") ms"
# the RAM image's dirty budget (2 MiB here) waited while the restore rewrote it: brokerd
# started no writeback of it meanwhile (what the kernel writes back on its own thresholds is
# the kernel's, and differs from machine to machine); then the budget goes on by itself
steps=$(jq -r '.budget_writeback_steps' <<<"$out")
[ "$steps" = 0 ] || fail "brokerd wrote the images back while the restore held them ($steps steps)"
for _ in $(seq 1 400); do
	pc=$(tagmem --json show $R | jq .page_cache.dirty_bytes)
	[ "$pc" -le $((4 << 20)) ] && break
	sleep 0.05
done
[ "$pc" -le $((4 << 20)) ] || fail "the dirty budget did not resume after the restore ($pc dirty)"
echo "host: the restored RAM was written back after the restore, on the budget"
finish_guest 400
[ "$(sha256sum <"$G/vm.save")" = "$first" ] || fail "the save file changed"

# kill -9 of brokerd in the middle of a save: the previous save stays whole
qemu-system-x86_64 -accel tcg -machine pc,nvdimm=on -m 512M,slots=4,maxmem=2G -S -display none \
	-nodefaults "${args[@]}" -qmp "unix:$G/vm3.qmp,server=on,wait=off" &
EXTRA_PIDS+=($!)
until [ -S "$G/vm3.qmp" ]; do sleep 0.05; done
for _ in $(seq 1 100); do [ -z "$(tagmem --json status | jq -r .clients)" ] || break; done
(tagmem vm save sv "$G/vm.save" --qmp "$G/vm3.qmp" >/dev/null 2>&1 &)
for _ in $(seq 1 2000); do ls "$G"/.vm.save.tmp-* >/dev/null 2>&1 && break; sleep 0.001; done
kill -9 "$HOST_BROKERD_PID"
wait "$HOST_BROKERD_PID" 2>/dev/null || true
[ "$(sha256sum <"$G/vm.save")" = "$first" ] || fail "kill -9 mid-save damaged the previous save"
echo "host: kill -9 in the middle of a save left the previous one intact"
start_host_brokerd
out=$(tagmem --json vm save sv "$G/vm.save" --qmp "$G/vm3.qmp" 2>&1) || fail "save after the kill: $out"
[ -z "$(ls -a "$G" | grep '^\.vm\.save\.')" ] || fail "the killed save's temporary is still there"
echo "host: the next save completes and removes what the killed one left"
