#!/usr/bin/env bash
# Theory of operation: the documentation cannot fall behind the programs. Every option
# brokerd --help lists is in brokerd(8); every command tagmem --help lists is in tagmem(1) and
# has its own help text (tagmem help COMMAND says more than the usage line); every op brokerd
# serves (hello's list) and every event it can send is in docs/protocol.md. tagmem's global
# options are in tagmem(1), tagmem-guestd's in tagmem-guestd(8); every page names the version
# the programs print; no page renders a stray ", " between an option's forms; the agent's unit
# points at the agent's page.
set -euo pipefail
: "${BROKERD:?}" "${TAGMEM:?}"
top=$(cd "$(dirname "$0")/../.." && pwd)
missing=0
miss() { echo "MISSING: $*"; missing=$((missing + 1)); }
man_escape() { sed 's/-/\\\\-/g' <<<"$1"; }

for o in $("$BROKERD" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
	grep -q -- "$(man_escape "$o")" "$top/docs/brokerd.8" || miss "brokerd.8: $o"
done
for c in $("$TAGMEM" --help | awk '/^Commands:/ {f = 1; next} /^$/ {f = 0} f {print $1}'); do
	grep -qE "^\.BI? \"?$(man_escape "$c")" "$top/docs/tagmem.1" || miss "tagmem.1: $c"
	[ "$("$TAGMEM" help "$c" | wc -l)" -gt 1 ] || miss "tagmem help $c: only a usage line"
done
for o in $("$TAGMEM" --help | awk '/^Options:/ {f = 1; next} f' | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
	grep -qE -- "^\.B[IR]? .*$(man_escape "$o")" "$top/docs/tagmem.1" ||
		miss "tagmem.1: global option $o has no entry"
done
guestd=$(dirname "$TAGMEM")/../udev/tagmem-guestd
for o in $("$guestd" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
	grep -q -- "$(man_escape "$o")" "$top/docs/tagmem-guestd.8" || miss "tagmem-guestd.8: $o"
done
fmd=$(dirname "$BROKERD")/tagmem-fmd
clusterd=$(dirname "$BROKERD")/tagmem-clusterd
for prog in tagmem-fmd tagmem-clusterd; do
	for o in $("$(dirname "$BROKERD")/$prog" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
		grep -q -- "$(man_escape "$o")" "$top/docs/$prog.8" || miss "$prog.8: $o"
	done
done
# tagmem-clusterd's ops, from its dispatcher
for op in $(grep -oE 'strcmp\(op, "[a-z_]+"\)' "$top/brokerd/cluster/clusterd.c" | grep -oE '"[a-z_]+"' | tr -d '"'); do
	grep -q "^### .*\b$op\b" "$top/docs/cluster.md" || miss "cluster.md: op $op"
done
# the shared fabric manager's ops, from its own table
for op in $(sed -n 's/^\t{ "\([a-z_]*\)", op_[a-z_]* },$/\1/p' "$top/brokerd/fabric/service.c"); do
	grep -q "^### .*\b$op\b" "$top/docs/fabric.md" || miss "fabric.md: op $op"
done
version=$("$BROKERD" --version | awk '{print $2}')
for p in "$TAGMEM --version" "$guestd --version" "$fmd --version" "$clusterd --version"; do
	[ "$($p | awk '{print $2}')" = "$version" ] || miss "'$p' does not print version $version"
done
for page in tagmem.1 brokerd.8 tagmem-guestd.8 tagmem-fmd.8 tagmem-clusterd.8; do
	grep -q "^\.TH .*\"tagmem $version\"" "$top/docs/$page" || miss "$page: .TH without tagmem $version"
	if command -v groff >/dev/null; then
		bad=$(groff -man -Tutf8 -P-cbou "$top/docs/$page" 2>/dev/null |
			grep -E -- '-[a-zA-Z] ,' || true)
		[ -z "$bad" ] || miss "$page renders a stray comma: $bad"
	fi
done
grep -q "^Documentation=man:tagmem-guestd(8)" "$top/udev/tagmem-guestd.service.in" ||
	miss "tagmem-guestd.service: Documentation does not point at tagmem-guestd(8)"

# the ops, from a running brokerd's own list
T=$(mktemp -d)
trap 'kill $(cat "$T/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$T"' EXIT
"$BROKERD" --socket "$T/s" --state-dir "$T/st" --sim-root "$T/sim" 2>/dev/null &
echo $! >"$T/pid"
for _ in $(seq 1 100); do TAGMEM_SOCKET=$T/s "$TAGMEM" status >/dev/null 2>&1 && break; sleep 0.05; done
ops=$(python3 -c '
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"{\"id\":1,\"op\":\"hello\"}\n")
print(" ".join(json.loads(s.makefile().readline())["result"]["ops"]))' "$T/s")
for op in $ops; do
	grep -q "^### .*\b$op\b" "$top/docs/protocol.md" || miss "protocol.md: op $op"
done
events() { grep -ohE 'emit\(c, "[a-z_]+"|"event", json_object_new_string\("[a-z_]+"' "$@" |
	grep -oE '"[a-z_]+"$' | tr -d '"' | sort -u; }
for ev in $(events $(ls "$top"/brokerd/*/*.c | grep -vE '/(fabric|cluster)/')); do
	grep -q "\`$ev\`" "$top/docs/protocol.md" || miss "protocol.md: event $ev"
done
for ev in $(events "$top"/brokerd/fabric/*.c); do
	grep -q "\`$ev\`" "$top/docs/fabric.md" || miss "fabric.md: event $ev"
done
for ev in $(events "$top"/brokerd/cluster/*.c); do
	grep -q "\`$ev\`" "$top/docs/cluster.md" || miss "cluster.md: event $ev"
done
[ "$missing" = 0 ] || { echo "FAIL: $missing thing(s) undocumented"; exit 1; }
echo "docs: every option, command, op ($(wc -w <<<"$ops")) and event is documented"
