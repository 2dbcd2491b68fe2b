#!/usr/bin/env bash
# Theory of operation: guest-chosen eviction end to end in a real guest. The guest writes all
# of its devdax image through its mapping, then a program marks ranges it can refill cold with
# `tagmem --guest hint` (kept by the guest agent). The host evicts the image to a budget:
# brokerd asks the guest over the channel, the agent answers with the cold ranges, and they
# go first: the reply says chosen_by guest, the cold ranges are out of the host's page cache,
# the hot ones are still in it. Then the guest reads every byte it wrote back, unchanged
# (evicted pages were written back first). A hot mark takes a range out of the cold set.
. "$(dirname "$0")/lib.sh"

T=7e7e7e7e-2222-4222-8333-444444444444
MB=$((1 << 20))
start_host_brokerd --dirty-budget 0 --pressure none
tagmem image create "$G/state/images/r.img" --size 64M --tag $T --layout devdax >/dev/null
mapfile -t args < <(tagmem qemu-args $T --vm rc)
cat >"$G/checks.sh" <<GUEST
. /checks-lib.sh
T=$T MB=$MB
GUEST
cat >>"$G/checks.sh" <<'GUEST'
udevadm settle
/usr/sbin/tagmem-guestd >/tmp/agent.log 2>&1 &
check "the agent is up" wait_until 30 test -S /run/tagmem/guest.sock
dev=$(readlink -f /dev/dax/by-tag/$T)
random_file /tmp/all $((64 * MB))
dax_peek $dev 0 $((64 * MB)) -w </tmp/all
want=$(file_digest /tmp/all $((64 * MB)))
rm /tmp/all
# the upper 32 MiB is a cache this program can refill; then it changes its mind about 4 MiB
check "mark [32M, 64M) cold" tagmem --guest hint $T --offset 32M --length 32M --cold
out=$(tagmem --guest --json hint $T --offset 40M --length 4M --hot)
eq "a hot mark takes 4 MiB out of the cold set" "$(echo "$out" | jq .cold_bytes)" $((28 * MB))
out=$(tagmem --guest hint $T --offset 0 --length 0 --cold 2>&1) && st=0 || st=$?
eq "an empty range is a usage error" "$st" 2
echo "TAGMEM-MARKED"
check "the host evicted (the agent answered)" wait_until 120 grep -q 'offered 2 cold' /tmp/agent.log
# reading the image back refaults it into the host's cache: not before the host has measured,
# which it says by asking a second time
answered_twice() { [ "$(grep -c 'offered 2 cold' /tmp/agent.log)" -ge 2 ]; }
check "the host measured (asked again)" wait_until 120 answered_twice
eq "every byte written is still there" "$(dax_peek $dev 0 $((64 * MB)) | digest $((64 * MB)))" "$want"
exit $CHECKS_FAILED
GUEST
start_guest "$G/checks.sh" 300 "${args[@]}"
wait_console '^TAGMEM-MARKED' 200
out=$(tagmem --json evict $T --to 24M)
[ "$(jq -r .chosen_by <<<"$out")" = guest ] || { echo "FAIL: evict: $out"; exit 1; }
img=$G/state/images/r.img
cs() { python3 -c "import sys; sys.path.insert(0, '$top/tests/integration'); from pagecache import cachestat; print(cachestat('$img', $1, $2)[0])"; }
hot=$(cs $((16 * MB)) $((32 * MB))) cold=$(cs $((48 * MB)) $((8 * MB))) keep=$(cs $((56 * MB)) $((4 * MB)))
cold2=$(cs $((60 * MB)) $((20 * MB)))
echo "host: after eviction to 24 MiB: hot [0,32M) $((hot >> 20)) MiB cached, cold [32M,40M) $((cold >> 20)) MiB and [44M,64M) $((cold2 >> 20)) MiB, marked hot again [40M,44M) $((keep >> 20)) MiB"
[ "$cold" = 0 ] && [ "$cold2" = 0 ] || { echo "FAIL: a cold range the guest offered is still cached"; exit 1; }
# The hot ranges hold 36 MiB and the budget is 24 MiB, so 12 MiB (less whatever of the
# header and label tail stays cached) must come out of them once the cold ranges are gone.
# What must hold is that the host stopped at the budget, not below it.
whole=$(cs 0 0)
echo "host: the whole file has $((whole >> 10)) KiB cached"
[ "$whole" -ge $((23 * MB)) ] ||
	{ echo "FAIL: the eviction went below the budget, into the guest's hot ranges"; exit 1; }
[ "$keep" -ge $((3 * MB)) ] || { echo "FAIL: the range marked hot again was evicted"; exit 1; }
tagmem --json evict $T --to 24M >/dev/null # tells the guest the measuring is done
finish_guest 300
