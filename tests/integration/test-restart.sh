#!/usr/bin/env bash
# Theory of operation: the registry holds what the kernel does not (claims). Across a
# restart claims come back; a pending release stays pending; a claim whose capacity vanished
# while the daemon was down is dropped with a log line; a corrupt registry stops the daemon
# from starting rather than forgetting claims.
. "$(dirname "$0")/lib.sh"

A=11111111-2222-4333-8444-555555555555
B=66666666-7777-4888-9999-aaaaaaaaaaaa
C=bbbbbbbb-cccc-4ddd-8eee-ffffffffffff
start_brokerd
for t in $A $B $C; do "$TAGMEM" fm add --size 8M --tag "$t" >/dev/null; done
"$TAGMEM" claim "$A" --name keep >/dev/null
"$TAGMEM" claim "$B" --name pending >/dev/null
"$TAGMEM" claim "$C" --name vanish >/dev/null
"$TAGMEM" fm release --tag "$B" >/dev/null
stop_brokerd

# capacity of C disappears while brokerd is down (the host lost it)
dev=$(grep -l "$C" "$T"/sim/sys/bus/dax/devices/*/uuid | xargs dirname | xargs basename)
rm -rf "$T/sim/sys/bus/dax/devices/$dev" "$T/sim/dev/$dev"
for e in "$T"/sim/sys/bus/cxl/devices/dax_region0/extent*; do
	grep -q "$C" "$e/uuid" && rm -rf "$e"
done

start_brokerd
expect_eq "$("$TAGMEM" --json show "$A" | jq -r '.state + " " + .owner.name')" "claimed keep" "claim A after restart"
expect_eq "$("$TAGMEM" --json show "$B" | jq -r .state)" release_pending "pending release after restart"
expect_rc 1 "$TAGMEM" show "$C"
grep -q "Claim on tag $C (uid $(id -u)) dropped" "$T/brokerd.log" || fail "no log line for the dropped claim"
wait_for '[ "$(jq ".claims | length" "$T/state/registry.json")" = 2 ]'
# the pending release completes when its owner lets go, after the restart too
expect_eq "$("$TAGMEM" --json release "$B" | jq -r .capacity_released)" true "release B"
expect_rc 1 "$TAGMEM" show "$B"
stop_brokerd

# images and their claims come back too, however many (claims are looked up by tag)
start_brokerd
for i in 1 2 3 4 5 6; do
	t=$(cat /proc/sys/kernel/random/uuid)
	"$TAGMEM" image create "$T/state/images/i$i.img" --size 16M --tag "$t" >/dev/null
	"$TAGMEM" claim "$t" --name "img$i" >/dev/null
done
"$TAGMEM" --json list | jq -r '.[] | select(.image) | .tag + " " + .owner.name' | sort >"$T/before"
kill9_brokerd
start_brokerd
"$TAGMEM" --json list | jq -r '.[] | select(.image) | .tag + " " + (.owner.name // "UNCLAIMED")' | sort >"$T/after"
diff "$T/before" "$T/after" >&2 || fail "image claims changed across a restart"
expect_eq "$(wc -l <"$T/after")" 6 "images after restart"
# an image whose file vanished while brokerd was down is forgotten, loudly
gone=$(head -1 "$T/after" | cut -d' ' -f1)
stop_brokerd
rm "$(jq -r --arg t "$gone" '.images[] | select(.tag == $t) | .path' "$T/state/registry.json")"
start_brokerd
expect_rc 1 "$TAGMEM" show "$gone"
grep -q "is gone or changed size; forgetting it" "$T/brokerd.log" || fail "no log line for the vanished image"
stop_brokerd

# a corrupt registry: refuse to start, say what to do, leave the file alone
echo '{"version":1,"claims":[{"tag":"zz"}]}' >"$T/state/registry.json"
cp "$T/state/registry.json" "$T/registry.bad"
rc=0
"$BROKERD" --socket "$TAGMEM_SOCKET" --state-dir "$T/state" --sim-root "$T/sim" 2>"$T/err" || rc=$?
expect_eq "$rc" 1 "brokerd exit status with a corrupt registry"
grep -q "is not valid. Refusing to start" "$T/err" || fail "corrupt registry message: $(cat "$T/err")"
cmp -s "$T/state/registry.json" "$T/registry.bad" || fail "brokerd changed a registry it could not read"
echo "restart: ok"
