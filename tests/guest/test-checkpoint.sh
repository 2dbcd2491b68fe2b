#!/usr/bin/env bash
# Theory of operation: incremental checkpoints, tested where the kernel has soft-dirty.
# On the host (whose kernel has none), a real QEMU whose memory is all tagged: `tagmem vm
# checkpoint` refuses plainly, writes nothing, and the VM can still be saved.
# In the guest (Debian's 6.1 kernel, CONFIG_MEM_SOFT_DIRTY=y), brokerd checkpoints a stand-in
# for QEMU (tests/guest/vm_standin.c: it maps the VM's tagged capacity shared, writes pages of
# it when told and answers brokerd's QMP). The VM's memory is a 32 MiB image on tmpfs; the
# checkpoints go to ext4 on an nvdimm.
#   - the first checkpoint is a base; each of the next ten follows 1% of the pages written
#     (one round writes zeros instead): each increment holds exactly those pages;
#   - the stand-in is killed, its memory scribbled over, a new one waits for an incoming
#     migration, and the base with its ten increments restores every byte and the device
#     state of the last;
#   - a torn increment (cut short, or a flipped byte in its pages) and a chain out of order
#     are refused by name with nothing written, and the chain before the torn one restores;
#   - a device-DAX backing (/dev/daxX.Y of a devdax image) is saved and restored by mapping;
#   - real QEMU, nested in the guest (its firmware running under TCG): a base and two
#     increments, the last taken with the VM paused from a second monitor, restored into a
#     new QEMU with --paused: its memory is the checkpoint's, byte for byte, and it runs on.
. "$(dirname "$0")/lib.sh"
# unit/snapshot again in the guest: its harvest test then runs where soft-dirty works
export GUEST_BINS="/usr/sbin/mkfs.ext4 $BUILD_DIR/tests/test_snapshot=/usr/bin/test_snapshot
	/usr/bin/qemu-system-x86_64"
# the nested QEMU's firmware, and Debian's QEMU loads its TCG as a module
qmod=/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so
export GUEST_FILES="/usr/share/seabios/bios-256k.bin=/usr/share/tagmem-fw/bios-256k.bin $qmod=$qmod"
export GUEST_MODULES="ext4"
[ -x /usr/sbin/mkfs.ext4 ] || guest_skip "mkfs.ext4 is missing (tests/deps.sh guest installs e2fsprogs)"

R=c4ec0001-1111-4222-8333-444444444444   # the VM's memory: an image on tmpfs in the guest
S=c4ec0002-1111-4222-8333-444444444444   # an nvdimm for the checkpoints' ext4
D=c4ec0003-1111-4222-8333-444444444444   # a devdax image: /dev/daxX.Y in the guest
Q=c4ec0006-1111-4222-8333-444444444444   # the nested QEMU's RAM: an image on tmpfs
fail() { echo "FAIL: $*" >&2; tail -n 20 "$G/brokerd.log" >&2; exit 1; }
start_host_brokerd

# ---- host: no soft-dirty, so no checkpoint --------------------------------------------------
HR=c4ec0004-1111-4222-8333-444444444444
HN=c4ec0005-1111-4222-8333-444444444444
tagmem image create "$G/state/images/hr.img" --size 128M --tag $HR >/dev/null
tagmem image create "$G/state/images/hn.img" --size 16M --tag $HN >/dev/null
mapfile -t hargs < <(tagmem qemu-args $HN --vm hostvm --ram $HR --no-channel)
qemu-system-x86_64 -accel tcg -machine pc,nvdimm=on -m 128M,slots=2,maxmem=1G -S -display none \
	-nodefaults "${hargs[@]}" -qmp "unix:$G/hostvm.qmp,server=on,wait=off" &
EXTRA_PIDS+=($!)
until [ -S "$G/hostvm.qmp" ]; do sleep 0.05; done
mkdir -p "$G/cp"
out=$(tagmem vm checkpoint hostvm "$G/cp/h.0" --qmp "$G/hostvm.qmp" 2>&1) &&
	fail "a checkpoint on a kernel without soft-dirty succeeded: $out"
grep -q 'CONFIG_MEM_SOFT_DIRTY' <<<"$out" || fail "the refusal does not say why: $out"
grep -q 'tagmem vm save' <<<"$out" || fail "the refusal does not say what to do instead: $out"
[ -z "$(ls -A "$G/cp")" ] || fail "the refused checkpoint left files: $(ls -A "$G/cp")"
tagmem vm save hostvm "$G/cp/h.save" --resume >/dev/null || fail "the VM cannot be saved after the refusal"
echo "host: refused, nothing written: ${out##*$'\n'}"

