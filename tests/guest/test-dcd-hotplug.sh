#!/usr/bin/env bash
# Theory of operation: tagged capacity of every kind hot-plugged into a running, unmodified
# guest is found by tag. The VM starts with no tags, only brokerd's guest channel (`tagmem
# qemu-args --vm NAME` with no tags). In the guest a hostile client uses the channel first:
# requests for what it may not have, garbage, a flood, a line over the limit (brokerd drops
# the connection and QEMU reconnects); brokerd keeps serving. Then the guest agent
# (tagmem-guestd) runs and the host attaches a private DCD tag, a shared DCD tag and an image.
# DCD tags go label-less: brokerd tells the agent the slot's tag before QEMU adds the device,
# and the agent's slot map names it for udev. For each, the guest waits for
# /dev/disk/by-tag/<uuid>, checks the bytes at offsets 0 and 1 MiB and `tagmem lookup`.
# The host measures attach → link per mechanism (label / channel) with the QMP share. The
# shared tag's bytes are unchanged; when the VM powers off its tags are released.
. "$(dirname "$0")/lib.sh"

P=d0d0d0d0-2222-4222-8333-444444444444  # private DCD tag
S=5a5a5a5a-2222-4222-8333-444444444444  # shared DCD tag
I=1a1a1a1a-2222-4222-8333-444444444444  # image
OTHER=0f0f0f0f-2222-4222-8333-444444444444  # another VM's tag
start_host_brokerd

tagmem fm add --size 32M --tag $P >/dev/null
tagmem fm add --size 32M --tag $S --shared >/dev/null
tagmem fm add --size 32M --tag $OTHER >/dev/null
tagmem image create "$G/state/images/i.img" --size 32M --tag $I >/dev/null
tagmem claim $OTHER --name othervm >/dev/null
pp=$(tagmem lookup $P)
sp=$(tagmem lookup $S)
ip=$G/state/images/i.img
for dev in "$pp" "$sp" "$ip"; do
	for off in 0 256; do
		head -c 4096 /dev/urandom | dd of="$dev" bs=4096 seek=$off conv=notrunc status=none
	done
done
sum_at() { dd if="$1" bs=4096 skip="$2" count=1 status=none | md5sum | cut -d' ' -f1; }
shared_before=$(sha256sum <"$sp")

mapfile -t args < <(tagmem qemu-args --vm hot)
printf '%s\n' "${args[@]}" | grep -q "^virtserialport,.*name=org.tagmem.guest.0$" ||
	{ echo "FAIL: qemu-args gave no guest channel"; printf '%s\n' "${args[@]}"; exit 1; }
chan=$(tagmem --json qemu-args --vm hot | jq -r .channel)
[ "$(stat -c '%a %u' "$chan")" = "600 $(id -u)" ] ||
	{ echo "FAIL: the channel socket is not 0600 and the caller's"; stat "$chan"; exit 1; }

