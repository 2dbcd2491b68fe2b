#!/usr/bin/env bash
# Theory of operation: a live migration between two hosts of one simulated fabric, with a real
# guest kernel, real QEMU and a real etcd. The VM's RAM is a shared tag and it has a shared
# nvdimm tag; each host has its own brokerd and tagmem-clusterd. The guest writes known bytes
# across its RAM (a 200 MiB tmpfs file) and into the nvdimm, checks what it wrote, and waits.
# The destination QEMU starts on h2 with `tagmem vm migrate-args` (h2's device names, -S
# -incoming defer); `tagmem vm migrate` moves the VM with only its device state sent. The host
# then writes GO into the shared nvdimm through h2's device; the guest, now running on h2,
# reads it there, finds every byte it wrote before the migration and keeps running (it writes
# and reads a new file). Afterwards the claims are h2's in etcd (claims and directory) and in
# h2's registry, and none is left on h1.
. "$(dirname "$0")/lib.sh"
command -v etcd >/dev/null || guest_skip "etcd is missing (tests/deps.sh all installs etcd-server)"

R=3a3a0001-1111-4222-8333-444444444444   # the VM's RAM: shared capacity
N=3a3a0002-1111-4222-8333-444444444444   # an nvdimm: shared capacity
fail() { echo "FAIL: $*" >&2; tail -n 20 "$G"/h1.log "$G"/h2.log >&2; tail -n 20 "$G/console.log" >&2; exit 1; }

# one etcd member on loopback, its data in memory
read -r cport pport < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
etcd_dir=$(mktemp -d /dev/shm/tagmem-etcd.XXXXXX)
etcd --name m --data-dir "$etcd_dir" --listen-client-urls "http://127.0.0.1:$cport" \
	--advertise-client-urls "http://127.0.0.1:$cport" --listen-peer-urls "http://127.0.0.1:$pport" \
	--initial-advertise-peer-urls "http://127.0.0.1:$pport" \
	--initial-cluster "m=http://127.0.0.1:$pport" >"$G/etcd.log" 2>&1 &
EXTRA_PIDS+=($!)
trap 'rm -rf "$etcd_dir"; guest_cleanup' EXIT
ETCD=http://127.0.0.1:$cport
until ETCDCTL_API=3 etcdctl --endpoints "$ETCD" put /probe x >/dev/null 2>&1; do sleep 0.1; done

start_fabric_hosts "$ETCD"
tagmem fm add --size 512M --tag $R --shared --host h1 --host h2 >/dev/null
tagmem fm add --size 32M --tag $N --shared --host h1 --host h2 >/dev/null
for h in h1 h2; do
	for t in $R $N; do
		for _ in $(seq 100); do on $h lookup $t >/dev/null 2>&1 && break; sleep 0.05; done
	done
done
mapfile -t args < <(on h1 qemu-args $N --vm mig --ram $R --no-channel)

cat >"$G/checks.sh" <<GUEST
. /checks-lib.sh
N=$N
GUEST
cat >>"$G/checks.sh" <<'GUEST'
udevadm settle
check "udev link for $N" test -b "/dev/disk/by-tag/$N"
dev=$(readlink -f /dev/disk/by-tag/$N)
mkdir -p /mnt/ram && mount -t tmpfs -o size=300M tmpfs /mnt/ram
random_file /mnt/ram/pattern $((200 << 20))       # in guest RAM: the shared tag
ram=$(file_digest /mnt/ram/pattern $((200 << 20)))
random_file /tmp/four $((4 << 20))
check "write 4 MiB into the nvdimm" dd if=/tmp/four of="$dev" bs=1M seek=1 conv=notrunc
sync
four() { dd if="$dev" bs=1M skip=1 count=4 2>/dev/null | digest $((4 << 20)); }
n=$(four)
eq "the nvdimm holds what was written" "$n" "$(file_digest /tmp/four $((4 << 20)))"
echo "TAGMEM-MIGRATE-ME"
# the host writes GO at 8 MiB of the nvdimm once the VM runs on h2, through h2's device
go() { echo 3 >/proc/sys/vm/drop_caches; dd if="$dev" bs=1 skip=$((8 << 20)) count=2 2>/dev/null; }
until [ "$(go)" = GO ]; do sleep 0.2; done
echo "TAGMEM-ON-H2"
eq "RAM: every byte of 200 MiB is there after the migration" \
	"$(file_digest /mnt/ram/pattern $((200 << 20)))" "$ram"