# ---- guest: a kernel with soft-dirty --------------------------------------------------------
tagmem image create "$G/state/images/s.img" --size 256M --tag $S >/dev/null
tagmem image create "$G/state/images/d.img" --size 32M --tag $D --layout devdax >/dev/null
mapfile -t args < <(tagmem qemu-args $S $D --vm guest)
{
	echo ". /checks-lib.sh"
	echo "R=$R S=$S D=$D Q=$Q"
} >"$G/checks.sh"
cat >>"$G/checks.sh" <<'GUEST'
udevadm settle
check "unit/snapshot, on a kernel with soft-dirty" env TAGMEM_EXPECT_SOFT_DIRTY=1 test_snapshot
mkfs.ext4 -q -F "$(readlink -f /dev/disk/by-tag/$S)"
mkdir -p /cp /run/tagmem /var/lib/tagmem/images
mount -t ext4 "$(readlink -f /dev/disk/by-tag/$S)" /cp
mount -t tmpfs -o size=128M tmpfs /var/lib/tagmem/images
img=/var/lib/tagmem/images/r.img
brokerd --backend host --socket /run/tagmem/brokerd.sock --state-dir /var/lib/tagmem 2>/tmp/brokerd.log &
wait_until 20 tagmem status
tagmem image create $img --size 32M --tag $R >/dev/null
tagmem qemu-args $R --vm cp >/dev/null
check "the devdax tag is known" wait_until 20 tagmem lookup $D
tagmem qemu-args $D --vm dx >/dev/null
mkfifo /tmp/ctl /tmp/dctl

# the stand-in's answers: ask LOG FD COMMAND PATTERN → the first new line matching PATTERN
ask() {
	local log=$1 fd=$2 n
	n=$(wc -l <"$log")
	echo "$3" >&"$fd"
	wait_until 60 sh -c "tail -n +$((n + 1)) $log | grep -q '$4'" || { echo "no answer to '$3'" >&2; return 1; }
	tail -n +$((n + 1)) "$log" | grep "$4" | head -n 1
}
start_standin() { # LOG CTL ARGS…
	local log=$1 ctl=$2
	shift 2
	vm_standin "$@" <"$ctl" >"$log" 2>&1 &
}
digest_of() { ask "$1" "$2" digest '^digest ' | cut -d' ' -f3; }
json() { tagmem --json "$@" || { tail -n 20 /tmp/brokerd.log >&2; dmesg | tail -n 5 >&2; return 1; }; }

# the VM writes all its memory, then a base
start_standin /tmp/s1.log /tmp/ctl /tmp/cp.qmp tm-$R=$img
exec 3>/tmp/ctl
wait_until 20 grep -q '^ready' /tmp/s1.log
ask /tmp/s1.log 3 "write 1000 1000" '^done' >/dev/null
out=$(json vm checkpoint cp /cp/cp.0 --qmp /tmp/cp.qmp)
eq "the first checkpoint is a base" "$(echo "$out" | jq -r .kind)" base
size=$(stat -c %s $img)

# ten increments, 1% of the pages each; round 5 writes zeros
exact=0
k=1
while [ $k -le 10 ]; do
	verb=write
	[ $k -eq 5 ] && verb=zero
	pages=$(ask /tmp/s1.log 3 "$verb $k 10" '^done' | cut -d' ' -f4)
	[ "$pages" -gt 0 ]
	out=$(json vm checkpoint cp /cp/cp.$k)
	echo "TAGMEM-CHECKPOINT $k pages=$pages $(echo "$out" | jq -c '{kind,sequence,dirty_bytes,zero_bytes,file_bytes,ranges,harvest_usec,capture_usec,device_state_usec,paused_usec,write_usec}')"
	if [ "$(echo "$out" | jq -r '.kind + " " + (.sequence|tostring)')" = "increment $k" ] &&
	   [ "$(echo "$out" | jq -r .dirty_bytes)" = $((pages * 4096)) ]; then
		exact=$((exact + 1))
	fi
	[ $k -eq 5 ] && eq "the zeroed round is all zero pages, none in the data" \
		"$(echo "$out" | jq -r '(.zero_bytes|tostring) + " " + (.file_bytes < 65536|tostring)')" \
		"$((pages * 4096)) true"
	digest_of /tmp/s1.log 3 >/tmp/digest.$k
	k=$((k + 1))
