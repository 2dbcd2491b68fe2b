#!/usr/bin/env bash
# Theory of operation: brokerd's host backend cold-plugs a sysfs tree. The tree is a fixture
# laid out as the kernel lays it out (dax regions under CXL regions, bus links), so the same
# code that reads /sys reads it: a DCD tag whose device exists is ready at once; a tag with
# extents but no device makes the broker write the tag to the region's seed "uuid" (the
# kernel ABI for claiming it); a labelled namespace counts per --nd-namespaces; garbage
# entries are skipped with a log line; the udev helper names the same devices.
. "$(dirname "$0")/lib.sh"
HELPER=$(dirname "$TAGMEM")/../udev/tagmem-id

A=aaaaaaaa-0000-4000-8000-000000000001
B=bbbbbbbb-0000-4000-8000-000000000002
N=cccccccc-0000-4000-8000-000000000003
F=$T/fix
put() { mkdir -p "$(dirname "$F/$1")"; printf '%s\n' "$2" >"$F/$1"; }
R=sys/devices/platform/cxl/region0
put $R/mode dynamic_ram_a
put $R/dax_region0/dax_region/seed dax0.2
put $R/dax_region0/extent0.0/offset 0x0;        put $R/dax_region0/extent0.0/length 0x10000000
put $R/dax_region0/extent0.0/uuid $A
put $R/dax_region0/extent0.1/offset 0x10000000; put $R/dax_region0/extent0.1/length 0x10000000
put $R/dax_region0/extent0.1/uuid $A
put $R/dax_region0/extent0.2/offset 0x20000000; put $R/dax_region0/extent0.2/length 0x200000
put $R/dax_region0/extent0.2/uuid $B
put $R/dax_region0/extent0.3/offset 0x30000000; put $R/dax_region0/extent0.3/length garbage
put $R/dax_region0/dax0.1/size 536870912;       put $R/dax_region0/dax0.1/uuid $A
put $R/dax_region0/dax0.2/size 0;               put $R/dax_region0/dax0.2/uuid ""
mkdir -p "$F/sys/bus/cxl/devices" "$F/sys/bus/dax/devices" "$F/sys/bus/nd/devices" "$F/dev"
ln -s ../../../devices/platform/cxl/region0/dax_region0 "$F/sys/bus/cxl/devices/dax_region0"
ln -s ../../../devices/platform/cxl/region0/dax_region0/dax0.1 "$F/sys/bus/dax/devices/dax0.1"
ln -s ../../../devices/platform/cxl/region0/dax_region0/dax0.2 "$F/sys/bus/dax/devices/dax0.2"
NS=sys/devices/ndbus0/region1/namespace1.0
put $NS/uuid $N; put $NS/alt_name tagmem-ns; put $NS/size 33554432; put $NS/mode raw; put $NS/holder ""
put $NS/block/pmem1/size 65536
ln -s ../../../devices/ndbus0/region1/namespace1.0 "$F/sys/bus/nd/devices/namespace1.0"
mkdir -p "$F/sys/class/block" && ln -s ../../devices/ndbus0/region1/namespace1.0/block/pmem1 "$F/sys/class/block/pmem1"

start_brokerd --backend host --host-root "$F"
expect_eq "$("$TAGMEM" --json show $A | jq -r '[.state, .size, .extents, .device] | join(" ")')" \
	"ready 536870912 2 dax0.1" "DCD tag with a device"
expect_eq "$("$TAGMEM" lookup $A)" "$F/dev/dax0.1" "lookup of the DCD tag"
expect_eq "$("$TAGMEM" --json show $B | jq -r .state)" added "DCD tag without a device"
expect_eq "$(cat "$F/$R/dax_region0/dax0.2/uuid")" "$B" "tag written to the seed device's uuid"
expect_eq "$("$TAGMEM" --json show $N | jq -r '[.state, .size, .device] | join(" ")')" \
	"ready 33554432 pmem1" "labelled namespace"
grep -q "unreadable CXL entries" "$T/brokerd.log" || fail "the garbage extent was not reported"
expect_rc 1 "$TAGMEM" fm add --size 2M
grep -q "has no fabric manager" "$T/err" || fail "fm on the host backend: $(cat "$T/err")"
stop_brokerd

start_brokerd --backend host --host-root "$F" --nd-namespaces none
expect_rc 1 "$TAGMEM" show $N
stop_brokerd
expect_rc 2 "$BROKERD" --backend host --nd-namespaces sometimes

# the udev helper on the same tree
out=$("$HELPER" --root "$F" /devices/ndbus0/region1/namespace1.0/block/pmem1)
expect_eq "$(sed -n 's/^TAGMEM_TAG=//p' <<<"$out")" "$N" "helper: namespace tag"
expect_eq "$(sed -n 's/^TAGMEM_KIND=//p' <<<"$out")" pmem "helper: kind"
out=$("$HELPER" --root "$F" /devices/platform/cxl/region0/dax_region0/dax0.1)
expect_eq "$(sed -n 's/^TAGMEM_SOURCE=//p' <<<"$out")" cxl "helper: DCD source"
expect_eq "$("$HELPER" --root "$F" /devices/platform/cxl/region0/dax_region0/dax0.2)" "" "helper: seed has no tag"
# hot-plug through trace records: capacity for tag D appears in the tree (as the kernel would
# show it), and its cxl_dynamic_capacity record arrives in pieces, after a garbage record
D=dddddddd-0000-4000-8000-000000000004
mkfifo "$T/trace"
start_brokerd --backend host --host-root "$F" --trace-pipe "$T/trace"
"$TAGMEM" --json watch --count 2 >"$T/events" &
WATCH_PID=$!
wait_for '[ "$("$TAGMEM" --json status | jq -r .subscribers)" = 1 ]'
put $R/dax_region0/extent0.4/offset 0x40000000; put $R/dax_region0/extent0.4/length 0x400000
put $R/dax_region0/extent0.4/uuid $D
put $R/dax_region0/dax0.3/size 4194304;         put $R/dax_region0/dax0.3/uuid $D
ln -s ../../../devices/platform/cxl/region0/dax_region0/dax0.3 "$F/sys/bus/dax/devices/dax0.3"
exec 7>"$T/trace"
printf '%s\n' "  kworker/0:1-9 [000] 5.0: cxl_dynamic_capacity: memdev=mem0 : event_type='Add capacity' starting_dpa=zz" >&7
printf '%s' "  kworker/0:1-9 [000] 5.1: cxl_dynamic_capacity: memdev=mem0 host=0000:0d:00.0 : event_type='Add capacity' host_id='0' " >&7
sleep 0.2
printf '%s\n' "updated_region_index='255' starting_dpa=40000000 length=400000 tag=$D shared_extent_sequence=0" >&7
wait "$WATCH_PID"; WATCH_PID=
expect_eq "$(jq -r '.event + " " + .tag.tag' "$T/events" | paste -sd,)" "tag_added $D,tag_ready $D" "events from a trace record"
expect_eq "$("$TAGMEM" lookup $D)" "$F/dev/dax0.3" "lookup of the hot-plugged tag"
grep -q "Malformed cxl_dynamic_capacity record" "$T/brokerd.log" || fail "garbage record not reported"
"$TAGMEM" status >/dev/null || fail "brokerd died on a garbage record"
exec 7>&-
stop_brokerd
echo "host-fixture: ok"
