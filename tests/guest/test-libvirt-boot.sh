#!/usr/bin/env bash
# Theory of operation: a guest started by libvirt finds its memory by tag, as one started
# with qemu-args does. On the host, brokerd has an image and simulated DCD capacity;
# `tagmem libvirt-xml` gives the domain's XML for both, merged into a domain that boots
# Debian's kernel under TCG. A real libvirtd (run privately, tagmem's hook installed) starts
# it with `virsh create`: the hook claims the tags, and in the guest real udevd makes
# /dev/disk/by-tag/<uuid> for the labelled image and for the label-less DCD tag (named by
# the SMBIOS string libvirt passes). A third tag, an image, is hot-plugged into the running
# domain with `tagmem attach --libvirt`, and its link appears in the guest. When the guest
# powers off, the hook releases all three claims.
# The figure: the time from `virsh create` to the guest's by-tag links, against the same
# guest started by hand with `qemu-args` (both under TCG, in the same run).
. "$(dirname "$0")/lib.sh"

LIBVIRTD=$(command -v libvirtd || echo /usr/sbin/libvirtd)
[ -x "$LIBVIRTD" ] && command -v virsh >/dev/null ||
	guest_skip "libvirtd or virsh is missing (tests/deps.sh all installs them)"
[ "$(id -u)" = 0 ] || guest_skip "a private libvirtd needs root (a mount namespace)"

A=1b0a0001-1111-4222-8333-444444444444   # an image: its label names it
D=1b0a0002-1111-4222-8333-444444444444   # DCD capacity: no label, SMBIOS names its slot
H=1b0a0003-1111-4222-8333-444444444444   # an image hot-plugged into the running domain
start_host_brokerd --guest-dir "$G/guests"
tagmem image create "$G/state/images/a.img" --size 32M --tag $A >/dev/null
tagmem image create "$G/state/images/h.img" --size 32M --tag $H >/dev/null
tagmem fm add --size 64M --tag $D >/dev/null
for _ in $(seq 100); do tagmem lookup $D >/dev/null 2>&1 && break; sleep 0.05; done
fail() { echo "FAIL: $*" >&2; [ -f "$G/lv/libvirtd.log" ] && tail -n 20 "$G/lv/libvirtd.log" >&2; exit 1; }
state() { tagmem --json show "$1" | jq -r '.state + " " + (.owner.name // "-")'; }

cat >"$G/checks.sh" <<GUEST
. /checks-lib.sh
A=$A
D=$D
H=$H
GUEST
cat >>"$G/checks.sh" <<'GUEST'
udevadm settle
check "udev link for the image $A" test -b /dev/disk/by-tag/$A
check "udev link for the DCD tag $D" test -e /dev/disk/by-tag/$D
echo "TAGMEM-LINKS-UP"
eq "the image's size in the guest" "$(blockdev --getsize64 "$(readlink -f /dev/disk/by-tag/$A)")" $((32 << 20))
if grep -q tagmem.hotplug=1 /proc/cmdline; then
	echo "TAGMEM-READY-FOR-HOTPLUG"
	check "udev link for the hot-plugged image $H" wait_until 120 test -b /dev/disk/by-tag/$H
fi
exit $CHECKS_FAILED
GUEST
"$top/tests/guest/mkinitramfs.sh" "$G/initrd.cpio.gz" "$BUILD_DIR" "$G/checks.sh"

# ms_until_links LOG PID: milliseconds from now until LOG shows the guest's links (or fail)
links_ms() {
	local log=$1 t0=$2 end=$(($(date +%s) + 300))
	while [ "$(date +%s)" -lt "$end" ]; do
		if grep -q TAGMEM-LINKS-UP "$log" 2>/dev/null; then
			echo $((($(date +%s%N) - t0) / 1000000))
			return 0
		fi
		sleep 0.02
	done
	tail -n 30 "$log" >&2
	fail "the guest never made its by-tag links"
}

# the baseline: the same guest, started by hand with qemu-args
mapfile -t args < <(tagmem qemu-args $A $D --vm byhand)
t0=$(date +%s%N)
timeout 300 qemu-system-x86_64 -accel tcg -machine pc,nvdimm=on -m 512M,slots=8,maxmem=4G \
	-smp 1 -nographic -no-reboot -kernel "$KERNEL" -initrd "$G/initrd.cpio.gz" \
	-append "console=ttyS0 panic=-1 quiet" "${args[@]}" >"$G/byhand.log" 2>&1 &
byhand=$!
EXTRA_PIDS+=($byhand)
hand_ms=$(links_ms "$G/byhand.log" "$t0")
wait $byhand || true
grep -q '^TAGMEM-GUEST-DONE rc=0' <(tr -d '\r' <"$G/byhand.log") || fail "the qemu-args guest failed"
tagmem release $A >/dev/null
tagmem release $D >/dev/null

