# Guest side of test-crash-consistency.sh (busybox sh), after a header that sets FS, OPS,
# SAMPLES and SEED. Run as the guest's check script it makes the filesystem over
# dm-log-writes, runs brokerd and the workload there, then replays the log with log_replay,
# which runs this same script again (LR_ENTRY set) at every crash point to check it.
#
# The acknowledgements go to /tmp/acks (tmpfs: outside the logged disk), one per line,
# numbered by the mark that follows them in the log:
#   M image NAME TAG DATA_OFFSET   an image created
#   M block NAME BLOCK VERSION     a block durable with at least this version
#   M claiming TAG                 a claim asked for (the mark comes before the request)
#   M claim TAG                    a claim acknowledged
#   M releasing TAG                a release asked for (the mark comes before the request)
#   M released TAG                 a release acknowledged
#   M lost NAME TAG                a flush failed because writes were lost: the record is kept
MNT=/mnt/crash CHK=/mnt/check ACKS=/tmp/acks

disk() { # the virtio disk whose serial is crash-NAME
	local d
	for d in /sys/block/vd*; do
		[ "$(cat "$d/serial" 2>/dev/null)" = "crash-$1" ] && { echo "/dev/${d##*/}"; return 0; }
	done
	echo "no disk crash-$1" >&2
	return 1
}
fstype() { case $FS in xfs) echo xfs ;; *) echo ext4 ;; esac; }

# ---- the check at one crash point (log_replay runs it with LR_ENTRY, LR_KIND, LR_MARK) ----
crash_check() {
	local m=0 why=/tmp/check-why sz
	case $LR_MARK in m*) m=${LR_MARK#m} ;; esac
	: >$why
	sz=$(blockdev --getsz "$REPLAY")
	dmsetup --noudevsync remove chk >/dev/null 2>&1   # left by a check that went wrong
	dmsetup --noudevsync create chk --table "0 $sz snapshot $REPLAY $COW N 8" >/dev/null
	dmsetup --noudevsync mknodes chk
	mkdir -p $CHK
	# a filesystem without a journal is checked at boot before it is mounted (fsck -a)
	if [ "$FS" = ext4-nojournal ]; then
		e2fsck -fy /dev/mapper/chk >/tmp/fsck.out 2>&1
		[ $? -lt 4 ] || { echo "e2fsck cannot repair it:"; tail -n 5 /tmp/fsck.out; } >>$why
	fi
	if ! mount -t "$(fstype)" /dev/mapper/chk $CHK 2>>$why; then
		echo "the filesystem does not mount" >>$why
	else
		check_state "$m" $CHK/state >>$why 2>&1 || true
		umount $CHK
	fi
	dmsetup --noudevsync remove chk
	if [ -s $why ]; then
		echo "crash point $LR_ENTRY ($LR_KIND after mark $LR_MARK):"
		sed 's/^/    /' $why | head -n 20
		return 1
	fi
	return 0
}

