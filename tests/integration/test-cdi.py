#!/usr/bin/env python3
"""Theory of operation: containers get tagged capacity by tag through CDI. brokerd keeps a
CDI spec (--cdi-spec) that names every tag with a device (kind tagmem.io/tag, the device
named by its tag, seen inside at /dev/tagmem/<uuid>). The spec follows the tags: a new one
appears, a forgotten one goes, and an unchanged spec is not rewritten. A real podman (Debian's,
with runc, a busybox root filesystem and no image registry) runs a container with
--device tagmem.io/tag=<uuid> for an image and for simulated DCD capacity, and reads there
the bytes written on the host; a container writes bytes the host then reads. A spec path
that is not an absolute .json is refused at start."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import BROKERD, TAGMEM, Broker, check  # noqa: E402

PODMAN = shutil.which("podman")
BUSYBOX = shutil.which("busybox")
if not PODMAN or not shutil.which("runc") or not BUSYBOX:
    sys.exit("podman, runc and busybox are needed: tests/deps.sh all installs them")

IMG = "cd100001-1111-4222-8333-444444444444"
DCD = "cd100002-1111-4222-8333-444444444444"
GONE = "cd100003-1111-4222-8333-444444444444"


def tagmem(b, *args):
    r = subprocess.run([TAGMEM, *args], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, TAGMEM_SOCKET=b.sock))
    check(r.returncode == 0, f"tagmem {' '.join(args)}: {r.stderr}")
    return r.stdout


def spec_when(path, pred, what):
    spec = None
    for _ in range(200):
        try:
            with open(path) as f:
                spec = json.load(f)
            if pred(spec):
                return spec
        except (OSError, ValueError):
            pass
        time.sleep(0.025)
    raise AssertionError(f"the CDI spec never showed {what}: {spec}")


def names(spec):
    return {d["name"] for d in spec["devices"]}


def podman(work, runroot, tag, script):
    """Run busybox sh -c SCRIPT in a container given the tag's CDI device."""
    # runc and cgroupfs: crun and systemd refuse this machine's hybrid cgroups; the limits:
    # podman's default open-file limit is above what an unprivileged-in-a-sandbox root has
    cmd = [PODMAN, "--root", f"{work}/storage", "--runroot", runroot,
           "--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs",
           "--events-backend", "none",
           "run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024",
           "--ulimit", "nproc=1024:1024", "--device", f"tagmem.io/tag={tag}",
           "--rootfs", f"{work}/rootfs", "/bin/sh", "-c", script]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, f"podman run (exit {r.returncode}): {r.stderr}")
    return r.stdout


def main():
    # only an absolute path ending in .json: runtimes read nothing else
    for bad in ("relative.json", "/run/cdi/tagmem.yaml.txt"):
        r = subprocess.run([BROKERD, "--cdi-spec", bad], capture_output=True, text=True,
                           timeout=10)
        check(r.returncode == 2 and "--cdi-spec" in r.stderr, f"--cdi-spec {bad}: {r.stderr}")
    print("refused: a CDI spec path that is not an absolute .json")

    # podman reads specs from /etc/cdi and /var/run/cdi only: a name of this run's own there
    os.makedirs("/var/run/cdi", exist_ok=True)
    spec_path = f"/var/run/cdi/tagmem-test-{os.getpid()}.json"
    work = tempfile.mkdtemp(prefix="tagmem-cdi.")
    # podman refuses a run root path over 50 characters: TMPDIR may be longer than that
    runroot = tempfile.mkdtemp(prefix="tmcdi.", dir="/tmp")
    b = Broker("--cdi-spec", spec_path, "--guest-dir", "none")
    try:
        b.start()
        spec = spec_when(spec_path, lambda s: True, "anything")
        check(spec["cdiVersion"] == "0.5.0" and spec["kind"] == "tagmem.io/tag" and
              spec["devices"] == [], f"the spec with no tag: {spec}")
        img = os.path.join(b.state, "images", "c.img")
        tagmem(b, "image", "create", img, "--size", "16M", "--tag", IMG)
        tagmem(b, "fm", "add", "--size", "2M", "--tag", DCD)
        tagmem(b, "fm", "add", "--size", "2M", "--tag", GONE)
        spec = spec_when(spec_path, lambda s: names(s) == {IMG, DCD, GONE}, "the three tags")
        by_name = {d["name"]: d["containerEdits"] for d in spec["devices"]}
        check(by_name[IMG]["mounts"][0]["hostPath"] == img and
              by_name[IMG]["mounts"][0]["containerPath"] == f"/dev/tagmem/{IMG}",
              f"the image's edits: {by_name[IMG]}")
        dcd_path = json.loads(tagmem(b, "--json", "show", DCD))["path"]
        check(by_name[DCD]["mounts"][0]["hostPath"] == dcd_path,
              f"the simulated device's edits: {by_name[DCD]}")
        tagmem(b, "fm", "release", "--tag", GONE)
        spec_when(spec_path, lambda s: names(s) == {IMG, DCD}, "the released tag gone")
        print("the spec follows the tags: three appear, a released one goes")

        # unchanged: a claim changes nothing a container sees, so the file stays as it was
        before = os.stat(spec_path).st_ino
        tagmem(b, "claim", DCD, "--name", "ctr")
        time.sleep(0.3)
        check(os.stat(spec_path).st_ino == before, "the spec was rewritten with nothing new")
        print("a claim changes nothing in it: not rewritten")

        os.makedirs(f"{work}/rootfs/bin")
        shutil.copy(BUSYBOX, f"{work}/rootfs/bin/busybox")
        os.symlink("busybox", f"{work}/rootfs/bin/sh")
        with open(img, "r+b") as f:
            f.write(b"IMAGE-BYTES-FOR-A-CONTAINER")
        with open(dcd_path, "r+b") as f:
            f.seek(4096)
            f.write(b"DCD-BYTES-FOR-A-CONTAINER")
        got = podman(work, runroot, IMG, f"busybox head -c 27 /dev/tagmem/{IMG}")
        check(got == "IMAGE-BYTES-FOR-A-CONTAINER", f"the container read {got!r} of the image")
        got = podman(work, runroot, DCD, f"busybox dd if=/dev/tagmem/{DCD} bs=1 skip=4096 count=25 "
                     f"2>/dev/null; printf CONTAINER-WROTE | busybox dd of=/dev/tagmem/{DCD} "
                     "bs=1 seek=8192 conv=notrunc 2>/dev/null")
        check(got == "DCD-BYTES-FOR-A-CONTAINER", f"the container read {got!r} of the DCD tag")
        with open(dcd_path, "rb") as f:
            f.seek(8192)
            back = f.read(15)
        check(back == b"CONTAINER-WROTE", f"the host read {back!r} of what the container wrote")
        print("podman: a container read the image's and the DCD tag's bytes by tag, and wrote "
              "bytes the host reads")
    except BaseException:
        sys.stderr.write("--- brokerd log ---\n" + b.log_text())
        raise
    finally:
        b.cleanup()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(runroot, ignore_errors=True)
        try:
            os.unlink(spec_path)
        except FileNotFoundError:
            pass


main()
