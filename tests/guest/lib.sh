# Host side of the real-kernel tests. A test sources this, writes a guest check script, makes
# backing files, and calls run_guest with the QEMU device arguments. The guest reports
#   TAGMEM-CHECK ok|fail NAME [detail]      one line per check
#   TAGMEM-GUEST-DONE rc=N                  when its script ended
# over the serial console; this side fails the test on any failed check, a missing DONE, or a
# timeout. Debian's own kernel boots under TCG (KVM guests hang on this machine type: KVM is
# probed once and used only if a guest really comes up under it).
set -euo pipefail

: "${BUILD_DIR:?BUILD_DIR must point at the build tree (ctest sets it)}"
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KVER=${TAGMEM_GUEST_KVER:-$(ls /lib/modules 2>/dev/null | sort -V | tail -1)}
KERNEL=/boot/vmlinuz-$KVER

guest_skip() {
	echo "SKIP: $*" >&2
	echo "SKIP: the real-kernel tests did NOT run on this machine: $*" >&2
	exit 77
}

for need in qemu-system-x86_64 busybox ndctl cpio; do
	command -v "$need" >/dev/null || guest_skip "$need is missing (tests/deps.sh guest installs it)"
done
[ -n "$KVER" ] && [ -r "$KERNEL" ] || guest_skip "no readable kernel in /boot (package linux-image-amd64)"

G=$(mktemp -d "${TMPDIR:-/tmp}/tagmem-guest.XXXXXX")
HOST_BROKERD_PID= GUEST_PID=
EXTRA_PIDS=()
guest_cleanup() {
	# set -e holds in traps too: nothing here may fail the test after its verdict
	local pids="$HOST_BROKERD_PID $GUEST_PID ${EXTRA_PIDS[*]}"
	[ -n "${pids// /}" ] && kill $pids 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$G"
}
trap guest_cleanup EXIT

# accel: tcg unless a KVM guest demonstrably boots here (cached per build tree).
guest_accel() {
	local cache=$BUILD_DIR/guest-accel
	if [ -n "${TAGMEM_GUEST_ACCEL:-}" ]; then
		echo "$TAGMEM_GUEST_ACCEL"
		return
	fi
	if [ -f "$cache" ]; then
		cat "$cache"
		return
	fi
	local accel=tcg
	if [ -w /dev/kvm ]; then
		printf 'true\n' >"$G/probe.sh"
		"$top/tests/guest/mkinitramfs.sh" "$G/probe.cpio.gz" "$BUILD_DIR" "$G/probe.sh"
		if timeout 20 qemu-system-x86_64 -accel kvm -m 256M -nographic -no-reboot \
			-kernel "$KERNEL" -initrd "$G/probe.cpio.gz" \
			-append "console=ttyS0 panic=-1 quiet" 2>/dev/null | grep -q TAGMEM-GUEST-DONE; then
			accel=kvm
		fi
	fi
	echo "$accel" >"$cache"
	echo "$accel"
}

# start_host_brokerd: a brokerd on the host side (simulated backend, state in $G/state,
# images in $G/state/images) and a tagmem() that talks to it; extra arguments go to brokerd.
# Stopped when the test exits.
start_host_brokerd() {
	export TAGMEM_SOCKET=$G/brokerd.sock
	"$BUILD_DIR/brokerd/brokerd" --socket "$TAGMEM_SOCKET" --state-dir "$G/state" \
		--sim-root "$G/sim" "$@" 2>"$G/brokerd.log" &
	HOST_BROKERD_PID=$!
	until "$BUILD_DIR/cli/tagmem" status >/dev/null 2>&1; do
		kill -0 "$HOST_BROKERD_PID" 2>/dev/null || { cat "$G/brokerd.log" >&2; exit 1; }
		sleep 0.05
	done
}
tagmem() { "$BUILD_DIR/cli/tagmem" "$@"; }

# start_fabric_hosts [ETCD_URL]: two hosts, h1 and h2, of one simulated fabric (tagmem-fmd in
# $G/fabric): each its own brokerd ($G/hN.sock, state in $G/hN) and, given etcd, its own
# tagmem-clusterd ($G/hN.csock); on HOST tagmem… talks to that host. Stopped at the end.
start_fabric_hosts() {
	local etcd=${1:-} h
	export TAGMEM_FABRIC=$G/fabric
	"$BUILD_DIR/brokerd/tagmem-fmd" --dir "$TAGMEM_FABRIC" --region-size 16G 2>"$G/fmd.log" &
	EXTRA_PIDS+=($!)
	until [ -S "$TAGMEM_FABRIC/fabric.sock" ]; do sleep 0.05; done
	for h in h1 h2; do
		"$BUILD_DIR/brokerd/brokerd" --socket "$G/$h.sock" --state-dir "$G/$h" \
			--sim-root "$G/$h/sim" --sim-region-size 16G --fabric "$TAGMEM_FABRIC" \
			--host-id $h 2>"$G/$h.log" &
		EXTRA_PIDS+=($!)
		until TAGMEM_SOCKET=$G/$h.sock tagmem status >/dev/null 2>&1; do sleep 0.05; done
		[ -n "$etcd" ] || continue
		"$BUILD_DIR/brokerd/tagmem-clusterd" --etcd "$etcd" --host-id $h \
			--socket "$G/$h.sock" --listen "$G/$h.csock" --ttl 5 2>"$G/clusterd-$h.log" &
		EXTRA_PIDS+=($!)
		until [ -S "$G/$h.csock" ]; do sleep 0.05; done
	done
}
on() { local h=$1; shift; TAGMEM_SOCKET=$G/$h.sock TAGMEM_CLUSTER_SOCKET=$G/$h.csock tagmem "$@"; }

