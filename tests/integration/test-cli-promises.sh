#!/usr/bin/env bash
# Theory of operation: the CLI and brokerd keep the promises their man pages make, each one
# found broken by hand once:
#   - with --json every error is exactly one JSON object on stdout, with the code that says
#     what happened (not_found, unreachable, invalid_argument for usage), and exit 1/3/2;
#   - lookup tells "not here" (1) from "could not ask" (3): where no brokerd runs at all (no
#     socket, as in a guest without one) the kernel's tree is the answer;
#   - hint is a guest's command, and says so; --guest without the agent names the agent;
#     "help help" is help;
#   - brokerd refuses a bad --backend or --pressure at once (exit 2), before it looks for
#     another brokerd; `x=$(brokerd --daemon)` returns once brokerd serves.
. "$(dirname "$0")/lib.sh"

U=0badc0de-1111-4222-8333-444444444444
# one_error JSON CODE: exactly one object, an error with that code
one_error() {
	local n code
	n=$(jq -s 'length' <<<"$1") || fail "not JSON: $1"
	[ "$n" = 1 ] || fail "$n JSON objects where one error was due: $1"
	code=$(jq -r '.error.code' <<<"$1")
	[ "$code" = "$2" ] || fail "error code $code, not $2: $1"
}
# run_cli EXPECTED_EXIT ARGS…: stdout in $out, stderr in $err
run_cli() {
	local want=$1 rc=0
	shift
	out=$("$TAGMEM" "$@" 2>"$T/err") || rc=$?
	err=$(cat "$T/err")
	[ "$rc" = "$want" ] || fail "tagmem $*: exit $rc, not $want (stderr: $err)"
}

# --- brokerd missing: no socket at all --------------------------------------------------
export TAGMEM_SOCKET=$T/none.sock
mkdir -p "$T/sim"   # a readable tree without the tag: not found, not unreachable
run_cli 1 --json lookup $U
one_error "$out" not_found
grep -q "no brokerd runs here" <<<"$err" || fail "lookup says why it did not ask: $err"
run_cli 3 --json status
one_error "$out" unreachable
run_cli 1 --json lookup --no-daemon $U
one_error "$out" not_found
# a socket that is there but refuses: brokerd may know the tag (an image): could not ask
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$T/dead.sock"
TAGMEM_SOCKET=$T/dead.sock run_cli 3 --json lookup $U
one_error "$out" unreachable

# --- usage errors speak JSON too, once ---------------------------------------------------
run_cli 2 --json lookup
one_error "$out" invalid_argument
run_cli 2 --json lookup not-a-uuid
one_error "$out" invalid_argument
run_cli 2 --json frobnicate
one_error "$out" invalid_argument
run_cli 2 --timeout nonsense --json status
one_error "$out" invalid_argument
run_cli 2 lookup
[ -z "$out" ] || fail "without --json, nothing on stdout: $out"

# --- brokerd running: its error, once ----------------------------------------------------
export TAGMEM_SOCKET=$T/brokerd.sock
start_brokerd
run_cli 1 --json lookup $U
one_error "$out" not_found
run_cli 1 --json show $U
one_error "$out" not_found

# --- hint, help ----------------------------------------------------------------------------
run_cli 2 hint $U --offset 0 --length 4096 --cold
grep -q "inside a VM" <<<"$err" && grep -q -- "--guest" <<<"$err" ||
	fail "hint on the host says it is the guest's: $err"
grep -q "unknown op" <<<"$err" && fail "hint reached brokerd: $err"
TAGMEM_GUEST_SOCKET=$T/no-agent.sock run_cli 3 --guest hint $U --offset 0 --length 4096 --cold
grep -q "tagmem-guestd" <<<"$err" || fail "--guest without an agent names the agent: $err"
grep -q "tagmem-brokerd" <<<"$err" && fail "a guest user is told to start a host service: $err"
run_cli 0 help help
grep -q "^Commands:" <<<"$out" || fail "help help is help: $out"

# --- brokerd's own arguments ---------------------------------------------------------------
for bad in "--backend bogus" "--pressure bogus" "--pressure some 1 2" "--pressure full 0 1000000"; do
	rc=0
	msg=$("$BROKERD" --socket "$T/x.sock" --state-dir "$T/state" --sim-root "$T/sim" $bad 2>&1) ||
		rc=$?
	[ "$rc" = 2 ] || fail "brokerd $bad: exit $rc, not 2: $msg"
	grep -q "Another brokerd" <<<"$msg" && fail "brokerd $bad is reported as a second brokerd: $msg"
	grep -q -- "${bad%% *}" <<<"$msg" || fail "brokerd $bad: the message names the option: $msg"
done
"$TAGMEM" status >/dev/null || fail "the running brokerd was disturbed"
stop_brokerd

# --daemon lets go of the caller's stdout: $(…) returns once brokerd serves
rc=0
x=$(timeout 20 "$BROKERD" --daemon --socket "$T/d.sock" --state-dir "$T/dstate" \
	--sim-root "$T/dsim" 2>>"$T/brokerd.log") || rc=$?
[ "$rc" = 0 ] || fail "x=\$(brokerd --daemon) did not return (exit $rc)"
[ -z "$x" ] || fail "brokerd --daemon printed on stdout: $x"
TAGMEM_SOCKET=$T/d.sock "$TAGMEM" status >/dev/null || fail "the daemon does not serve"
pkill -f -- "--socket $T/d.sock" || true
echo "cli promises: kept"
