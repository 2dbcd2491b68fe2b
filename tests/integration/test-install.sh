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
	share/bash-completion/completions/tagmem share/man/man1/tagmem.1; do
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
echo "install: every file under --prefix $P, and the units and .pc name it"

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
