# Shared helpers for the shell integration tests. Each test sources this, gets a private
# temp dir ($T) with a simulator sandbox, a state dir and a socket, and helpers to start,
# stop and kill brokerd. Everything is torn down on exit, whatever happens.
set -euo pipefail

: "${BROKERD:?BROKERD must point at the brokerd binary (ctest sets it)}"
: "${TAGMEM:?TAGMEM must point at the tagmem binary (ctest sets it)}"
command -v jq >/dev/null || { echo "SKIP: jq is not installed"; exit 77; }

T=$(mktemp -d "${TMPDIR:-/tmp}/tagmem-test.XXXXXX")
export TAGMEM_SOCKET=$T/brokerd.sock
export TAGMEM_ROOT=$T/sim
BROKERD_PID=
WATCH_PID=

cleanup() {
	local rc=$?
	[ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null || true
	[ -n "$BROKERD_PID" ] && kill -9 "$BROKERD_PID" 2>/dev/null || true
	if [ $rc -ne 0 ] && [ -f "$T/brokerd.log" ]; then
		echo "--- brokerd log ---" >&2
		tail -n 40 "$T/brokerd.log" >&2
	fi
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# start_brokerd [extra args]: start and wait until the socket answers hello.
start_brokerd() {
	"$BROKERD" --socket "$TAGMEM_SOCKET" --state-dir "$T/state" --sim-root "$T/sim" \
		--sim-region-size 16G "$@" >>"$T/brokerd.log" 2>&1 &
	BROKERD_PID=$!
	for _ in $(seq 1 200); do
		if "$TAGMEM" status >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$BROKERD_PID" 2>/dev/null || fail "brokerd exited at start: $(tail -n 5 "$T/brokerd.log")"
		sleep 0.02
	done
	fail "brokerd did not answer within 4 s"
}

stop_brokerd() {
	kill "$BROKERD_PID"
	wait "$BROKERD_PID" || true
	BROKERD_PID=
}

kill9_brokerd() {
	kill -9 "$BROKERD_PID"
	wait "$BROKERD_PID" 2>/dev/null || true
	BROKERD_PID=
}

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
	[ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
}

# expect_rc EXPECTED_RC command...: run and check the exit status.
expect_rc() {
	local want=$1 rc=0
	shift
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = "$want" ] || fail "'$*' exited $rc, expected $want; stderr: $(cat "$T/err")"
}

# wait_for 'SHELL CONDITION': poll for up to 10 s (events are asynchronous to the CLI). The
# condition is a string, evaluated afresh each time, so "$(...)" inside it is re-run.
wait_for() {
	for _ in $(seq 1 500); do
		if eval "$1" >/dev/null 2>&1; then return 0; fi
		sleep 0.02
	done
	fail "timed out waiting for: $1"
}
