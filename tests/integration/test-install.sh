#!/usr/bin/env bash
# Theory of operation: `cmake --install BUILD --prefix P` puts every file under P (none in
# /lib/udev, /lib/systemd, /usr/local/…), and the files that name paths — the systemd units,
# libtagmem.pc — name P, whatever prefix the build was configured with. A system install
# (--prefix /usr, here under DESTDIR) puts the configuration in /etc and its units point
# there; a second install keeps an administrator's edited /etc/default file.
set -euo pipefail
build=$(cd "$(dirname "$TAGMEM")/.." && pwd)
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

P=$T/prefix
cmake --install "$build" --prefix "$P" >"$T/install.log"
[ -s "$build/install_manifest.txt" ] || fail "no install manifest"
outside=$(grep -v "^$P/" "$build/install_manifest.txt" || true)
[ -z "$outside" ] || fail "installed outside the prefix $P:"$'\n'"$outside"
for f in sbin/brokerd sbin/tagmem-fmd share/man/man8/tagmem-fmd.8 sbin/tagmem-clusterd share/man/man8/tagmem-clusterd.8 bin/tagmem sbin/tagmem-guestd lib/udev/tagmem-id lib/udev/rules.d/60-tagmem.rules \
	lib/systemd/system/tagmem-brokerd.service lib/systemd/system/tagmem-brokerd.socket \
	lib/systemd/system/tagmem-guestd.service etc/default/tagmem-brokerd \
	share/bash-completion/completions/tagmem share/man/man1/tagmem.1 \
	etc/libvirt/hooks/qemu.d/tagmem; do
	[ -e "$P/$f" ] || fail "$f is not under the prefix"
done
pc=$(find "$P" -name libtagmem.pc)
[ -n "$pc" ] || fail "no libtagmem.pc"
grep -qx "prefix=$P" "$pc" || fail "libtagmem.pc names another prefix: $(grep ^prefix "$pc")"
grep -q "/usr/local" "$pc" "$P"/lib/systemd/system/*.service && fail "a file names /usr/local"
grep -qx "ExecStart=$P/sbin/brokerd \$BROKERD_OPTS" "$P/lib/systemd/system/tagmem-brokerd.service" ||
	fail "brokerd's unit runs another brokerd: $(grep ExecStart "$P/lib/systemd/system/tagmem-brokerd.service")"
grep -qx "EnvironmentFile=-$P/etc/default/tagmem-brokerd" "$P/lib/systemd/system/tagmem-brokerd.service" ||
	fail "brokerd's unit reads another default file"
grep -qx "ExecStart=$P/sbin/tagmem-guestd" "$P/lib/systemd/system/tagmem-guestd.service" ||
	fail "the agent's unit runs another agent"
[ -x "$P/etc/libvirt/hooks/qemu.d/tagmem" ] &&
	grep -qx "exec $P/bin/tagmem libvirt-hook \"\$@\"" "$P/etc/libvirt/hooks/qemu.d/tagmem" ||
	fail "libvirt's hook does not run this prefix's tagmem: $(tail -1 "$P/etc/libvirt/hooks/qemu.d/tagmem")"
echo "install: every file under --prefix $P, and the units, the hook and .pc name it"

# a program of the typed calls (docs/example-typed.c), built against the installed
# libtagmem.pc alone, lists a real brokerd's tags, claims one and sees its event
top=$(cd "$(dirname "$0")/../.." && pwd)
export PKG_CONFIG_PATH=$(dirname "$pc")
cc -Wall -Werror "$top/docs/example-typed.c" $(pkg-config --cflags --libs libtagmem) \
	-o "$T/example" || fail "the example does not build against the installed libtagmem.pc"
"$BROKERD" --socket "$T/b.sock" --state-dir "$T/state" --sim-root "$T/sim" --guest-dir none \
	2>"$T/brokerd.log" &
bpid=$!
trap 'kill $bpid 2>/dev/null; rm -rf "$T"' EXIT
until TAGMEM_SOCKET=$T/b.sock "$TAGMEM" status >/dev/null 2>&1; do sleep 0.05; done
X=e1e1e1e1-1111-4222-8333-444444444444
TAGMEM_SOCKET=$T/b.sock "$TAGMEM" fm add --size 2M --tag $X >/dev/null
for _ in $(seq 100); do TAGMEM_SOCKET=$T/b.sock "$TAGMEM" lookup $X >/dev/null 2>&1 && break; sleep 0.05; done
libdir=$(pkg-config --variable=libdir libtagmem)
# a sanitizer build's library needs its runtime loaded first in a program built without it
asan=$(ldd "$libdir/libtagmem.so" | grep -o '/[^ ]*libasan[^ ]*' || true)
out=$(TAGMEM_SOCKET=$T/b.sock LD_LIBRARY_PATH=$libdir LD_PRELOAD=$asan \
	ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 "$T/example" $X example 2>&1) ||
	fail "the example failed: $out"
grep -q "^$X ready 2097152 " <<<"$out" || fail "the example's list: $out"
grep -qx "event: tag_claimed by example" <<<"$out" || fail "the example saw no claim event: $out"
grep -qx released <<<"$out" || fail "the example did not release: $out"
nm -D "$T/example" | grep -q ' U json_' && fail "the example calls json-c: the typed calls leaked it"
echo "install: a typed-calls program builds against the installed libtagmem.pc and works"

# a system install: configuration in /etc, kept on the next install
D=$T/root
DESTDIR=$D cmake --install "$build" --prefix /usr >/dev/null
[ -f "$D/etc/default/tagmem-brokerd" ] || fail "--prefix /usr: no /etc/default/tagmem-brokerd"
grep -qx "EnvironmentFile=-/etc/default/tagmem-brokerd" "$D/usr/lib/systemd/system/tagmem-brokerd.service" ||
	fail "--prefix /usr: the unit does not read /etc/default"
echo 'BROKERD_OPTS="--backend host"' >"$D/etc/default/tagmem-brokerd"
DESTDIR=$D cmake --install "$build" --prefix /usr >/dev/null
grep -q -- '--backend host' "$D/etc/default/tagmem-brokerd" || fail "an administrator's edit was replaced"
echo "install: --prefix /usr puts configuration in /etc and keeps an administrator's edits"
