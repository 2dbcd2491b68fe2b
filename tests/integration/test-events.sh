#!/usr/bin/env bash
# Theory of operation: a subscriber (tagmem watch --json) sees every state change of a tag,
# in order, while another client drives the lifecycle.
. "$(dirname "$0")/lib.sh"

U=2b0c6a3e-8f4d-4d7a-b1e2-0a9c8d7e6f51
start_brokerd
"$TAGMEM" --json watch --count 7 >"$T/events" &
WATCH_PID=$!
wait_for '[ "$("$TAGMEM" --json status | jq -r .subscribers)" = 1 ]'

"$TAGMEM" fm add --size 4M --tag "$U" >/dev/null
"$TAGMEM" claim "$U" >/dev/null
"$TAGMEM" fm release --tag "$U" >/dev/null
"$TAGMEM" release "$U" >/dev/null
"$TAGMEM" fm add --size 2M >/dev/null
wait "$WATCH_PID"
WATCH_PID=

expect_eq "$(jq -r .event "$T/events" | paste -sd,)" \
	"tag_added,tag_ready,tag_claimed,tag_release_pending,tag_unclaimed,tag_released,untagged_added" \
	"event sequence"
expect_eq "$(jq -r 'select(.event=="tag_ready") | .tag.device' "$T/events")" dax0.0 "ready device"
expect_eq "$(jq -r 'select(.event=="tag_released") | .tag.state' "$T/events")" released "released state"
expect_eq "$(jq -r 'select(.tag) | .tag.tag' "$T/events" | sort -u)" "$U" "events name the tag"
echo "events: ok"
