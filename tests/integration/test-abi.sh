#!/usr/bin/env bash
# Theory of operation: libtagmem exports exactly what libtagmem.sym publishes (the internal
# sysfs/DCD layer and helpers stay hidden), every published name resolves, and the .pc file
# lets a program build against the installed header and library.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
lib=$(dirname "$TAGMEM")/../libtagmem/libtagmem.so.1
command -v nm >/dev/null || { echo "SKIP: nm missing"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

nm -D --defined-only "$lib" | awk '$2 == "T" {sub(/@.*/, "", $3); print $3}' | sort >"$T/exported"
sed -n 's/^\t\(tagmem_[a-z0-9_]*\);$/\1/p' "$top/libtagmem/libtagmem.sym" | sort >"$T/published"
diff -u "$T/published" "$T/exported" || { echo "FAIL: exports differ from libtagmem.sym"; exit 1; }

# a consumer built only from the installed files
DESTDIR=$T/root cmake --install "$(dirname "$TAGMEM")/.." >/dev/null
prefix=$(find "$T/root" -name libtagmem.pc -printf '%h\n' | head -1)
cat >"$T/consumer.c" <<'C'
#include <stdio.h>
#include <tagmem.h>
int main(void)
{
	tagmem_tag t;
	char s[TAGMEM_TAG_STRING_MAX];
	if (tagmem_tag_parse("6F1C2A9E-0b7d-4c1e-9a51-3d2f8e7b4c10", &t) < 0)
		return 1;
	puts(tagmem_tag_format(&t, s));
	return 0;
}
C
inc=$(find "$T/root" -name tagmem.h -printf '%h\n' | head -1)
libdir=$(dirname "$prefix")
# a sanitizer build of the library needs a sanitizer build of its consumer
san=""
# (not "ldd | grep -q": grep quits at the first match, ldd dies of SIGPIPE, and pipefail makes
# that a miss when ldd was still writing)
ldd "$lib" >"$T/ldd"
grep -q libasan "$T/ldd" && san="-fsanitize=address,undefined"
cc $san -o "$T/consumer" "$T/consumer.c" -I"$inc" -L"$libdir" -ltagmem $(pkg-config --libs json-c)
out=$(LD_LIBRARY_PATH=$libdir "$T/consumer")
[ "$out" = 6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10 ] || { echo "FAIL: consumer printed $out"; exit 1; }
grep -q '^Requires: json-c' "$prefix/libtagmem.pc" || { echo "FAIL: .pc lacks json-c"; exit 1; }
echo "abi: ok ($(wc -l <"$T/exported") symbols)"