# the domain: libvirt-xml's pieces merged into one that boots the tests' kernel
pieces=$(tagmem libvirt-xml $A $D --vm lvboot)
tagmem release $A >/dev/null   # defined now, started later: the hook claims at the start
tagmem release $D >/dev/null
python3 - "$G/lvboot.xml" "$KERNEL" "$G/initrd.cpio.gz" "$G/console.log" <<PY
import sys, xml.etree.ElementTree as ET
out, kernel, initrd, console = sys.argv[1:]
dom = ET.fromstring(f"""<domain type='qemu'><name>lvboot</name>
  <memory unit='MiB'>512</memory><maxMemory slots='8' unit='GiB'>4</maxMemory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd><cmdline>console=ttyS0 panic=-1 quiet tagmem.hotplug=1</cmdline></os>
  <features><acpi/></features>
  <cpu><numa><cell id='0' cpus='0' memory='512' unit='MiB'/></numa></cpu>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'><source path='{console}'/><target port='0'/></serial></devices>
</domain>""")
pieces = ET.fromstring("""$pieces""")
for child in pieces:
    mine = dom.find(child.tag)
    if mine is not None and child.tag in ("devices", "os", "metadata"):
        mine.extend(list(child))
    else:
        dom.append(child)
open(out, "w").write(ET.tostring(dom, encoding="unicode"))
PY

# a private libvirtd: its configuration, hooks and state are this test's (a mount namespace)
L=$G/lv
mkdir -p "$L"
printf '#!/bin/sh\nexec env TAGMEM_SOCKET=%s %s libvirt-hook "$@"\n' "$TAGMEM_SOCKET" \
	"$BUILD_DIR/cli/tagmem" >"$G/hook"
"$top/tests/integration/private-libvirtd.sh" "$L" "$G/hook" >"$L/libvirtd.log" 2>&1 &
EXTRA_PIDS+=($!)
virsh() { command virsh -c "qemu:///system?socket=$L/run/libvirt-sock" "$@"; }
# libvirtd leaves its domains running when it stops: the test's goes first
trap 'virsh destroy lvboot >/dev/null 2>&1 || true; guest_cleanup' EXIT
for _ in $(seq 200); do virsh version >/dev/null 2>&1 && break; sleep 0.05; done
virsh version >/dev/null 2>&1 || fail "libvirtd never answered"

t0=$(date +%s%N)
virsh create "$G/lvboot.xml" >"$G/virsh.out" 2>&1 || fail "virsh create: $(cat "$G/virsh.out")"
[ "$(state $A)" = "claimed lvboot" ] && [ "$(state $D)" = "claimed lvboot" ] ||
	fail "the hook did not claim the tags: $(state $A), $(state $D)"
lv_ms=$(links_ms "$G/console.log" "$t0")
for _ in $(seq 3000); do grep -q TAGMEM-READY-FOR-HOTPLUG "$G/console.log" && break; sleep 0.02; done
tagmem attach $H --libvirt lvboot --connect "qemu:///system?socket=$L/run/libvirt-sock" \
	>"$G/attach.out" 2>&1 || fail "tagmem attach --libvirt: $(cat "$G/attach.out")"
grep -q "Attached tag $H to domain lvboot at nvdimm slot 2" "$G/attach.out" ||
	fail "tagmem attach --libvirt said: $(cat "$G/attach.out")"
[ "$(state $H)" = "claimed lvboot" ] || fail "the hot-plugged tag is $(state $H)"
# the guest powers off when its checks are done; the domain goes, and the hook releases
# (grep without -q: an early exit would fail the pipeline, pipefail, and end the wait)
running() { virsh list --name | grep -x lvboot >/dev/null; }
for _ in $(seq 600); do running || break; sleep 0.1; done
running && fail "the guest never powered off"
tr -d '\r' <"$G/console.log" | grep -E '^TAGMEM-' | tee "$G/report"
grep -q '^TAGMEM-CHECK fail' "$G/report" && fail "a guest check failed"
grep -q '^TAGMEM-GUEST-DONE rc=0$' "$G/report" || fail "the guest did not finish its checks"
for _ in $(seq 100); do [ "$(state $A)" = "ready -" ] && break; sleep 0.05; done
[ "$(state $A)" = "ready -" ] && [ "$(state $D)" = "ready -" ] && [ "$(state $H)" = "ready -" ] ||
	fail "the powered-off domain's claims stayed: $(state $A), $(state $D), $(state $H)"
echo "libvirt: the guest found its two tags by tag, and the one hot-plugged through" \
	"tagmem attach --libvirt; its power-off released all three"
echo "figures: virsh create to the guest's by-tag links ${lv_ms} ms; qemu-args by hand ${hand_ms} ms" \
	"(libvirt and its hook: $((lv_ms - hand_ms)) ms more, TCG)"