done
eq "each of the 10 increments holds exactly the pages written since the one before" $exact 10
state=$(ask /tmp/s1.log 3 state '^state ')
exec 3>&-   # the stand-in ends with its control
wait_until 20 sh -c '! pgrep -f "vm_standin /tmp/cp.qmp" >/dev/null'

# memory scribbled over, a new stand-in waiting; restore base + 10
restore_chain() { # LAST: base and increments 1..LAST, into a new stand-in
	local last=$1 i=1 incs=""
	dd if=/dev/urandom of=$img bs=1M count=32 conv=notrunc 2>/dev/null
	start_standin /tmp/s2.log /tmp/ctl /tmp/cp.qmp --incoming tm-$R=$img
	exec 3>/tmp/ctl
	wait_until 20 grep -q '^ready inmigrate' /tmp/s2.log
	while [ $i -le $last ]; do incs="$incs /cp/cp.$i"; i=$((i + 1)); done
	tagmem vm restore cp /cp/cp.0 $incs --qmp /tmp/cp.qmp >/tmp/restore.out 2>&1
}
stop_standin() {
	exec 3>&-
	wait_until 20 sh -c '! pgrep -f "vm_standin /tmp/cp.qmp" >/dev/null'
}
restore_chain 10
eq "base + 10 increments: every byte is back" "$(digest_of /tmp/s2.log 3)" "$(cat /tmp/digest.10)"
eq "the device state is the last checkpoint's" "$(ask /tmp/s2.log 3 state '^state ')" "$state"
stop_standin

# a torn increment: cut short, then a flipped byte in its pages; refused, nothing written
cp /cp/cp.10 /tmp/whole.10
truncate -s $(($(stat -c %s /cp/cp.10) - 4096)) /cp/cp.10
restore_chain 10 && bad "a cut increment was restored" || true
check "the cut increment is refused by name" grep -q 'increment 10 (cp.10) is cut short' /tmp/restore.out
check "the cut increment: the VM's memory was not written" test "$(digest_of /tmp/s2.log 3)" != "$(cat /tmp/digest.9)"
stop_standin
cp /tmp/whole.10 /cp/cp.10
printf '\001' | dd of=/cp/cp.10 bs=1 seek=$((8192 + 100)) conv=notrunc 2>/dev/null
restore_chain 10 && bad "a damaged increment was restored" || true
check "the damaged increment: the VM's memory was not written" \
	test "$(digest_of /tmp/s2.log 3)" != "$(cat /tmp/digest.9)"
check "the damaged increment is refused by name" \
	grep -q 'increment 10 (cp.10) does not match its checksums' /tmp/restore.out
stop_standin
# the chain before the torn one restores
restore_chain 9
eq "base + the 9 before the torn one: every byte is back" "$(digest_of /tmp/s2.log 3)" "$(cat /tmp/digest.9)"
stop_standin
# out of order: refused
mv /cp/cp.2 /tmp/cp.2 && mv /cp/cp.3 /cp/cp.2 && mv /tmp/cp.2 /cp/cp.3
restore_chain 3 && bad "a chain out of order was restored" || true
check "a chain out of order is refused" grep -q 'increment 2 (cp.2) does not follow' /tmp/restore.out
stop_standin

# device DAX: saved and restored through a mapping
dax=$(readlink -f /dev/dax/by-tag/$D)
start_standin /tmp/d1.log /tmp/dctl /tmp/dx.qmp tm-$D=$dax
exec 4>/tmp/dctl
wait_until 20 grep -q '^ready' /tmp/d1.log
ask /tmp/d1.log 4 "write 7 1000" '^done' >/dev/null
want=$(digest_of /tmp/d1.log 4)
check "device DAX: saved" tagmem vm save dx /cp/dx.save --qmp /tmp/dx.qmp --resume
ask /tmp/d1.log 4 "write 8 1000" '^done' >/dev/null
exec 4>&-
wait_until 20 sh -c '! pgrep -f "vm_standin /tmp/dx.qmp" >/dev/null'
start_standin /tmp/d2.log /tmp/dctl /tmp/dx.qmp --incoming tm-$D=$dax
exec 4>/tmp/dctl
wait_until 20 grep -q '^ready inmigrate' /tmp/d2.log
check "device DAX: the scribble is there before the restore" test "$(digest_of /tmp/d2.log 4)" != "$want"
check "device DAX: restored" tagmem vm restore dx /cp/dx.save --qmp /tmp/dx.qmp
eq "device DAX: every byte is back" "$(digest_of /tmp/d2.log 4)" "$want"
exec 4>&-