# fs_orders_commits PATH (tests/fsinfo.sh)
. "$top/tests/fsinfo.sh"

# start_guest CHECK_SCRIPT TIMEOUT_S [QEMU ARGS…]: boot in the background (console in
# $G/console.log; GUEST_MEM_SLOTS and GUEST_MAXMEM size the memory hot-plug room);
# finish_guest waits for it and asserts on the report.
start_guest() {
	local script=$1 limit=$2 accel
	shift 2
	accel=$(guest_accel)
	GUEST_ACCEL=$accel
	"$top/tests/guest/mkinitramfs.sh" "$G/initrd.cpio.gz" "$BUILD_DIR" "$script"
	GUEST_START=$(date +%s%N)
	: >"$G/console.log"
	timeout "$limit" qemu-system-x86_64 -accel "$accel" -machine pc,nvdimm=on \
		-m 512M,slots=${GUEST_MEM_SLOTS:-8},maxmem=${GUEST_MAXMEM:-4G} -smp 1 -nographic -no-reboot \
		-kernel "$KERNEL" -initrd "$G/initrd.cpio.gz" \
		-append "console=ttyS0 panic=-1 quiet" "$@" >"$G/console.log" 2>&1 &
	GUEST_PID=$!
}

# wait_console PATTERN SECONDS: until the guest printed a line matching PATTERN.
wait_console() {
	local pattern=$1 limit=$2 end
	end=$(($(date +%s) + limit))
	while [ "$(date +%s)" -lt "$end" ]; do
		grep -qE "$pattern" "$G/console.log" 2>/dev/null && return 0
		kill -0 "$GUEST_PID" 2>/dev/null || break
		sleep 0.005
	done
	tail -n 30 "$G/console.log" >&2
	echo "FAIL: the guest never printed /$pattern/" >&2
	exit 1
}

finish_guest() {
	local limit=$1 rc=0 n
	wait "$GUEST_PID" || rc=$?
	GUEST_MS=$((($(date +%s%N) - GUEST_START) / 1000000))
	tr -d '\r' <"$G/console.log" | grep -E '^TAGMEM-' >"$G/report" || true
	if [ "$rc" = 124 ]; then
		tail -n 40 "$G/console.log" >&2
		echo "FAIL: the guest did not finish within ${limit}s" >&2
		exit 1
	fi
	cat "$G/report"
	if ! grep -q '^TAGMEM-GUEST-DONE' "$G/report"; then
		tail -n 40 "$G/console.log" >&2
		echo "FAIL: the guest never reported (qemu exit $rc)" >&2
		exit 1
	fi
	if grep -q '^TAGMEM-CHECK fail' "$G/report" ||
		! grep -q '^TAGMEM-GUEST-DONE rc=0$' "$G/report"; then
		tail -n 60 "$G/console.log" >&2
		echo "FAIL: $(grep -c '^TAGMEM-CHECK fail' "$G/report") guest check(s) failed;" \
			"$(grep '^TAGMEM-GUEST-DONE' "$G/report")" >&2
		exit 1
	fi
	n=$(grep -c '^TAGMEM-CHECK ok' "$G/report" || true)
	[ "$n" -gt 0 ] || { echo "FAIL: the guest ran no check" >&2; exit 1; }
	echo "guest: $n checks passed on $KVER under $GUEST_ACCEL in ${GUEST_MS} ms"
}

# run_guest CHECK_SCRIPT TIMEOUT_S [QEMU ARGS…]: boot, run the checks, assert on the report.
run_guest() {
	local limit=$2
	start_guest "$@"
	finish_guest "$limit"
}

# nvdimm_args ID IMAGE [label]: QEMU arguments for one nvdimm on a shared file backend, with a
# 128 KiB label area (the default) or none (label-less).
nvdimm_args() {
	local id=$1 img=$2 slot=$3 label=${4:-label}
	printf -- '-object\nmemory-backend-file,id=mem%s,share=on,mem-path=%s,size=%s\n' \
		"$id" "$img" "$(stat -c %s "$img")"
	if [ "$label" = label ]; then
		printf -- '-device\nnvdimm,id=nv%s,memdev=mem%s,slot=%s,label-size=128K\n' "$id" "$id" "$slot"
	else
		printf -- '-device\nnvdimm,id=nv%s,memdev=mem%s,slot=%s\n' "$id" "$id" "$slot"
	fi
}
