#!/usr/bin/env python3
"""Theory of operation: a flush that cannot reach stable storage must say so, to every
request it serves, and the daemon must carry on. The failing device is real: an ext4
filesystem on a loop device whose backing file lives on a tmpfs much smaller than the
filesystem claims to be (thin provisioning run dry). Writes through a mapping succeed (the
page cache takes them); writeback then fails with ENOSPC/EIO from the block layer. Needs
root for the loop device and the mounts; skips (77) where they are not available."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import TAGMEM, Client, Scratch, call_as_nobody, check, run, sh  # noqa: E402
from pagecache import MiB, Mapper  # noqa: E402

N = 6


def thin_ext4(scratch):
    """An ext4 that claims 512 MiB over 24 MiB of real space; its mount point."""
    thin, fs = scratch.dir("thin"), scratch.dir("fs")
    scratch.mount("-t", "tmpfs", "-o", "size=24M", "tmpfs", thin)
    back = os.path.join(thin, "backing")
    with open(back, "wb") as f:
        f.truncate(512 * MiB)
    loop = scratch.loop(back)
    sh("mkfs.ext4", "-q", "-b", "4096", "-N", "128", "-J", "size=4", "-E",
       "lazy_itable_init=0,lazy_journal_init=0", loop)
    # Only data writes may run out of room. mkfs "zeroes" by punching holes, so the metadata
    # at the start and the journal get real pages now: a journal write that failed would
    # abort the journal and turn the filesystem read-only, which is a different failure (and
    # makes the rest of this test about it).
    jblk = int(sh("debugfs", "-R", "bmap <8> 0", loop).split()[-1])
    sh("fallocate", "-o", "0", "-l", str(4 * MiB), back)
    sh("fallocate", "-o", str(jblk * 4096), "-l", str(4 * MiB), back)
    scratch.mount("-o", "errors=continue", loop, fs)
    return fs


def kill9_restart(b, c):
    """kill -9 brokerd, start it again on the same state: a client of the new one."""
    c.close()
    b.kill9()
    b.start()
    return Client(b.sock, timeout=120)


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root for a loop device")
        sys.exit(77)
    with Scratch("tagmem-thin.") as scratch:
        try:
            fs = thin_ext4(scratch)
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            print(f"SKIP: cannot build a thin loop filesystem here: {e}")
            sys.exit(77)
        run(lambda b: body(b, fs), "--image-dir", fs, "--dirty-budget", "0", start=True)


def body(b, fs):
    c = Client(b.sock, timeout=120)
    path = os.path.join(fs, "thin.img")
    r = c.call("image_create", path=path, size=128 * MiB)
    check("result" in r, f"image_create: {r}")
    tag = r["result"]["tag"]
    # a second image, made while there is still room for its label
    r = c.call("image_create", path=os.path.join(fs, "thin2.img"), size=32 * MiB)
    check("result" in r, f"image_create: {r}")
    tag2 = r["result"]["tag"]
    m = Mapper(path, 128 * MiB)
    m.fill(0, 128 * MiB, 9)   # 128 MiB of dirty pages, 24 MiB of real space behind them

    waiter = Client(b.sock, timeout=120)
    waiter.send_raw(f'{{"id":"w","op":"flush","tag":"{tag}","wait":true}}\n'.encode())
    for i in range(N):
        c.send_raw(f'{{"id":{i},"op":"flush","tag":"{tag}"}}\n'.encode())
    done = {}
    while len(done) < N:
        msg = c.read_msg()
        if msg.get("event") == "flush_done":
            done[msg["flush_id"]] = msg
    for d in done.values():
        check(d.get("error", {}).get("code") == "io_error",
              f"every asynchronous waiter hears of the failure: {d}")
    w = waiter.read_reply()
    check(w.get("error", {}).get("code") == "io_error", f"the waiting caller too: {w}")
    print("errors:", sorted({d["error"]["message"] for d in done.values()} |
                            {w["error"]["message"]}))
    # The kernel reports a writeback error once per open file, and the failed pages are
    # clean now: a later writeback has nothing to fail on. A later flush must not vouch
    # for the image anyway: those writes are gone.
    again = c.call("flush", tag=tag, wait=True)
    check(again.get("error", {}).get("code") == "io_error" and
          "lost" in again["error"]["message"] and "clear-error" in again["error"]["message"],
          f"a later flush still says the writes were lost, and what to do: {again}")
    print("a later flush:", again["error"]["message"])
    check(b.alive() and c.call("status")["result"]["images_lost_writes"] >= 1,
          "brokerd survived, and status counts the image")
    lw = c.call("show", tag=tag)["result"]["lost_writes"]
    check(lw and lw["since"] > 0 and lw["error"], f"show says when and what: {lw}")

    # so does a brokerd that starts after a kill -9: the kernel will never say it again
    waiter.close()
    c = kill9_restart(b, c)
    after = c.call("flush", tag=tag, wait=True)
    check(after.get("error", {}).get("code") == "io_error" and "lost" in
          after["error"]["message"], f"after a restart too: {after}")
    check(c.call("show", tag=tag)["result"]["lost_writes"] == lw, "the same record")

    # an eviction that runs into the failure says so, keeps what it could not write,
    # and does not take the error away from the next flush of the image
    m2 = Mapper(os.path.join(fs, "thin2.img"), 32 * MiB)
    m2.fill(0, 32 * MiB, 3)
    ev = c.call("evict", tag=tag2, to=0)
    check(ev.get("error", {}).get("code") == "io_error", f"eviction hears of it: {ev}")
    fl = c.call("flush", tag=tag2, wait=True)
    check(fl.get("error", {}).get("code") == "io_error",
          f"so does the next flush of that image: {fl}")
    print("evict, then flush:", ev["error"]["message"], "|", fl["error"]["message"])
    # the kernel reports each error once; show keeps the record
    for t in (tag, tag2):
        pc = c.call("show", tag=t)["result"]["page_cache"]
        check(pc["errors"] >= 1 and pc["last_error"], f"show records the errors: {pc}")
    print("show:", pc["errors"], "error batch(es), last:", pc["last_error"])

    # Clearing is the operator's word that the data was dealt with: only a privileged
    # caller's, and it is durable too.
    os.chmod(b.dir, 0o755)
    m.close()
    own = call_as_nobody(b.sock, {"id": 1, "op": "claim", "tag": tag, "name": "vm"})
    check("result" in own, f"uid 65534 claims the image: {own}")
    nobody = call_as_nobody(b.sock, {"id": 2, "op": "image_clear_error", "tag": tag})
    check(nobody.get("error", {}).get("code") == "permission_denied",
          f"not even the image's owner may clear it: {nobody}")
    check("result" in call_as_nobody(b.sock, {"id": 3, "op": "release", "tag": tag}),
          "and gives it back")
    cl = subprocess.run([TAGMEM, "--socket", b.sock, "image", "clear-error",
                         tag], capture_output=True, text=True)
    check(cl.returncode == 0 and "cleared" in cl.stdout, f"clear-error: {cl.stdout} {cl.stderr}")
    print("clear-error:", cl.stdout.strip())
    check(c.call("show", tag=tag)["result"]["lost_writes"] is None, "show: nothing lost now")
    c = kill9_restart(b, c)
    check(c.call("show", tag=tag)["result"]["lost_writes"] is None,
          "the clear outlived a kill -9 as well")
    fresh = c.call("flush", tag=tag, wait=True)
    # nothing is dirty any more: the flush succeeds, unless the filesystem itself has
    # gone bad meanwhile (ext4 may abort its journal), which is a new error of its own
    check("result" in fresh or "lost at" not in fresh["error"]["message"],
          f"the old loss is not reported again: {fresh}")
    m2.close()
    c.close()
    b.stop()


if __name__ == "__main__":
    main()