# real QEMU: its RAM a 32 MiB image, two monitors (brokerd's, and the test's)
qimg=/var/lib/tagmem/images/q.img
tagmem image create $qimg --size 32M --tag $Q >/dev/null
tagmem qemu-args --vm qv --ram $Q --no-channel >/dev/null
qemu() { # EXTRA ARGS…: started in the background
	rm -f /tmp/qv.qmp /tmp/qv2.qmp
	# a small translation cache: the default reserves 1 GiB, more than this guest has
	qemu-system-x86_64 -L /usr/share/tagmem-fw -accel tcg,tb-size=32 -M pc -nodefaults \
		-display none -m 32M \
		-object memory-backend-file,id=tm-$Q,mem-path=$qimg,size=33554432,share=on \
		-machine memory-backend=tm-$Q -qmp unix:/tmp/qv.qmp,server=on,wait=off \
		-qmp unix:/tmp/qv2.qmp,server=on,wait=off "$@" >/tmp/qemu.log 2>&1 &
	wait_until 60 test -S /tmp/qv2.qmp && sleep 0.5 && monitor query-status >/dev/null ||
		{ cat /tmp/qemu.log; return 1; }
}
monitor() { vm_standin --ask /tmp/qv2.qmp "$1"; }
status_is() { monitor query-status | grep -q "\"status\": \"$1\""; }
qemu
sleep 2   # its firmware runs: the pages it writes are what the increments hold
out=$(json vm checkpoint qv /cp/qv.0 --qmp /tmp/qv.qmp)
eq "real QEMU: the first checkpoint is a base" "$(echo "$out" | jq -r .kind)" base
sleep 1
out=$(json vm checkpoint qv /cp/qv.1)
echo "TAGMEM-QEMU-CHECKPOINT 1 $(echo "$out" | jq -c '{kind,dirty_bytes,zero_bytes,file_bytes,paused_usec}')"
eq "real QEMU: the second is an increment" "$(echo "$out" | jq -r .kind)" increment
# the pages its firmware wrote; the ones it never touched are not in its page table and count
# as written, but they are zero: in the table, not in the data
check "real QEMU: it writes a part of the memory, not all" \
	test "$(echo "$out" | jq -r '.file_bytes < 4194304 and .dirty_bytes - .zero_bytes < 4194304')" = true
check "real QEMU: still running after a checkpoint" status_is running
monitor stop >/dev/null
out=$(json vm checkpoint qv /cp/qv.2)
eq "real QEMU: an increment of a paused VM" "$(echo "$out" | jq -r '.kind + " " + (.sequence|tostring)')" "increment 2"
want=$(md5sum <$qimg | cut -d' ' -f1)
check "real QEMU: a paused VM stays paused" status_is postmigrate
monitor quit >/dev/null
wait_until 20 sh -c '! pgrep -f "qemu-system-x86_64 -L" >/dev/null'
dd if=/dev/urandom of=$qimg bs=1M count=32 conv=notrunc 2>/dev/null
check "real QEMU: its memory was scribbled over" test "$(md5sum <$qimg | cut -d' ' -f1)" != "$want"
qemu -S -incoming defer
check "real QEMU: restored from the base and its increments" \
	tagmem vm restore qv /cp/qv.0 /cp/qv.1 /cp/qv.2 --qmp /tmp/qv.qmp --paused
eq "real QEMU: its memory is the checkpoint's, byte for byte" "$(md5sum <$qimg | cut -d' ' -f1)" "$want"
check "real QEMU: --paused left it paused" status_is paused
monitor cont >/dev/null
check "real QEMU: it runs on" status_is running
monitor quit >/dev/null
grep -q 'Killed\|Segmentation' /tmp/brokerd.log && bad "brokerd died" "$(tail -n 5 /tmp/brokerd.log)"
exit $CHECKS_FAILED
GUEST
# 1 GiB: the initramfs holds a QEMU and its libraries, and the nested VM runs beside brokerd
run_guest "$G/checks.sh" 380 "${args[@]}" -m 1G,slots=8,maxmem=4G
grep -q 'TAGMEM-CHECK ok real QEMU: it runs on' "$G/report" || fail "the nested QEMU part did not run"
