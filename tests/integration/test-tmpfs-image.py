#!/usr/bin/env python3
"""Theory of operation: an image on tmpfs is memory with nothing behind it. brokerd says what
that means, once in its log when it takes the image and plainly for each request that cannot
apply: a flush is refused (no flush makes it durable; it used to answer "the whole image is
durable"), an eviction is refused (its pages are the data; it used to do nothing and say
nothing), an invalidate is refused (there is no disk copy to read afresh; it used to say "try
again" for ever). The refusals are `unsupported` (CLI exit 1) and change nothing: the bytes
are all still there. The same requests on a disk filesystem still work. Needs root to mount
a tmpfs; skips (77) otherwise."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import TAGMEM, Client, Scratch, check, run  # noqa: E402
from pagecache import MiB, Mapper, cachestat  # noqa: E402

T = "7e7e7e7e-1111-4222-8333-444444444444"


def main():
    with Scratch("tagmem-tmpfs.") as scratch:
        mnt = scratch.tmpfs("images")
        run(lambda b: body(b, mnt), "--image-dir", mnt, start=True)


def cli(b, *args):
    env = dict(os.environ, TAGMEM_SOCKET=b.sock)
    return subprocess.run([TAGMEM, *args], capture_output=True, text=True, env=env)


def body(b, mnt):
    c = Client(b.sock, timeout=30)
    path = os.path.join(mnt, "t.img")
    r = c.call("image_create", path=path, size=16 * MiB, tag=T)
    check("result" in r, f"create on tmpfs: {r}")
    m = Mapper(path, 16 * MiB)
    try:
        m.fill(0, 16 * MiB, 7)
        cached = cachestat(path, 0, 16 * MiB)[0]
        check(cached == 16 * MiB, f"the image's 16 MiB are in memory: {cached}")
        for op, args, word in (("flush", {"wait": True}, "durable"),
                               ("flush", {"offset": 0, "length": 4 * MiB, "wait": True}, "durable"),
                               ("evict", {"to": 0}, "nothing was evicted"),
                               ("image_invalidate", {}, "nothing to invalidate")):
            r = c.call(op, tag=T, **args)
            err = r.get("error", {})
            check(err.get("code") == "unsupported" and "tmpfs" in err.get("message", "")
                  and word in err.get("message", ""), f"{op} {args} on tmpfs: {r}")
        check(cachestat(path, 0, 16 * MiB)[0] == 16 * MiB, "the refusals dropped nothing")
        check(m.check(0, 16 * MiB, 7), "every byte is still there")
        for args in (["flush", T], ["evict", T, "--to", "0"], ["image", "invalidate", T]):
            p = cli(b, *args)
            check(p.returncode == 1 and "tmpfs" in p.stderr,
                  f"tagmem {' '.join(args)}: exit 1 saying tmpfs: {p.returncode} {p.stderr}")
        p = cli(b, "--json", "flush", T)
        check(p.returncode == 1 and p.stdout.count('"code"') == 1 and "unsupported" in p.stdout,
              f"--json: one error object, unsupported: {p.stdout}")
        show = c.call("show", tag=T)
        pc = show.get("result", {}).get("page_cache", {})
        check(pc.get("resident_bytes", 0) >= 16 * MiB and pc.get("errors") == 0,
              f"show counts the image's pages, and a refusal is no error of the image: {show}")
    finally:
        m.close()
    c.close()
    log = b.log_text()
    check(log.count("is on tmpfs") == 1, f"brokerd said what tmpfs means once: {log}")
    print("tmpfs image: flush, evict and invalidate refused with what tmpfs means; log said so once")


if __name__ == "__main__":
    main()
