#!/usr/bin/env python3
"""Theory of operation: under real host memory pressure the broker gives image memory back
without the guest's help. The pressure is the kernel's own: a process in a memory-limited
cgroup re-reads a file half again as large as its limit, so its pages are evicted and
refault over and over (thrashing), and the kernel accounts that stall in
/proc/pressure/memory. brokerd watches it with a PSI trigger; when the trigger fires, every
image's cache is halved: written back first, then dropped, pages a process maps included.
Needs root and a cgroup memory controller (v1 or v2); skips (77) without them."""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Broker, Client, check  # noqa: E402
from pagecache import MiB, Mapper, cachestat, check_direct  # noqa: E402

SIZE = 128 * MiB
LIMIT = 32 * MiB


def memory_cgroup(name):
    """A new memory cgroup limited to LIMIT: (procs file, directory), or None."""
    v2 = "/sys/fs/cgroup"
    try:
        with open(os.path.join(v2, "cgroup.controllers")) as f:
            if "memory" in f.read().split():
                d = os.path.join(v2, name)
                os.mkdir(d)
                with open(os.path.join(d, "memory.max"), "w") as f:
                    f.write(str(LIMIT))
                return os.path.join(d, "cgroup.procs"), d
    except OSError:
        pass
    v1 = "/sys/fs/cgroup/memory"
    if os.path.isdir(v1):
        d = os.path.join(v1, name)
        os.mkdir(d)
        with open(os.path.join(d, "memory.limit_in_bytes"), "w") as f:
            f.write(str(LIMIT))
        return os.path.join(d, "cgroup.procs"), d
    return None


def thrasher(procs, path):
    """A child that joins the cgroup, then reads `path` in a loop until killed."""
    pid = os.fork()
    if pid == 0:
        try:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
            fd = os.open(path, os.O_RDONLY)
            while True:
                os.lseek(fd, 0, os.SEEK_SET)
                while os.read(fd, 1 << 20):
                    pass
        finally:
            os._exit(1)
    return pid


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root for a memory cgroup")
        sys.exit(77)
    if not os.path.exists("/proc/pressure/memory"):
        print("SKIP: the kernel has no PSI (/proc/pressure/memory)")
        sys.exit(77)
    name = f"tagmem-pressure-{os.getpid()}"
    cg = memory_cgroup(name)
    if not cg:
        print("SKIP: no cgroup memory controller to create pressure in")
        sys.exit(77)
    procs, cgdir = cg
    # 50 ms of stall in a 2 s window: low enough for one small thrashing process to reach
    b = Broker("--pressure", "some 50000 2000000", "--dirty-budget", "0")
    m = pid = None
    try:
        b.start()
        c = Client(b.sock, timeout=60)
        st = c.call("status")["result"]["memory_pressure"]
        check(st["trigger"] == "some 50000 2000000", f"the trigger is armed: {st}")

        path = os.path.join(b.state, "images", "p.img")
        r = c.call("image_create", path=path, size=SIZE)
        check("result" in r, f"image_create: {r}")
        tag = r["result"]["tag"]
        m = Mapper(path, SIZE)
        m.fill(0, SIZE, 8)                   # resident, dirty, mapped: as a running VM's
        check(cachestat(path, 0, SIZE)[0] == SIZE, "fully resident")

        junk = os.path.join(b.dir, "thrash.bin")
        with open(junk, "wb") as f:
            f.write(os.urandom(LIMIT * 3 // 2))
            f.flush()
            os.fsync(f.fileno())
        fstype = subprocess.run(["stat", "-f", "-c", "%T", junk], capture_output=True,
                                text=True).stdout.strip()
        if fstype == "tmpfs":
            print("SKIP: the test directory is on tmpfs, whose pages cannot be thrashed")
            sys.exit(77)
        fd = os.open(junk, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # charged to the cgroup on read
        os.close(fd)

        pid = thrasher(procs, junk)
        deadline = time.time() + 30
        events = 0
        while time.time() < deadline:
            time.sleep(0.2)
            events = c.call("status")["result"]["memory_pressure"]["events"]
            if events and cachestat(path, 0, SIZE)[0] <= SIZE // 2:
                break
        resident = cachestat(path, 0, SIZE)[0]
        with open("/proc/pressure/memory") as f:
            psi = f.readline().strip()
        check(events >= 1, f"the PSI trigger fired ({psi})")
        check(resident <= SIZE // 2, f"the image gave half its cache back: {resident >> 20} MiB")
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pid = None
        check(check_direct(path, 0, SIZE, 8) is None, "no dirty byte was lost")
        m.check(0, SIZE, 8)
        check("Memory pressure" in b.log_text(), "brokerd says why it evicted")
        print(f"pressure: {events} trigger event(s), image {SIZE >> 20} MiB -> "
              f"{resident >> 20} MiB resident ({psi})")
        c.close()
    except BaseException:
        sys.stderr.write("--- brokerd log ---\n" + b.log_text())
        raise
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        if m:
            m.close()
        b.cleanup()
        for _ in range(50):                  # the killed child may take a moment to leave
            try:
                os.rmdir(cgdir)
                break
            except OSError:
                time.sleep(0.1)


if __name__ == "__main__":
    main()
