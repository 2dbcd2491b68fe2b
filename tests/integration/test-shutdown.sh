#!/usr/bin/env bash
# Theory of operation: SIGTERM and SIGINT stop brokerd the orderly way, whatever it is doing:
# exit status 0, its socket and its guest channel sockets removed (no stale socket for the
# next start to trip over), the registry as last acknowledged. brokerd's threads must not
# take the signal themselves (their default action would end it on the spot): the test
# failed that way before the signals were blocked ahead of the first thread.
. "$(dirname "$0")/lib.sh"
for sig in TERM INT; do
	start_brokerd
	"$TAGMEM" fm add --size 2M --tag 6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10 >/dev/null 2>&1 || true
	"$TAGMEM" claim 6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10 --name sig >/dev/null
	"$TAGMEM" qemu-args --vm "vm$sig" >/dev/null
	ls "$T"/guests/*.sock >/dev/null 2>&1 || fail "no guest channel socket to remove"
	kill -s "$sig" "$BROKERD_PID"
	st=0
	wait "$BROKERD_PID" || st=$?
	BROKERD_PID=
	[ "$st" = 0 ] || fail "SIG$sig: exit status $st (killed by the signal, no shutdown)"
	grep -q "Signal .* received, shutting down" "$T/brokerd.log" || fail "SIG$sig: no orderly shutdown"
	[ ! -e "$TAGMEM_SOCKET" ] || fail "SIG$sig: the socket was left behind"
	[ -z "$(ls "$T"/guests/ 2>/dev/null)" ] || fail "SIG$sig: guest sockets left: $(ls "$T"/guests)"
	jq -e '.claims[] | select(.name == "sig")' "$T/state/registry.json" >/dev/null ||
		fail "SIG$sig: the claim is not in the registry"
	: >"$T/brokerd.log"
done
echo "shutdown: SIGTERM and SIGINT stop brokerd cleanly"
