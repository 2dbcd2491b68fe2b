#!/usr/bin/env bash
# Theory of operation: the README's command blocks are run as written, in order, so they can
# never drift from what the tools do. The ```sh blocks are taken from README.md itself (a
# block right after a "<!-- not run: … -->" line is left out, and says why); a comment
# "# → X" on a line says what it must print, and is checked. They run as root with the build's
# brokerd and tagmem first on PATH, in private mount and pid namespaces where /run (a fresh
# tmpfs) and /var/lib (a fresh directory on disk) are the test's own: nothing of the host's is
# touched or made (not even an empty /run/tagmem), and brokerd --daemon goes when the
# namespace does.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] && command -v unshare >/dev/null || { echo "SKIP: needs root and unshare"; exit 77; }
build=$(cd "$(dirname "$BROKERD")/.." && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

python3 - "$top/README.md" >"$T/readme.sh" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().split("\n")
out, inside, skip, prev = ["set -euo pipefail"], False, False, ""
for n, line in enumerate(lines, 1):
    if not inside and line.strip() == "```sh":
        inside, skip = True, prev.startswith("<!-- not run")
        continue
    if inside and line.strip() == "```":
        inside = False
        continue
    if inside and not skip:
        m = re.search(r"#\s*→\s*(\S+)\s*$", line)
        if m:  # the line says what it prints: check it
            cmd = line[:m.start()].rstrip()
            out.append(f'got=$({cmd}); [ "$got" = {m.group(1)!r} ] || '
                       f'{{ echo "README line {n}: printed $got, says {m.group(1)}" >&2; exit 1; }}')
        else:
            out.append(line)
    if line.strip():
        prev = line.strip()
print("\n".join(out))
PY
grep -q 'tagmem lookup' "$T/readme.sh" || { echo "FAIL: no README block was found"; exit 1; }
mkdir -p "$T/varlib"
unshare --mount --propagation private --pid --fork --mount-proc bash -c '
	set -e
	mount -t tmpfs tmpfs /run && mkdir /run/tagmem
	mount --bind "$3/varlib" /var/lib   # on disk, as on a host (tmpfs cannot drop pages)
	mkdir /var/lib/tagmem
	export PATH="$1/brokerd:$1/cli:$PATH"
	bash -x "$2" 2>"$3/trace" >"$3/out" || { cat "$3/trace" "$3/out" >&2; exit 1; }
' _ "$build" "$T/readme.sh" "$T"
echo "README: $(grep -c '^+ ' "$T/trace") commands ran as written"
grep -q 'memory-backend-file' "$T/out" || { echo "FAIL: qemu-args printed no QEMU arguments"; cat "$T/out"; exit 1; }