{
	echo ". /checks-lib.sh"
	echo "HOT='$P $S $I' OTHER=$OTHER"
	for t in P S I; do
		dev=${t,,}p
		echo "${t}0=$(sum_at "${!dev}" 0) ${t}1=$(sum_at "${!dev}" 256)"
	done
	echo "SUM_$P=\$P0:\$P1 SUM_$S=\$S0:\$S1 SUM_$I=\$I0:\$I1" | tr '-' '_'
} >"$G/checks.sh"
cat >>"$G/checks.sh" <<'GUEST'
sum_at() { dd if="$1" bs=4096 skip="$2" count=1 2>/dev/null | digest 4096; }
port=/dev/virtio-ports/org.tagmem.guest.0
udevadm settle
check "the channel's port is there" test -c $port
eq "udev would start the agent" "$(udevadm info $port | grep -o 'SYSTEMD_WANTS=.*')" SYSTEMD_WANTS=tagmem-guestd.service
# --- a hostile client on the channel ---
exec 3<>$port
printf '{"id":1,"op":"slots"}\n' >&3
while read -r -t 20 ev <&3 && [ -z "$ev" ]; do :; done   # brokerd's first line is empty
read -r -t 20 reply <&3
eq "first: brokerd's slot map (empty)" "$(echo "$ev" | jq -c .slots)" "[]"
eq "a guest may ask for its slot map" "$(echo "$reply" | jq -c .result.slots)" "[]"
printf 'not json at all\n' >&3
read -r -t 20 reply <&3
eq "garbage is refused" "$(echo "$reply" | jq -r .error.code)" bad_request
printf '{"id":2,"op":"release","tag":"%s"}\n' "$OTHER" >&3
read -r -t 20 reply <&3
eq "the host's ops are not the guest's" "$(echo "$reply" | jq -r .error.code)" unknown_op
i=0
while [ $i -lt 3000 ]; do echo '{"id":3,"op":"hello"}'; i=$((i + 1)); done >&3
head -c 8192 /dev/zero | tr '\0' x >&3
printf '\n' >&3
exec 3>&-
ok "flooded and sent a line over the limit"
# --- the agent; brokerd resends the map when QEMU has reconnected ---
/usr/sbin/tagmem-guestd >/tmp/agent.log 2>&1 &
check "the agent got a slot map" wait_until 30 grep -q 'slot map' /tmp/agent.log
brokerd --backend host --socket /run/tagmem/brokerd.sock --state-dir /var/lib/tagmem 2>/tmp/brokerd.log &
wait_until 20 tagmem status
echo "TAGMEM-READY-FOR-HOTPLUG"
for t in $HOT; do
	if wait_until 120 test -b /dev/disk/by-tag/$t; then
		echo "TAGMEM-SEEN $t"
		ok "hot-plugged $t appears as /dev/disk/by-tag"
	else
		bad "hot-plugged $t never appeared" "$(cat /run/tagmem/guest-slots 2>&1) $(tail -3 /tmp/agent.log)"
		continue
	fi
	dev=$(readlink -f /dev/disk/by-tag/$t)
	eval want=\$SUM_$(echo $t | tr '-' '_')
	eq "$t: host bytes at offsets 0 and 1M" "$(sum_at $dev 0):$(sum_at $dev 256)" "$want"
	check "brokerd in the guest sees $t" wait_until 20 tagmem lookup $t
	eq "tagmem lookup $t = udev link" "$(tagmem lookup $t)" "$dev"
done
if tagmem lookup $OTHER >/dev/null 2>&1; then bad "the other VM's tag is in this guest"
else ok "the other VM's tag is nowhere in this guest"; fi
exit $CHECKS_FAILED
GUEST
start_guest "$G/checks.sh" 400 "${args[@]}" -qmp "unix:$G/vm.qmp,server=on,wait=off"
wait_console '^TAGMEM-READY-FOR-HOTPLUG' 200
tagmem status >/dev/null || { echo "FAIL: brokerd does not answer after the hostile guest"; exit 1; }
grep -q 'Guest channel of VM hot.*a line longer than the limit' "$G/brokerd.log" ||
	{ echo "FAIL: brokerd did not drop the over-long line"; tail "$G/brokerd.log"; exit 1; }
: >"$G/latency"
for t in $P $S $I; do
	t0=$(date +%s%N)
	out=$(tagmem --json attach $t --vm hot --qmp "$G/vm.qmp") || { echo "FAIL: attach $t: $out"; exit 1; }
	wait_console "^TAGMEM-SEEN $t" 150
	t1=$(date +%s%N)
	echo "$t $(((t1 - t0) / 1000)) $(jq -r .qmp_usec <<<"$out") $(jq -r .tag_in_guest <<<"$out")" >>"$G/latency"
done
finish_guest 400
echo "hot-plug latency (attach → /dev/disk/by-tag in the guest, $GUEST_ACCEL):"
while read -r t us qmp how; do
	printf '  %s by %-7s: %7.1f ms total, QMP %5.1f ms (%4.1f%%)\n' "${t:0:8}" "$how" \
		"$(awk -v a="$us" 'BEGIN{print a/1000}')" "$(awk -v a="$qmp" 'BEGIN{print a/1000}')" \
		"$(awk -v a="$qmp" -v b="$us" 'BEGIN{print 100*a/b}')"
done <"$G/latency"
[ "$(awk '{print $4}' "$G/latency" | tr '\n' ' ')" = "channel channel label " ] ||
	{ echo "FAIL: the mechanisms were not channel, channel, label"; exit 1; }
[ "$(sha256sum <"$sp")" = "$shared_before" ] ||
	{ echo "FAIL: the hand-over changed the shared tag's bytes"; exit 1; }
echo "host: the shared tag's bytes are unchanged (sha256)"
for _ in $(seq 1 100); do
	[ "$(tagmem --json list | jq '[.[] | select(.attached == true)] | length')" = 0 ] && break
	sleep 0.05
done
[ "$(tagmem --json list | jq '[.[] | select(.attached == true)] | length')" = 0 ] ||
	{ echo "FAIL: tags still attached after the VM exited"; exit 1; }
echo "host: hot-plugged tags released when the VM exited"
