#!/usr/bin/env bash
# Theory of operation: a tag reaches an unmodified guest as an NVDIMM namespace label uuid.
# The guest (Debian's kernel, real systemd-udevd with our rules) gets two labelled nvdimms and
# one label-less one. It labels them with ndctl (raw and devdax namespaces named "tagmem…",
# plus one raw namespace named otherwise), then checks: udev made /dev/disk/by-tag/<uuid> and
# /dev/dax/by-tag/<uuid> pointing at the right devices and nothing for the label-less device;
# brokerd (host backend) lists the tags ready with the sizes the kernel and libdaxctl state,
# picks up a namespace created while it runs (udev monitor), follows its --nd-namespaces
# policy, and `tagmem lookup` prints the symlink's target, with and without brokerd.
. "$(dirname "$0")/lib.sh"

# QEMU 7.2 exposes size - label_size of a file backend (page-aligned) and places the next
# nvdimm right after it; devdax needs 16 MiB-aligned regions. So each labelled backend is a
# multiple of 16 MiB plus the 128 KiB label area (measured: an 80 MiB backend gave an
# 83,755,008-byte region and a misaligned neighbour).
truncate -s $(((64 << 20) + (128 << 10))) "$G/nv0.img" "$G/nv1.img"
truncate -s 64M "$G/nv2.img"                # label-less
cat >"$G/checks.sh" <<'GUEST'
. /checks-lib.sh
U1=11111111-2222-4333-8444-555555555555
U2=66666666-7777-4888-9999-aaaaaaaaaaaa
U3=0f0e0d0c-0b0a-4909-8807-060504030201

ndctl disable-region all >/dev/null 2>&1
ndctl init-labels all >/dev/null 2>&1
ndctl enable-region all >/dev/null 2>&1
set --
for r in /sys/bus/nd/devices/region*; do
	if [ "$(cat "$r/available_size")" -gt 0 ]; then set -- "$@" "$(basename "$r")"; fi
done
eq "two labelled regions" "$#" 2
RA=$1 RB=$2
check "create raw namespace" ndctl create-namespace -r "$RA" -m raw -s 32M -u "$U1" -n tagmem-raw
check "create other namespace" ndctl create-namespace -r "$RA" -m raw -s 16M -u "$U3" -n other
udevadm settle

# udev: by-tag links for labelled namespaces, none for the label-less device
pmem=$(readlink -f "/dev/disk/by-tag/$U1")
case "$pmem" in /dev/pmem*) ok "raw link is a pmem device" ;; *) bad "raw link" "$pmem" ;; esac
ns=$(basename "$(readlink -f "/sys/class/block/${pmem#/dev/}/device")")
eq "raw link names the namespace with that uuid" "$(cat /sys/bus/nd/devices/$ns/uuid)" "$U1"
# one rule for udev, brokerd and daemonless lookup: the namespace named "other" is not
# tagmem's under the default policy, so it gets no link either
eq "by-tag disk links (label-less and other-named devices have none)" "$(ls /dev/disk/by-tag | tr '\n' ' ')" "$U1 "
for b in /sys/class/block/pmem*; do
	n=$(basename "$b")
	[ -e "$(readlink -f "$b/device")/uuid" ] && continue
	if ls -l /dev/disk/by-tag 2>/dev/null | grep -q "$n\$"; then bad "no link for label-less $n"; else ok "no link for label-less $n"; fi
done

# brokerd on the host backend: tags ready with the kernel's sizes
brokerd --backend host --socket /run/tagmem/brokerd.sock --state-dir /var/lib/tagmem 2>/tmp/brokerd.log &
BROKERD=$!
check "brokerd serves" wait_until 20 tagmem status
eq "brokerd: raw tag ready" "$(tagmem --json show $U1 | jq -r .state)" ready
eq "brokerd: raw size = block device size" "$(tagmem --json show $U1 | jq -r .size)" "$(blockdev --getsize64 "$pmem")"
eq "tagmem lookup = udev link (raw)" "$(tagmem lookup $U1)" "$pmem"
eq "policy: namespace not named tagmem is not brokered" "$(tagmem lookup $U3 >/dev/null 2>&1; echo $?)" 1

# hot-plug while brokerd runs: a devdax namespace appears through the udev monitor
check "create devdax namespace" ndctl create-namespace -r "$RB" -m devdax -s 32M -u "$U2" -n tagmem-dax
udevadm settle
dax=$(readlink -f "/dev/dax/by-tag/$U2")
case "$dax" in /dev/dax*) ok "devdax link is a dax device" ;; *) bad "devdax link" "$dax" ;; esac
check "brokerd sees the new devdax tag" wait_until 20 tagmem lookup "$U2"
eq "tagmem lookup = udev link (devdax)" "$(tagmem lookup $U2)" "$dax"
eq "brokerd: devdax size = libdaxctl size" "$(tagmem --json show $U2 | jq -r .size)" "$(daxctl list -d "${dax#/dev/}" | jq -r '.[0].size')"
check "claim in the guest" tagmem claim "$U2" --name guest-app
eq "claimed" "$(tagmem --json show $U2 | jq -r .owner.name)" guest-app

# without brokerd, lookup reads sysfs and agrees (the same namespace policy)
kill $BROKERD
wait $BROKERD 2>/dev/null || true   # it ends on the signal
eq "daemonless lookup (raw)" "$(tagmem lookup $U1 2>/dev/null)" "$pmem"
eq "daemonless lookup (devdax)" "$(tagmem lookup $U2 2>/dev/null)" "$dax"
eq "daemonless lookup (other): not found (1), as brokerd and udev say; no brokerd runs, so not unreachable (3)" "$(tagmem lookup $U3 >/dev/null 2>&1 && echo 0 || echo $?)" 1
grep -q "No CXL bus" /tmp/brokerd.log && ok "missing CXL reported, not fatal" || bad "no CXL log line" "$(cat /tmp/brokerd.log | tr '\n' ' ')"
exit $CHECKS_FAILED
GUEST
mapfile -t dev < <(nvdimm_args 0 "$G/nv0.img" 0; nvdimm_args 1 "$G/nv1.img" 1; nvdimm_args 2 "$G/nv2.img" 2 none)
run_guest "$G/checks.sh" 240 "${dev[@]}"