eq "the nvdimm's bytes are there after the migration" "$(four)" "$n"
check "the guest keeps running on h2: it writes and reads a new file" \
	sh -c 'dd if=/tmp/four of=/mnt/ram/after bs=1M 2>/dev/null && cmp /tmp/four /mnt/ram/after'
exit $CHECKS_FAILED
GUEST

GUEST_MEM_SLOTS=4 GUEST_MAXMEM=2G
start_guest "$G/checks.sh" 400 "${args[@]}" -m 512M,slots=4,maxmem=2G \
	-qmp "unix:$G/src.qmp,server=on,wait=off"
wait_console '^TAGMEM-MIGRATE-ME' 300
grep -q 'TAGMEM-CHECK fail' "$G/console.log" && fail "a check failed before the migration"
# the destination QEMU on h2: the same machine, h2's names for the tags, waiting
mapfile -t dargs < <(on h1 vm migrate-args mig --to h2 --to-socket "$G/h2.sock" --qmp "$G/src.qmp")
[ "${#dargs[@]}" -gt 2 ] && [ "${dargs[-1]}" = defer ] || fail "migrate-args: ${dargs[*]}"
timeout 400 qemu-system-x86_64 -accel "$GUEST_ACCEL" -machine pc,nvdimm=on \
	-m 512M,slots=4,maxmem=2G -smp 1 -nographic -no-reboot \
	-kernel "$KERNEL" -initrd "$G/initrd.cpio.gz" -append "console=ttyS0 panic=-1 quiet" \
	"${dargs[@]}" -qmp "unix:$G/dst.qmp,server=on,wait=off" >>"$G/console.log" 2>&1 &
DST_PID=$!
EXTRA_PIDS+=($DST_PID)
until [ -S "$G/dst.qmp" ]; do sleep 0.05; done
out=$(on h1 --json vm migrate mig --to h2 --to-socket "$G/h2.sock" --uri "unix:$G/mig.sock" \
	--qmp "$G/src.qmp" --to-qmp "$G/dst.qmp") || fail "migrate: $out"
echo "host: migrated: $(jq -c '{total_ms, qemu_downtime_ms, pause_ms, transferred_bytes}' <<<"$out")"
bytes=$(jq -r .transferred_bytes <<<"$out")
[ "$bytes" -gt 0 ] && [ "$bytes" -lt $((16 << 20)) ] ||
	fail "$bytes bytes sent for a 512 MiB VM: the RAM was not left out"
# GO, through h2's own device of the shared nvdimm
printf GO | dd of="$(on h2 lookup $N)" bs=1 seek=$((8 << 20)) conv=notrunc status=none
# the source QEMU quit: the rest of the report comes from h2's QEMU
wait "$GUEST_PID" 2>/dev/null || true
GUEST_PID=$DST_PID
wait_console '^TAGMEM-ON-H2' 300
finish_guest 400

# one owner: h2, in its registry and in etcd; nothing on h1
h2c=$(on h2 --json list | jq -r '[.[] | select(.owner.name == "mig" and (.incoming | not)) | .tag] | sort | join(" ")')
[ "$h2c" = "$(printf '%s\n' $R $N | sort | paste -sd' ')" ] || fail "h2 holds: '$h2c'"
h1c=$(on h1 --json list | jq -r '[.[] | select(.owner)] | length')
[ "$h1c" = 0 ] || fail "h1 still holds $h1c claim(s)"
for t in $R $N; do
	host=$(ETCDCTL_API=3 etcdctl --endpoints "$ETCD" get --print-value-only "/tagmem/v1/claims/$t" | jq -r .host)
	[ "$host" = h2 ] || fail "etcd: the claim of $t is '$host's"
done
for _ in $(seq 100); do
	owner=$(ETCDCTL_API=3 etcdctl --endpoints "$ETCD" get --print-value-only "/tagmem/v1/hosts/h2/tags/$R" | jq -r '.owner.name // empty')
	[ "$owner" = mig ] && break
	sleep 0.1
done
[ "$owner" = mig ] || fail "the directory does not show h2's claim of the RAM"
echo "host: the claims are h2's in etcd and in h2's registry; none is left on h1"
