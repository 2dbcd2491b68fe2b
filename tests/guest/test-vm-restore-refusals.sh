#!/usr/bin/env bash
# Theory of operation: a restore verifies everything before it writes a byte of a VM's
# memory, and a refusal leaves that memory exactly as it was. A real QEMU (no guest needed:
# it stays paused) with its RAM and an nvdimm on tagged images is saved; then the images
# are given new bytes (the VM's memory now), and each bad restore must be refused with the
# images unchanged: one flipped byte in the RAM's region, one in the device state, a file
# cut short, a header for another VM (re-summed, so only the name is wrong), a file other
# users can write, a FIFO (which used to block the VM's monitor for good), and a VM that is
# running instead of waiting with -incoming defer (which used to be overwritten while it
# ran). The device state's temporary has no name anyone could plant a file under.
. "$(dirname "$0")/lib.sh"

R=4e4e0001-1111-4222-8333-444444444444   # the VM's RAM
N=4e4e0002-1111-4222-8333-444444444444   # an nvdimm image
start_host_brokerd
tagmem image create "$G/state/images/ram.img" --size 128M --tag $R >/dev/null
tagmem image create "$G/state/images/n.img" --size 16M --tag $N >/dev/null
mapfile -t args < <(tagmem qemu-args $N --vm rv --ram $R --no-channel)
fail() { echo "FAIL: $*" >&2; tail -n 20 "$G/brokerd.log" >&2; exit 1; }
qemu() { # NAME [ARGS…]: a QEMU of this VM, its QMP socket at $G/NAME.qmp
	local name=$1
	shift
	qemu-system-x86_64 -accel tcg -machine pc,nvdimm=on -m 128M,slots=2,maxmem=1G -display none \
		-nodefaults "${args[@]}" -qmp "unix:$G/$name.qmp,server=on,wait=off" "$@" 2>>"$G/qemu.log" &
	EXTRA_PIDS+=($!)
	QEMU_PID=$!
	until [ -S "$G/$name.qmp" ]; do sleep 0.02; done
}
images_sum() { cat "$G/state/images/ram.img" "$G/state/images/n.img" | sha256sum; }

for img in ram n; do
	dd if=/dev/urandom of="$G/state/images/$img.img" bs=1M count=8 conv=notrunc status=none
done
qemu s1 -S
out=$(tagmem --json vm save rv "$G/good.save" --qmp "$G/s1.qmp" 2>&1) || fail "save: $out"
[ -s "$G/good.save" ] || fail "the save wrote nothing"
[ -z "$(ls -a "$G" | grep '\.dev-')" ] || fail "a named device-state temporary is left"
# the device state's temporary is never a name someone can plant: a link to another file
# under the name brokerd used to open (O_TRUNC, no O_EXCL) receives nothing
: >"$G/planted"
ln "$G/planted" "$G/.good3.save.dev-$HOST_BROKERD_PID"
out=$(tagmem --json vm save rv "$G/good3.save" 2>&1) || fail "save next to a planted name: $out"
[ ! -s "$G/planted" ] || fail "the device state went into a file planted under its temporary name"
rm -f "$G/.good3.save.dev-$HOST_BROKERD_PID" "$G/good3.save"
kill "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true
# the VM's memory now: other bytes than the save's
for img in ram n; do
	dd if=/dev/urandom of="$G/state/images/$img.img" bs=1M count=8 conv=notrunc status=none
done
now=$(images_sum)

python3 - "$G/good.save" "$G" <<'PY'
import os, shutil, struct, sys
src, d = sys.argv[1], sys.argv[2]
hdr = open(src, "rb").read(4096)
n = struct.unpack_from("<I", hdr, 16)[0]
dev_off = struct.unpack_from("<Q", hdr, 88)[0]
ram_off = struct.unpack_from("<Q", hdr, 120 + 24)[0]   # the first backing's region
def variant(name, edit):
    dst = os.path.join(d, name)
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        edit(f)
def flip(off):
    def e(f):
        f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x40]))
    return e
def fletcher64(buf):
    lo = hi = 0
    for (w,) in struct.iter_unpack("<I", buf):
        lo = (lo + w) & 0xFFFFFFFF; hi = (hi + lo) & 0xFFFFFFFF
    return hi << 32 | lo
def rename_vm(f):
    h = bytearray(hdr)
    h[24:88] = b"other-vm".ljust(64, b"\0")
    h[4088:4096] = bytes(8)
    h[4088:4096] = struct.pack("<Q", fletcher64(bytes(h)))
    f.seek(0); f.write(h)
variant("flipped-ram.save", flip(ram_off + 5 * 4096 + 17))
variant("flipped-dev.save", flip(dev_off + 100))
variant("short.save", lambda f: f.truncate(dev_off + 4096 - 8192))
variant("other-vm.save", rename_vm)
variant("writable.save", lambda f: None)
PY
chmod 666 "$G/writable.save"
mkfifo "$G/fifo.save"

qemu r1 -S -incoming defer
declare -A want=([flipped-ram]="checksum" [flipped-dev]="device state" [short]="cut short"
	[other-vm]="save of VM other-vm" [writable]="writable by another" [fifo]="not a regular file")
for v in flipped-ram flipped-dev short other-vm writable fifo; do
	out=$(timeout 30 "$BUILD_DIR/cli/tagmem" vm restore rv "$G/$v.save" --qmp "$G/r1.qmp" 2>&1) &&
		fail "restore of $v.save succeeded"
	grep -q "${want[$v]}" <<<"$out" || fail "$v.save: refused, but not saying '${want[$v]}': $out"
	grep -q "nothing was written" <<<"$out" || fail "$v.save: does not say nothing was written: $out"
	[ "$(images_sum)" = "$now" ] || fail "the refused restore of $v.save wrote into the VM's memory"
	echo "host: refused $v.save, memory untouched: ${out##*: }"
done
kill "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true

# a running VM, started without -incoming: refused, its memory untouched (its RAM is the
# running firmware's to change; the nvdimm nobody but a restore would write)
nsum=$(sha256sum <"$G/state/images/n.img")
qemu run1
out=$(tagmem vm restore rv "$G/good.save" --qmp "$G/run1.qmp" 2>&1) && fail "restore into a running VM succeeded"
grep -q "not waiting for an incoming migration" <<<"$out" || fail "running VM: $out"
[ "$(sha256sum <"$G/state/images/n.img")" = "$nsum" ] || fail "a restore wrote into a running VM's memory"
echo "host: refused a restore into a running VM, memory untouched"
kill "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true

# and the good file restores: the bytes of the save are back
qemu r2 -S -incoming defer
for _ in $(seq 1 100); do
	out=$(tagmem --json vm restore rv "$G/good.save" --qmp "$G/r2.qmp" 2>&1) && break
	grep -q 'another QMP socket\|busy' <<<"$out" || fail "restore: $out"
	sleep 0.1
done
jq -e '.bytes > 0' <<<"$out" >/dev/null || fail "the good restore: $out"
[ "$(images_sum)" != "$now" ] || fail "the good restore changed nothing"
echo "host: the undamaged save restores"
