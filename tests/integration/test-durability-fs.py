#!/usr/bin/env python3
"""Theory of operation: a range flush is durable only where brokerd's barrier can make it
so. On ext4 with a journal, forcing a commit through the barrier file commits the range's
block allocations too, so brokerd writes just the range ("durability": "range") and the rest
of the image stays dirty. On ext4 without a journal (mkfs -O ^has_journal; the root
filesystem of this project's CI machines is one) an fsync of the barrier commits nothing of
the image's, so brokerd must fdatasync the image ("whole_file"). Both filesystems are real:
fresh ext4s on loop devices. Clean pages are not durability: each flush must also have sent
the device a cache flush (the loop device's flush count in /sys/block/loopN/stat goes up),
which is what fdatasync or the barrier's fsync does and a mere writeback does not. Needs
root; skips (77) otherwise."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Client, Scratch, check, run, sh  # noqa: E402
from pagecache import MiB, Mapper, cachestat  # noqa: E402


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root for loop devices")
        sys.exit(77)
    with Scratch("tagmem-durfs.") as scratch:
        dirs, devs = {}, {}
        for name, features in (("journal", []), ("nojournal", ["-O", "^has_journal"])):
            back, mnt = os.path.join(scratch.top, name + ".img"), scratch.dir(name)
            with open(back, "wb") as f:
                f.truncate(512 * MiB)
            try:
                sh("mkfs.ext4", "-q", "-F", *features, back)
                devs[name] = scratch.loop(back)
                scratch.mount(devs[name], mnt)
            except (subprocess.CalledProcessError, FileNotFoundError) as e:
                print(f"SKIP: cannot make a loop ext4 here: {e}")
                sys.exit(77)
            dirs[name] = mnt
        run(lambda b: flush_on(b, dirs, devs), "--image-dir", dirs["journal"], "--image-dir",
            dirs["nojournal"], "--dirty-budget", "0", start=True)


def device_flushes(dev):
    """Cache flushes the block device has completed (field 16 of its stat, Linux 5.5+)."""
    with open(f"/sys/block/{os.path.basename(dev)}/stat") as f:
        fields = f.read().split()
    check(len(fields) >= 17, f"{dev}: no flush count in its stat: {fields}")
    return int(fields[15])


def flush_on(b, dirs, devs):
    c = Client(b.sock, timeout=60)
    for name, want in (("journal", "range"), ("nojournal", "whole_file")):
        path = os.path.join(dirs[name], "i.img")
        r = c.call("image_create", path=path, size=64 * MiB)
        check("result" in r, f"create on {name}: {r}")
        tag = r["result"]["tag"]
        m = Mapper(path, 64 * MiB)
        try:
            m.fill(0, 64 * MiB, 5)
            check(cachestat(path, 8 * MiB, 8 * MiB)[1] == 8 * MiB,
                  f"{name}: the range to flush is dirty first")
            flushes = device_flushes(devs[name])
            f = c.call("flush", tag=tag, offset=8 * MiB, length=8 * MiB, wait=True)
            check(f.get("result", {}).get("durability") == want,
                  f"ext4 {name}: a range flush is made durable by {want}: {f}")
            check(device_flushes(devs[name]) > flushes,
                  f"ext4 {name}: the flush reached the disk: it sent the device a cache flush")
            check(cachestat(path, 8 * MiB, 8 * MiB)[1:3] == (0, 0),
                  f"{name}: the range is written: {cachestat(path, 8 * MiB, 8 * MiB)}")
            rest = cachestat(path, 32 * MiB, 32 * MiB)
            if want == "range":
                check(rest[1] + rest[2] > 16 * MiB, f"{name}: the rest stays dirty: {rest}")
            else:
                check(rest[1] == 0 and rest[2] == 0, f"{name}: the whole file was written: {rest}")
            print(f"ext4 {name}: durability {want}")
        finally:
            m.close()
    c.close()

if __name__ == "__main__":
    main()
