#!/usr/bin/env bash
# A private libvirtd for the libvirt tests: private-libvirtd.sh WORK HOOK
# Runs (exec) Debian's libvirtd in a mount namespace where /etc/libvirt, /run/libvirt,
# /var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt are WORK's own, with HOOK as its
# qemu hook (/etc/libvirt/hooks/qemu.d/tagmem). Its socket: WORK/run/libvirt-sock
# (virsh -c "qemu:///system?socket=WORK/run/libvirt-sock"). QEMU runs as root with nothing
# relabelled, no cgroups and no virtlogd: the test sandbox has no systemd and hybrid cgroups,
# and what the tests look at is libvirt's own flow. Stop it with SIGTERM; destroy its domains
# first (libvirtd leaves them running).
set -euo pipefail
work=$1 hook=$2
libvirtd=$(command -v libvirtd || echo /usr/sbin/libvirtd)
mkdir -p "$work"/etc/hooks/qemu.d "$work"/run "$work"/lib "$work"/log "$work"/cache
printf 'auth_unix_rw = "none"\nauth_unix_ro = "none"\n' >"$work/etc/libvirtd.conf"
printf '%s\n' 'user = "root"' 'group = "root"' 'dynamic_ownership = 0' \
	'security_driver = "none"' 'cgroup_controllers = [ ]' 'stdio_handler = "file"' \
	>"$work/etc/qemu.conf"
install -m 755 "$hook" "$work/etc/hooks/qemu.d/tagmem"
exec unshare -m sh -c "set -e; mount --make-rprivate /
	for d in etc:/etc/libvirt run:/run/libvirt lib:/var/lib/libvirt log:/var/log/libvirt cache:/var/cache/libvirt; do
		mkdir -p \${d#*:}; mount --bind '$work'/\${d%%:*} \${d#*:}
	done
	exec '$libvirtd' --config /etc/libvirt/libvirtd.conf --pid-file '$work/libvirtd.pid'"
