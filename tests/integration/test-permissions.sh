#!/usr/bin/env bash
# Theory of operation: peer credentials decide. A claim belongs to the uid that made it;
# another user can neither release it nor drive the fabric manager; root can release any.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to act as two users"; exit 77; }
command -v setpriv >/dev/null || { echo "SKIP: setpriv missing"; exit 77; }
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

chmod 755 "$T"
U=0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6
start_brokerd
"$TAGMEM" fm add --size 2M --tag "$U" >/dev/null

expect_rc 1 as_nobody "$TAGMEM" fm add --size 2M
grep -q "only root or the daemon's user" "$T/err" || fail "fm permission message"
as_nobody "$TAGMEM" claim "$U" --name mine >/dev/null
expect_eq "$("$TAGMEM" --json show "$U" | jq -r .owner.uid)" 65534 "owner uid"
"$TAGMEM" fm release "$U" >/dev/null           # pending: nobody holds it
expect_eq "$("$TAGMEM" --json show "$U" | jq -r .state)" release_pending "state"
V=9e8d7c6b-5a49-4837-a261-504f3e2d1c0b
"$TAGMEM" fm add --size 2M --tag "$V" >/dev/null
"$TAGMEM" claim "$V" >/dev/null
expect_rc 1 as_nobody "$TAGMEM" release "$V"
grep -q "only that user or root" "$T/err" || fail "release permission message"
as_nobody "$TAGMEM" release "$U" >/dev/null     # the owner
"$TAGMEM" release "$V" >/dev/null               # root's own
expect_eq "$("$TAGMEM" --json list | jq length)" 1 "tags left"
echo "permissions: ok"
