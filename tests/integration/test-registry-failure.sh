#!/usr/bin/env bash
# Theory of operation: when the registry cannot be written, the client that asked for the
# change is told (io_error) instead of getting an acknowledgement that would not survive a
# crash; the registry on disk keeps its last good content; the daemon keeps serving; and once
# the fault is gone, retrying the same claim succeeds and is durable.
. "$(dirname "$0")/lib.sh"

A=a1a1a1a1-b2b2-4c3c-8d4d-e5e5e5e5e5e5
B=f6f6f6f6-0707-4818-9929-3a3a3a3a3a3a
start_brokerd
"$TAGMEM" fm add --size 2M --tag "$A" >/dev/null
"$TAGMEM" fm add --size 2M --tag "$B" >/dev/null
"$TAGMEM" claim "$A" --name first >/dev/null
cp "$T/state/registry.json" "$T/good.json"

# the persister's temp file name is taken by a directory: the write fails, even for root
mkdir "$T/state/registry.json.tmp"
expect_rc 1 "$TAGMEM" claim "$B" --name second
grep -q "registry could not be written" "$T/err" || fail "io_error message: $(cat "$T/err")"
expect_eq "$("$TAGMEM" --json claim "$B" --name second 2>/dev/null | jq -r .error.code)" io_error "error code"
cmp -s "$T/state/registry.json" "$T/good.json" || fail "the registry changed although its write failed"
grep -q "Failed to write the registry.*retrying" "$T/brokerd.log" || fail "no log line for the failed write"
"$TAGMEM" status >/dev/null || fail "brokerd stopped serving"

# fault gone: brokerd's own retry brings the disk up to date, and a client's retry of the
# same claim is acknowledged once it is on disk
rmdir "$T/state/registry.json.tmp"
wait_for 'grep -q "is written again" "$T/brokerd.log"'
"$TAGMEM" claim "$B" --name second >/dev/null
expect_eq "$(jq -r '[.claims[].name] | sort | join(",")' "$T/state/registry.json")" first,second "registry after retry"
kill9_brokerd
start_brokerd
expect_eq "$("$TAGMEM" --json show "$B" | jq -r .owner.name)" second "claim after kill -9"
echo "registry-failure: ok"
