#!/usr/bin/env bash
# Theory of operation: two hosts share one fabric (tagmem-fmd), and a guest on each finds the
# same shared tag by tag and sees what the other wrote. Each host is its own brokerd with its
# own device numbering (h2 has another shared tag first, so the tag is dax1.0 on h1 and dax1.1
# on h2); each hands the tag to its VM with `tagmem qemu-args`. Guest A (on h1) writes at
# 1 MiB; guest B (on h2) reads that there and writes at 2 MiB; h1 reads B's write through its
# own device. The writes are checked before they are compared, and every step stops at the
# first failed command.
. "$(dirname "$0")/lib.sh"

S=5a5a5a5a-2222-4222-8333-444444444444
S0=5a5a5a5a-0000-4222-8333-444444444444
start_fabric_hosts
tagmem fm add --size 16M --tag $S0 --shared --host h2 >/dev/null
tagmem fm add --size 32M --tag $S --shared --host h1 --host h2 >/dev/null
for h in h1 h2; do
	for _ in $(seq 100); do on $h lookup $S >/dev/null 2>&1 && break; sleep 0.05; done
done
p1=$(on h1 lookup $S)
p2=$(on h2 lookup $S)
[ "$(basename "$p1")" != "$(basename "$p2")" ] ||
	{ echo "FAIL: both hosts name the tag $(basename "$p1")"; exit 1; }
echo "host: the tag is $(basename "$p1") on h1 and $(basename "$p2") on h2"

# guest A, on h1: finds the tag by tag, writes at 1 MiB
mapfile -t args < <(on h1 qemu-args $S --vm a --no-channel)
cat >"$G/checks.sh" <<GUEST
. /checks-lib.sh
S=$S
GUEST
cat >>"$G/checks.sh" <<'GUEST'
udevadm settle
check "udev link for $S" test -b "/dev/disk/by-tag/$S"
dev=$(readlink -f /dev/disk/by-tag/$S)
eq "the whole tag" "$(blockdev --getsize64 "$dev")" $((32 << 20))
check "write at 1M" sh -c "printf FROM-GUEST-A-ON-H1 | dd of=$dev bs=1 seek=$((1 << 20)) conv=notrunc 2>/dev/null"
sync
eq "read back" "$(dd if=$dev bs=1 skip=$((1 << 20)) count=18 2>/dev/null)" FROM-GUEST-A-ON-H1
exit $CHECKS_FAILED
GUEST
run_guest "$G/checks.sh" 240 "${args[@]}"
got=$(dd if="$p2" bs=1 skip=$((1 << 20)) count=18 status=none)
[ "$got" = FROM-GUEST-A-ON-H1 ] || { echo "FAIL: h2's device holds '$got' at 1M"; exit 1; }
echo "host: h2's device holds guest A's write"

# guest B, on h2: finds the same tag by tag, reads A's write, writes at 2 MiB
mapfile -t args < <(on h2 qemu-args $S --vm b --no-channel)
cat >"$G/checks.sh" <<GUEST
. /checks-lib.sh
S=$S
GUEST
cat >>"$G/checks.sh" <<'GUEST'
udevadm settle
check "udev link for $S" test -b "/dev/disk/by-tag/$S"
dev=$(readlink -f /dev/disk/by-tag/$S)
eq "guest A's write, from the other host" \
	"$(dd if=$dev bs=1 skip=$((1 << 20)) count=18 2>/dev/null)" FROM-GUEST-A-ON-H1
check "write at 2M" sh -c "printf FROM-GUEST-B-ON-H2 | dd of=$dev bs=1 seek=$((2 << 20)) conv=notrunc 2>/dev/null"
sync
exit $CHECKS_FAILED
GUEST
run_guest "$G/checks.sh" 240 "${args[@]}"
got=$(dd if="$p1" bs=1 skip=$((2 << 20)) count=18 status=none)
[ "$got" = FROM-GUEST-B-ON-H2 ] || { echo "FAIL: h1's device holds '$got' at 2M"; exit 1; }
echo "host: h1's device holds guest B's write: one tag, the same bytes on both hosts"
