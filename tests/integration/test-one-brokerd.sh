#!/usr/bin/env bash
# Theory of operation: the first steps a newcomer takes. brokerd creates the directories it
# is pointed at (a socket and simulator under a /run/tagmem that does not exist yet), and
# refuses, with a message that says what to do, to share a state directory or a simulator
# tree with another brokerd (two would corrupt each other's view); the lock goes with the
# process, even on kill -9. The CLI answers -v, --version and "help COMMAND".
. "$(dirname "$0")/lib.sh"

# nothing of the run directory exists yet
run=$T/run/tagmem
TAGMEM_SOCKET=$run/brokerd.sock start_brokerd --socket "$run/brokerd.sock" --sim-root "$run/sim"
export TAGMEM_SOCKET=$run/brokerd.sock
[ -S "$run/brokerd.sock" ] || fail "no socket in the directory brokerd was to create"
"$TAGMEM" fm add --size 2M >/dev/null || fail "the simulator under the new directory"

# a second brokerd on the same state directory, or the same simulator tree, is refused
out=$("$BROKERD" --socket "$T/b2.sock" --state-dir "$T/state" --sim-root "$T/sim2" 2>&1) &&
	fail "a second brokerd ran on the same state directory"
grep -q "Another brokerd (pid $BROKERD_PID) uses the state directory $T/state" <<<"$out" ||
	fail "the refusal does not say who and what: $out"
out=$("$BROKERD" --socket "$T/b3.sock" --state-dir "$T/state3" --sim-root "$run/sim" 2>&1) &&
	fail "a second brokerd ran on the same simulator tree"
grep -q "uses the simulated DCD $run/sim" <<<"$out" || fail "sim refusal: $out"
"$TAGMEM" status >/dev/null || fail "the first brokerd was disturbed"

# the lock goes with the process
kill9_brokerd
TAGMEM_SOCKET=$run/brokerd.sock start_brokerd --socket "$run/brokerd.sock" --sim-root "$run/sim"
"$TAGMEM" status >/dev/null || fail "no restart after kill -9"

# CLI conventions
[ "$("$TAGMEM" -v)" = "$("$TAGMEM" --version)" ] || fail "-v and --version differ"
"$TAGMEM" help claim | grep -q -- "--name" || fail "help claim does not show claim's options"
echo "one brokerd: ok"
