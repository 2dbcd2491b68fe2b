#!/usr/bin/env bash
# Theory of operation: the bash completion that is installed completes what a user types:
# the commands, each command's options, the values of --mode and --layout, and the tags the
# running brokerd knows (from `tagmem list`), driven the way bash drives it (COMP_WORDS).
. "$(dirname "$0")/lib.sh"
top=$(cd "$(dirname "$0")/../.." && pwd)
start_brokerd
"$TAGMEM" fm add --size 2M --tag 6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10 >/dev/null
PATH=$(dirname "$TAGMEM"):$PATH
ln -sf "$TAGMEM" "$T/tagmem" && PATH=$T:$PATH   # the binary is called tagmem_cli in the build
# shellcheck source=/dev/null
. "$top/cli/tagmem.bash-completion"
complete_words() { # WORDS… (the last is the one being completed)
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	_tagmem
	printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' '
}
[ "$(complete_words tagmem fl)" = "flush " ] || fail "command: $(complete_words tagmem fl)"
[ "$(complete_words tagmem qemu-args --m)" = "--mode " ] || fail "option: $(complete_words tagmem qemu-args --m)"
[ "$(complete_words tagmem qemu-args --mode v)" = "virtio-pmem " ] || fail "--mode value"
[ "$(complete_words tagmem image create x --layout d)" = "devdax " ] || fail "--layout value"
[ "$(complete_words tagmem show 6f)" = "6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10 " ] ||
	fail "tags from brokerd: '$(complete_words tagmem show 6f)'"
[ "$(complete_words tagmem --json claim 6f)" = "6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10 " ] ||
	fail "after a global option"
[ "$(complete_words tagmem vm s)" = "save " ] || fail "vm subcommands"
[ "$(complete_words tagmem claim --g)" = "--grant " ] || fail "claim --grant"
for c in list show status; do
	[ "$(complete_words tagmem $c --j)" = "--json " ] || fail "$c --json"
done
# image budget|invalidate|clear-error|forget take a tag, not a file name
cd "$T" && touch 6f-a-file
for s in budget invalidate clear-error forget; do
	[ "$(complete_words tagmem image $s 6f)" = "6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10 " ] ||
		fail "image $s completes '$(complete_words tagmem image $s 6f)'"
done
[ "$(complete_words tagmem image create 6f-)" = "6f-a-file " ] || fail "image create takes a file"
[ "$(complete_words tagmem image budget x --d)" = "--dirty " ] || fail "image budget's options"
echo "completion: ok"