# check_state M DIR: what was acknowledged up to mark M is in DIR (prints each violation)
check_state() {
	local m=$1 dir=$2 name tag off reg=$2/registry.json
	# before the first image or claim was acknowledged there may be no registry at all
	if [ ! -e "$reg" ] && ! awk -v m="$m" '$1 <= m && $2 ~ /^(image|claim)$/ {f = 1} END {exit !f}' $ACKS; then
		return 0
	fi
	if ! jq -e '.claims and .images' "$reg" >/dev/null 2>&1; then
		echo "registry.json does not parse or lacks claims/images"
		return 1
	fi
	awk -v m="$m" '$1 <= m && $2 == "image" {print $3, $4, $5}' $ACKS | while read -r name tag off; do
		jq -e --arg t "$tag" '.images[] | select(.tag == $t)' "$reg" >/dev/null ||
			echo "image $name ($tag), acknowledged at mark ${m}, is not in registry.json"
		awk -v m="$m" -v n="$name" '$1 <= m && $2 == "block" && $3 == n {
			if (!($4 in v) || $5 > v[$4]) v[$4] = $5 }
			END { for (b in v) print b, v[b] }' $ACKS >/tmp/expect.$name
		[ -s /tmp/expect.$name ] || continue
		stamp check "$dir/images/$name.img" "$off" </tmp/expect.$name 2>/dev/null || true
	done
	awk -v m="$m" '$1 <= m && $2 == "lost" {print $3, $4}' $ACKS | while read -r name tag; do
		jq -e --arg t "$tag" '.images[] | select(.tag == $t) | .lost_writes_since > 0' \
			"$reg" >/dev/null ||
			echo "image $name ($tag): its lost writes, acknowledged, are not in registry.json"
	done
	# a claim or a release asked for and not yet acknowledged may be either way
	awk -v m="$m" '$1 <= m && $2 ~ /^(claiming|claim|releasing|released)$/ {s[$3] = $2}
		END { for (t in s) print t, s[t] }' $ACKS | while read -r tag st; do
		if jq -e --arg t "$tag" '.claims[] | select(.tag == $t)' "$reg" >/dev/null; then
			[ "$st" != released ] || echo "claim of $tag came back after its release was acknowledged"
		else
			[ "$st" != claim ] || echo "claim of $tag, acknowledged, is not in registry.json"
		fi
	done
}

REPLAY=$(disk replay) COW=$(disk cow)
if [ -n "${LR_ENTRY:-}" ]; then
	trap - EXIT
	set +e
	crash_check
	exit $?
fi

# ---- the run: filesystem, brokerd, workload ------------------------------------------------
DATA=$(disk data) LOG=$(disk log)
MARKS=0
mark_with() { # the next mark, with the lines of stdin as its acknowledgements (never in a
	# pipeline: a subshell's MARKS would not advance)
	local l
	MARKS=$((MARKS + 1))
	dmsetup message lw 0 mark m$MARKS
	while read -r l; do echo "$MARKS $l" >>$ACKS; done
}
mark() { # the next mark, after the acknowledgement lines given (each "KIND ARGS")
	printf '%s\n' "$@" >/tmp/mark.acks
	mark_with </tmp/mark.acks
}
# flk_table TABLE: the map under dm-log-writes replaced while the filesystem is mounted
flk_table() {
	dmsetup --noudevsync suspend flk
	printf '%b' "$1" | dmsetup --noudevsync load flk
	dmsetup --noudevsync resume flk
}
# the data disk through a linear map (flk) whose table can turn one block into an I/O error
# (the lost-writes step), then dm-log-writes (lw): the filesystem sits on lw
SECTORS=$(blockdev --getsz "$DATA")
dmsetup --noudevsync create flk --table "0 $SECTORS linear $DATA 0"
dmsetup --noudevsync mknodes flk
dmsetup --noudevsync create lw --table "0 $SECTORS log-writes /dev/mapper/flk $LOG"
dmsetup --noudevsync mknodes
case $FS in
ext4) mkfs.ext4 -q -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 /dev/mapper/lw
	opts=commit=600 ;;
ext4-journal) mkfs.ext4 -q -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 /dev/mapper/lw
	opts=commit=600,data=journal ;;
ext4-nojournal) mkfs.ext4 -q -O ^has_journal -E nodiscard,lazy_itable_init=0 /dev/mapper/lw
	opts=defaults ;;
xfs) mkfs.xfs -q -K -f /dev/mapper/lw
	opts=defaults ;;
*) bad "filesystem $FS" "unknown"; exit 1 ;;
esac
mkdir -p $MNT
mount -t "$(fstype)" -o "$opts" /dev/mapper/lw $MNT
mkdir -p $MNT/state/images
sync
: >$ACKS
dmsetup message lw 0 mark start
ok "$FS over dm-log-writes mounted ($opts)"

