# Guest-side helpers, sourced by each guest check script (busybox sh). Their variables are
# local: a helper must never clobber the caller's loop variables.
CHECKS_FAILED=0
ok() { echo "TAGMEM-CHECK ok $1"; }
bad() { echo "TAGMEM-CHECK fail $1 ${2:-}"; CHECKS_FAILED=$((CHECKS_FAILED + 1)); }
# check NAME COMMAND…: the command must succeed
check() {
	local name=$1
	shift
	if "$@" >/tmp/check.out 2>&1; then ok "$name"; else bad "$name" "$(head -c 300 /tmp/check.out | tr '\n' ' ')"; fi
}
# eq NAME ACTUAL EXPECTED: an empty expectation is a failure, never a vacuous match
eq() {
	if [ -z "$3" ]; then bad "$1" "nothing to compare with (got '$2')"
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
