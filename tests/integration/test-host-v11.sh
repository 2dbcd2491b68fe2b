#!/usr/bin/env bash
# Theory of operation: brokerd's host backend on a tree laid out as the DCD v11 kernel lays
# it out (tests/unit/dcd_v11.h names the source of each attribute): partition dynamic_ram_1,
# extent uuids hidden when untagged, dax devices that list a mapping per extent and read the
# null UUID when they hold an untagged extent or nothing. Trace records are printed with v11's
# own format string (drivers/cxl/core/trace.h: CXL_EVT_TP_printk, then cxl_dynamic_capacity's
# fields). brokerd follows records the way it follows the kernel: each one makes it rescan,
# reading only extents it has not read, so an extent the kernel re-made under an old id must
# still be read again.
. "$(dirname "$0")/lib.sh"
HELPER=$(dirname "$TAGMEM")/../udev/tagmem-id

A=aaaaaaaa-0000-4000-8000-0000000000a1
B=bbbbbbbb-0000-4000-8000-0000000000b2
C=cccccccc-0000-4000-8000-0000000000c3
NULL=00000000-0000-0000-0000-000000000000
F=$T/fix
R=sys/devices/platform/region0/dax_region0
put() { mkdir -p "$(dirname "$F/$1")"; printf '%s\n' "$2" >"$F/$1"; }
extent() { # ID OFFSET LENGTH [TAG]
	put $R/extent0.$1/offset "$2"; put $R/extent0.$1/length "$3"
	[ -z "${4:-}" ] || put $R/extent0.$1/uuid "$4"
}
device() { # ID UUID START:LENGTH...
	local id=$1 uuid=$2 i=0 size=0 r s l
	shift 2
	for r in "$@"; do
		s=${r%:*} l=${r#*:}
		put $R/dax0.$id/mapping$i/start "$(printf '%#x' "$s")"
		put $R/dax0.$id/mapping$i/end "$(printf '%#x' $((s + l - 1)))"
		put $R/dax0.$id/mapping$i/page_offset "$(printf '%#x' $((size / 4096)))"
		size=$((size + l)) i=$((i + 1))
	done
	put $R/dax0.$id/size $size
	put $R/dax0.$id/uuid "$uuid"
	[ -e "$F/sys/bus/dax/devices/dax0.$id" ] ||
		ln -s ../../../devices/platform/region0/dax_region0/dax0.$id "$F/sys/bus/dax/devices/dax0.$id"
}
# v11_record TYPE DPA LENGTH TAG SEQ: one trace_pipe line, as v11 prints it
v11_record() {
	local names=("Add capacity" "Release capacity" "Forced capacity release" "Region Configuration Updated")
	printf "     kworker/u8:3-120     [001] d..1. 1043.101234: cxl_dynamic_capacity: memdev=mem0 host=0000:0d:00.0 serial=0 log=Informational : time=1043101234 uuid=ca95afa7-f183-4018-8c2f-95268e101a2a len=128 flags='' handle=1 related_handle=0 maint_op_class=0 maint_op_sub_class=0 ld_id=0 head_id=0 : event_type='%s' host_id='0' updated_region_index='255' starting_dpa=%x length=%x tag=%s shared_extent_sequence=%d\n" \
		"${names[$1]}" "$2" "$3" "$4" "$5"
}

mkdir -p "$F/sys/bus/cxl/devices" "$F/sys/bus/dax/devices" "$F/dev"
put sys/devices/platform/region0/mode dynamic_ram_1
put $R/dax_region/seed dax0.3
ln -s ../../../devices/platform/region0/dax_region0 "$F/sys/bus/cxl/devices/dax_region0"
extent 0 0x0 0x10000000 $A
extent 1 0x10000000 0x200000            # untagged: no uuid attribute
extent 2 0x20000000 0x8000000 $A
device 1 $A 0:0x10000000 0x20000000:0x8000000
device 2 $NULL 0x10000000:0x200000     # "0" claimed the untagged extent
device 3 $NULL                          # the seed

mkfifo "$T/trace"
start_brokerd --backend host --host-root "$F" --trace-pipe "$T/trace"
exec 7>"$T/trace"
expect_eq "$("$TAGMEM" --json show $A | jq -r '[.state, .size, .extents, .device] | join(" ")')" \
	"ready 402653184 2 dax0.1" "a tag of two extents and its device"
expect_eq "$("$TAGMEM" --json list | jq length)" 1 "untagged capacity names no tag"
# the udev helper, from the devices' own attributes
expect_eq "$("$HELPER" --root "$F" /devices/platform/region0/dax_region0/dax0.1 | sed -n 's/^TAGMEM_TAG=//p')" \
	"$A" "helper: the claimed device"
expect_eq "$("$HELPER" --root "$F" /devices/platform/region0/dax_region0/dax0.2)" "" \
	"helper: an untagged claim"
expect_eq "$("$HELPER" --root "$F" /devices/platform/region0/dax_region0/dax0.3)" "" "helper: the seed"

# Add capacity: tag B's extent surfaces, its record arrives; brokerd claims it on the seed
extent 3 0x30000000 0x400000 $B
v11_record 0 0x30000000 0x400000 $B 0 >&7
wait_for '[ "$(cat "$F/$R/dax0.3/uuid")" = "$B" ]'
# ...and the kernel makes the device and the next seed; a record of the next event follows
device 3 $B 0x30000000:0x400000
put $R/dax_region/seed dax0.4
device 4 $NULL
v11_record 3 0 0 $NULL 0 >&7
wait_for '[ "$("$TAGMEM" --json show $B | jq -r .device)" = dax0.3 ]'

# Release: tag A's extents and device go; the record of one extent releases the group
rm -rf "$F/$R/extent0.0" "$F/$R/extent0.2" "$F/$R/dax0.1" "$F/sys/bus/dax/devices/dax0.1"
v11_record 1 0x0 0x10000000 $A 0 >&7
wait_for '! "$TAGMEM" show $A'

# The kernel reuses extent ids: the untagged extent0.1 goes and a tagged extent takes its id,
# between two records. Only its inode tells the rescan that it is another extent.
extent 9 0x10000000 0x200000 $C
rm -rf "$F/$R/extent0.1" "$F/$R/dax0.2" "$F/sys/bus/dax/devices/dax0.2"
mv "$F/$R/extent0.9" "$F/$R/extent0.1"
v11_record 0 0x10000000 0x200000 $C 0 >&7
wait_for '[ "$("$TAGMEM" --json show $C | jq -r .state)" = added ]'
expect_eq "$(cat "$F/$R/dax0.4/uuid")" "$C" "the re-made extent's tag claimed on the seed"
"$TAGMEM" status >/dev/null || fail "brokerd is not answering"
exec 7>&-
stop_brokerd
echo "host-v11: ok"
