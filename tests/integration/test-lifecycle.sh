#!/usr/bin/env bash
# Theory of operation: a tag's whole life through the real CLI against a real brokerd on the
# simulated backend. The fabric manager adds capacity; the broker materialises it as a
# device; lookup, claim, a fabric-manager release that must wait for the owner, the owner's
# release that lets it complete. Then untagged and shared capacity, both DCD generations,
# daemonless lookup, and the CLI's answers to bad arguments.
. "$(dirname "$0")/lib.sh"

U=6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10
start_brokerd

# capacity arrives: 3 GiB spans three 1 GiB extents and becomes one device
out=$("$TAGMEM" --json fm add --size 3G --tag "$U")
expect_eq "$(jq -r .state <<<"$out")" ready "state after fm add"
expect_eq "$(jq -r .extents <<<"$out")" 3 "extents of a 3 GiB allocation"
path=$("$TAGMEM" lookup "$U")
[ -f "$path" ] || fail "lookup printed $path, which does not exist"
expect_eq "$(stat -c %s "$path")" $((3 << 30)) "size of the device backing"
expect_eq "$(cat "$T/sim/sys/bus/dax/devices/$(basename "$path")/uuid")" "$U" "device uuid in sysfs"
expect_eq "$("$TAGMEM" --json lookup "$U" | jq -r .source)" brokerd "lookup source"
# tags are case-insensitive on input, canonical lower-case on output
expect_eq "$("$TAGMEM" lookup "${U^^}")" "$path" "upper-case lookup"

# claim, visible in list and show
"$TAGMEM" claim "$U" --name vm1 >/dev/null
expect_eq "$("$TAGMEM" --json list | jq -r '.[0].state')" claimed "state after claim"
expect_eq "$("$TAGMEM" --json show "$U" | jq -r .owner.name)" vm1 "owner name"
expect_eq "$("$TAGMEM" --json show "$U" | jq -r .owner.uid)" "$(id -u)" "owner uid"
expect_rc 1 "$TAGMEM" claim "$U" --name other   # held by vm1
grep -q "claimed by uid" "$T/err" || fail "a second claim did not say who holds the tag"

# the fabric manager wants it back: deferred while claimed, completed by the owner's release
expect_eq "$("$TAGMEM" --json fm release --tag "$U" | jq -r .state)" release_pending "fm release"
expect_eq "$("$TAGMEM" --json show "$U" | jq -r .state)" release_pending "state while pending"
[ -f "$path" ] || fail "the device vanished while its release was only pending"
expect_rc 1 "$TAGMEM" claim "$U"               # no new claims on a leaving tag
expect_eq "$("$TAGMEM" --json release "$U" | jq -r .capacity_released)" true "owner release"
expect_rc 1 "$TAGMEM" lookup "$U"
[ ! -e "$path" ] || fail "the device outlived its released capacity"
[ -z "$(ls "$T/sim/sys/bus/cxl/devices/dax_region0/" | grep extent || true)" ] ||
	fail "extents remain after the release completed"

# an unclaimed tag is released at once
V=$(uuidgen 2>/dev/null || cat /proc/sys/kernel/random/uuid)
"$TAGMEM" fm add --size 64M --tag "$V" >/dev/null
expect_eq "$("$TAGMEM" --json fm release "$V" | jq -r .state)" released "release of an unclaimed tag"

# untagged capacity is counted, not named; shared capacity always gets a tag
"$TAGMEM" fm add --size 1G >/dev/null
expect_eq "$("$TAGMEM" --json status | jq -r .untagged_bytes)" $((1 << 30)) "untagged bytes"
shared=$("$TAGMEM" --json fm add --size 512M --shared)
S=$(jq -r .tag <<<"$shared")
[ "$S" != null ] || fail "shared capacity came without a tag"
expect_eq "$(jq -r .region <<<"$shared")" 1 "shared capacity region"
expect_eq "$("$TAGMEM" --json show "$S" | jq -r .shared)" true "shared flag"

# daemonless: the same answer from the tree, and it says where it came from
spath=$("$TAGMEM" lookup "$S")
stop_brokerd
expect_eq "$("$TAGMEM" lookup "$S" 2>"$T/err")" "$spath" "daemonless lookup"
grep -q "resolved from the sysfs tree" "$T/err" || fail "daemonless lookup did not say so"
expect_eq "$("$TAGMEM" --json lookup "$S" | jq -r .source)" sysfs "daemonless source"
expect_rc 1 "$TAGMEM" lookup "$U"            # no brokerd runs (no socket): the tree is the answer
expect_rc 3 "$TAGMEM" list
expect_rc 1 "$TAGMEM" lookup --no-daemon "$U"

# bad arguments: clear message, exit 2, nothing sent
expect_rc 2 "$TAGMEM" lookup not-a-uuid
grep -q "is not a tag" "$T/err" || fail "bad uuid message"
expect_rc 2 "$TAGMEM" fm add --size 3M
expect_rc 2 "$TAGMEM" fm add --size -1G
expect_rc 2 "$TAGMEM" lookup
expect_rc 2 "$TAGMEM" frobnicate
expect_rc 2 "$BROKERD" --sim-dcd v12

# the older DCD generation names the extent attribute "tag": the broker reads both
rm -rf "$T/sim" "$T/state"
start_brokerd --sim-dcd v8
"$TAGMEM" fm add --size 2M --tag "$U" >/dev/null
[ -f "$T/sim/sys/bus/cxl/devices/dax_region0/extent0.0/tag" ] || fail "legacy attribute not written"
"$TAGMEM" lookup "$U" >/dev/null || fail "legacy-generation tag not found"
echo "lifecycle: ok"