brokerd --state-dir $MNT/state --sim-root /tmp/sim 2>/tmp/brokerd.log &
BROKERD=$!
wait_until 20 tagmem status || { cat /tmp/brokerd.log; bad "brokerd starts"; exit 1; }
tagmem --json watch >/tmp/events 2>&1 &
WATCH=$!
durability=range
[ "$FS" = ext4-nojournal ] && durability=whole_file

# new_image NAME TAG: a 16 MiB image, its data offset in OFF_NAME, its creation acknowledged
new_image() {
	local off
	tagmem image create $MNT/state/images/$1.img --size 16M --tag $2 >/dev/null
	off=$(jq -r --arg t $2 '.images[] | select(.tag == $t) | .data_offset' $MNT/state/registry.json)
	eval "OFF_$1=$off"
	mark "image $1 $2 $off"
}
# images A and B: blocks 0..511 of each are written, in place and into holes
A=c7a50001-1111-4222-8333-444444444444 B=c7a50002-1111-4222-8333-444444444444
new_image a $A
new_image b $B
mkdir -p /tmp/cur
R=$SEED V=0
# rnd N: RN, the next pseudo-random number below N (no subshell: it must advance R)
rnd() { R=$(((R * 1103515245 + 12345) % 2147483648)); RN=$((R / 65536 % $1)); }
# write_blocks NAME FIRST COUNT: a new version of COUNT blocks, through a shared mapping
write_blocks() {
	local n=$1 b=$2 c=$3 off i list=
	V=$((V + 1))
	eval "off=\$OFF_$n"
	i=0
	while [ $i -lt $c ]; do list="$list $((b + i))"; echo $V >/tmp/cur/$n.$((b + i)); i=$((i + 1)); done
	stamp write $MNT/state/images/$n.img "$off" $V $list
}
# acked NAME [FIRST COUNT]: the ack lines for the blocks of a flushed range (all: the image)
acked() {
	local n=$1 f b
	for f in /tmp/cur/$n.*; do
		[ -e "$f" ] || continue
		b=${f##*.}
		[ $# -eq 1 ] || { [ "$b" -ge "$2" ] && [ "$b" -lt $(($2 + $3)) ]; } || continue
		printf 'block %s %s %s\n' "$n" "$b" "$(cat "$f")"
	done
}
flushed() { # the flush answer says it is durable the way this filesystem allows
	grep -q "\"durability\": *\"$durability\"" /tmp/flush.out ||
		{ bad "flush durability on $FS" "$(cat /tmp/flush.out)"; return 1; }
}
# range_flush NAME TAG FIRST COUNT: a range flush of those blocks, acknowledged and marked
range_flush() {
	tagmem --json flush $2 --offset $(($3 * 4096)) --length $(($4 * 4096)) >/tmp/flush.out
	flushed
	acked $1 $3 $4 >/tmp/range.acks
	mark_with </tmp/range.acks
}

claimed=0 asyncs=0
i=0
while [ $i -lt "$OPS" ]; do
	i=$((i + 1))
	case $((i % 5)) in
	0) # a range flush of A, with other writes to A left dirty beside it
		rnd 500; b=$RN; rnd 4; c=$((RN + 1))
		write_blocks a "$b" "$c"
		rnd 500; write_blocks a "$RN" 1
		range_flush a $A "$b" "$c" ;;
	1) # a whole flush of B
		rnd 500; b=$RN; rnd 3
		write_blocks b "$b" $((RN + 1))
		tagmem --json flush $B >/tmp/flush.out
		grep -q '"durability"' /tmp/flush.out || { bad "whole flush" "$(cat /tmp/flush.out)"; exit 1; }
		acked b >/tmp/whole.acks
		mark_with </tmp/whole.acks ;;
	2) # an asynchronous range flush of A: acknowledged by its flush_done event
		rnd 500; b=$RN; rnd 2; c=$((RN + 1))
		write_blocks a "$b" "$c"
		acked a "$b" "$c" >/tmp/async.acks
		id=$(tagmem --json flush $A --async --offset $((b * 4096)) --length $((c * 4096)) |
			jq -r .flush_id)
		[ -n "$id" ] && [ "$id" != null ]
		write_blocks a "$b" 1   # after the request: not covered by it
		wait_until 20 grep -q "\"flush_id\": *$id[,}]" /tmp/events ||
			{ bad "flush_done for async flush $id" "$(tail -3 /tmp/events)"; exit 1; }
		grep "\"flush_id\": *$id[,}]" /tmp/events | grep -v '"error"' >/tmp/flush.out
		flushed
		mark_with </tmp/async.acks
		asyncs=$((asyncs + 1)) ;;
	3) # a claim, or the release of it
		if [ $claimed = 0 ]; then
			mark "claiming $B"
			tagmem claim $B --name crash$i >/dev/null
			mark "claim $B"
			claimed=1
		else
			mark "releasing $B"
			tagmem release $B >/dev/null
			mark "released $B"
			claimed=0
		fi ;;
	4) # writes nobody flushes (until a later flush covers them)
		rnd 500; write_blocks b "$RN" 2
		rnd 500; write_blocks a "$RN" 1 ;;
	esac
