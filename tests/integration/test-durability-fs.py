#!/usr/bin/env python3
"""Theory of operation: a range flush is durable only where brokerd's barrier can make it
so. On ext4 with a journal, forcing a commit through the barrier file commits the range's
block allocations too, so brokerd writes just the range ("durability": "range") and the rest
of the image stays dirty. On ext4 without a journal (mkfs -O ^has_journal; the root
filesystem of this project's CI machines is one) an fsync of the barrier commits nothing of
the image's, so brokerd must fdatasync the image ("whole_file"). Both filesystems are real:
fresh ext4s on loop devices. Needs root; skips (77) otherwise."""
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
        dirs = {}
        for name, features in (("journal", []), ("nojournal", ["-O", "^has_journal"])):
            back, mnt = os.path.join(scratch.top, name + ".img"), scratch.dir(name)
            with open(back, "wb") as f:
                f.truncate(512 * MiB)
            try:
                sh("mkfs.ext4", "-q", "-F", *features, back)
                scratch.mount("-o", "loop", back, mnt)
            except (subprocess.CalledProcessError, FileNotFoundError) as e:
                print(f"SKIP: cannot make a loop ext4 here: {e}")
                sys.exit(77)
            dirs[name] = mnt
        run(lambda b: flush_on(b, dirs), "--image-dir", dirs["journal"], "--image-dir",
            dirs["nojournal"], "--dirty-budget", "0", start=True)


def flush_on(b, dirs):
    c = Client(b.sock, timeout=60)
    for name, want in (("journal", "range"), ("nojournal", "whole_file")):
        path = os.path.join(dirs[name], "i.img")
        r = c.call("image_create", path=path, size=64 * MiB)
        check("result" in r, f"create on {name}: {r}")
        tag = r["result"]["tag"]
        m = Mapper(path, 64 * MiB)
        try:
            m.fill(0, 64 * MiB, 5)
            f = c.call("flush", tag=tag, offset=8 * MiB, length=8 * MiB, wait=True)
            check(f.get("result", {}).get("durability") == want,
                  f"ext4 {name}: a range flush is made durable by {want}: {f}")
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
