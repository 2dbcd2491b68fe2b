# Guest-side helpers, sourced by each guest check script (busybox sh). Their variables are
# local: a helper must never clobber the caller's loop variables.
#
# A script stops at its first failed command (set -e, pipefail): a step that silently did
# nothing (busybox lacks many GNU options) must not let later checks compare nothing with
# nothing. Stopping that way is itself a failed check, and the host requires rc=0.
set -e
set -o pipefail
CHECKS_FAILED=0
trap 'rc=$?; [ $rc -eq 0 ] || [ $CHECKS_FAILED -ne 0 ] ||
	echo "TAGMEM-CHECK fail script-stopped a command failed (rc=$rc): see the console above"' EXIT
ok() { echo "TAGMEM-CHECK ok $1"; }
bad() { echo "TAGMEM-CHECK fail $1 ${2:-}"; CHECKS_FAILED=$((CHECKS_FAILED + 1)); }
# check NAME COMMAND…: the command must succeed
check() {
	local name=$1
	shift
	if "$@" >/tmp/check.out 2>&1; then ok "$name"; else bad "$name" "$(head -c 300 /tmp/check.out | tr '\n' ' ')"; fi
}
# eq NAME ACTUAL EXPECTED: an empty expectation, or the digest of no bytes, is a failure,
# never a vacuous match
eq() {
	if [ -z "$3" ]; then bad "$1" "nothing to compare with (got '$2')"
	elif [ "$3" = d41d8cd98f00b204e9800998ecf8427e ]; then bad "$1" "the expectation is the digest of no bytes"
	elif [ "$2" = "$3" ]; then ok "$1"
	else bad "$1" "expected '$3', got '$2'"; fi
}
# wait_until SECONDS COMMAND…: poll every 10 ms
wait_until() {
	local limit=$1 i=0
	shift
	while [ $i -lt $((limit * 100)) ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.01
		i=$((i + 1))
	done
	return 1
}
# have_bytes PATH BYTES: PATH holds exactly BYTES bytes; otherwise a failed check and a
# failed return (which stops the script)
have_bytes() {
	local n
	n=$(wc -c <"$1")
	[ "$n" -eq "$2" ] && return 0
	echo "have_bytes: $1 holds $n bytes, not $2" >&2
	bad "$1 holds $2 bytes" "it holds $n"
	return 1
}
# random_file PATH BYTES (a multiple of 4096): that many random bytes, checked
random_file() {
	dd if=/dev/urandom of="$1" bs=4096 count=$(($2 / 4096)) 2>/dev/null
	have_bytes "$1" "$2"
}
# digest BYTES: the md5 of stdin, which must be exactly BYTES long (a short read, a failed
# dd upstream, prints nothing and fails)
digest() {
	local f=/tmp/digest.in n
	cat >"$f"
	n=$(wc -c <"$f")
	if [ "$n" -ne "$1" ]; then
		rm -f "$f"
		echo "digest: read $n bytes where $1 were expected" >&2
		return 1
	fi
	md5sum <"$f" | cut -d' ' -f1
	rm -f "$f"
}
# file_digest PATH BYTES: the md5 of PATH, which must hold exactly BYTES bytes
file_digest() {
	have_bytes "$1" "$2" >/dev/null || return 1
	md5sum <"$1" | cut -d' ' -f1
}