done
[ $asyncs -gt 0 ]

# lost writes: the disk fails the writeback of one block of image c; the flush says so, and
# that answer is an acknowledgement that the lost-writes record is durable. Not with
# data=journal: there the flush is durable in the journal, and the block's home location
# fails later, at a checkpoint, which the journal reports itself.
if [ "$FS" != ext4-journal ]; then
	C=c7a50003-1111-4222-8333-444444444444
	new_image c $C
	write_blocks c 3 1
	range_flush c $C 3 1
	at=$(stamp where $MNT/state/images/c.img $((OFF_c + 3 * 4096)))
	s=$((at / 512))
	flk_table "0 $s linear $DATA 0\n$s 8 error\n$((s + 8)) $((SECTORS - s - 8)) linear $DATA $((s + 8))\n"
	write_blocks c 3 1
	# the failing flush's io_error is sent once the record is durable; the next one names it
	if tagmem --json flush $C --offset $((3 * 4096)) --length 4096 >/tmp/flush.out 2>&1; then
		bad "$FS: a flush over a failing block" "it succeeded: $(cat /tmp/flush.out)"
	elif grep -q '"io_error"' /tmp/flush.out; then
		mark "lost c $C"
		if tagmem flush $C >/tmp/flush.out 2>&1 || ! grep -q 'were lost' /tmp/flush.out; then
			bad "$FS: the next flush names the lost writes" "$(cat /tmp/flush.out)"
		else
			ok "$FS: a flush over a failing block reports lost writes, and the next one too"
		fi
	else
		bad "$FS: a flush over a failing block" "$(cat /tmp/flush.out)"
	fi
	flk_table "0 $SECTORS linear $DATA 0\n"
fi
ok "$FS: $OPS operations, $MARKS acknowledgements marked"

# the power goes: nothing is shut down cleanly
kill -9 $BROKERD $WATCH 2>/dev/null || true
wait 2>/dev/null || true
umount $MNT
dmsetup --noudevsync remove lw
dmsetup --noudevsync remove flk
t0=$(date +%s)
log_replay "$LOG" "$REPLAY" --from-mark start --samples "$SAMPLES" --seed "$SEED" \
	-- sh /guest-checks.sh >/tmp/replay.out 2>&1 || true
cat /tmp/replay.out
t1=$(date +%s)
sum=$(tail -n 1 /tmp/replay.out)
case $sum in "log_replay: entries "*) ;; *) bad "$FS: log replay" "$sum"; exit 1 ;; esac
set -- $sum
points=$5 violations=$7
[ "$points" -gt "$MARKS" ] || bad "$FS: every mark checked" "$points points for $MARKS marks"
echo "TAGMEM-CRASH points $points violations $violations fs $FS marks $MARKS entries $3 replay_s $((t1 - t0))"
if [ "$violations" = 0 ]; then ok "$FS: no violation at $points crash points"
else bad "$FS: crash consistency" "$violations violations at $points crash points"; fi
exit $CHECKS_FAILED
