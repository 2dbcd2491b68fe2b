#!/usr/bin/env python3
"""Theory of operation: an image whose file is deleted stops being tagged capacity (it used
to stay "ready": lookup printed the missing path, claim and qemu-args succeeded), and
`image forget` lets an operator drop one without a restart. `tagmem watch` shows a
flush_done as what was flushed, not as a row of '?'. Both emit tag_released, leave the
registry without the image (a restart does not bring it back), and forget refuses a claimed
image and keeps the file. qemu-args without --vm is a usage error."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import TAGMEM, Client, check, run  # noqa: E402

A = "a0a0a0a0-1111-4222-8333-444444444444"
B = "b0b0b0b0-1111-4222-8333-444444444444"


def registry_images(b):
    with open(os.path.join(b.state, "registry.json")) as f:
        return [im["tag"] for im in json.load(f).get("images", [])]


def body(b):
    c = Client(b.sock)
    w = Client(b.sock)
    check("result" in w.call("subscribe"), "subscribe")
    images = os.path.join(b.state, "images")
    for tag, name in ((A, "a.img"), (B, "b.img")):
        m = c.call("image_create", path=os.path.join(images, name), size=16 << 20, tag=tag)
        check("result" in m, f"create: {m}")
    check(sorted(registry_images(b)) == sorted([A, B]), "both images recorded")

    # people watching see what a flush did (flush_done has no tag object to tabulate)
    watch = subprocess.Popen([TAGMEM, "--socket", b.sock, "watch"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.2)
    check("result" in c.call("flush", tag=B), "async flush")
    line = ""
    deadline = time.time() + 10
    while "flush_done" not in line and time.time() < deadline:
        line = watch.stdout.readline()
    watch.kill()
    watch.wait()
    check("flush_done" in line and B in line and "durable" in line and " ? " not in line,
          f"watch shows the flush: {line!r}")

    # a deleted file: gone within a few upkeep ticks
    os.unlink(os.path.join(images, "a.img"))
    for _ in range(100):
        if c.call("show", tag=A).get("error", {}).get("code") == "not_found":
            break
        time.sleep(0.02)
    check(c.call("lookup", tag=A).get("error", {}).get("code") == "not_found",
          "a deleted image is still looked up")
    check(c.call("claim", tag=A).get("error", {}).get("code") == "not_found",
          "a deleted image can still be claimed")
    events = []
    while not any(e.get("event") == "tag_released" for e in events):
        events.append(w.read_msg())
    check(any(e.get("tag", {}).get("tag") == A for e in events if e.get("event") == "tag_released"),
          f"tag_released for the deleted image: {events}")
    for _ in range(50):
        if registry_images(b) == [B]:
            break
        time.sleep(0.02)
    check(registry_images(b) == [B], f"the registry still holds the deleted image: "
                                     f"{registry_images(b)}")

    # forget: refused while claimed, then the record goes and the file stays
    check("result" in c.call("claim", tag=B, name="x"), "claim B")
    m = c.call("image_forget", tag=B)
    check(m.get("error", {}).get("code") == "busy", f"forget of a claimed image: {m}")
    check("result" in c.call("release", tag=B), "release B")
    out = subprocess.run([TAGMEM, "--socket", b.sock, "image", "forget", B],
                         capture_output=True, text=True)
    check(out.returncode == 0 and "the file stays" in out.stdout, f"CLI forget: {out}")
    check(os.path.exists(os.path.join(images, "b.img")), "forget deleted the file")
    check(c.call("show", tag=B).get("error", {}).get("code") == "not_found", "B still known")
    check(registry_images(b) == [], f"the registry still holds B: {registry_images(b)}")
    check(c.call("image_forget", tag=B).get("error", {}).get("code") == "not_found",
          "forget twice")
    c.close()
    w.close()
    b.stop()
    b.start()
    c = Client(b.sock)
    check(c.call("show", tag=B).get("error", {}).get("code") == "not_found",
          "a forgotten image came back after a restart")

    # qemu-args names the VM it claims for
    out = subprocess.run([TAGMEM, "--socket", b.sock, "qemu-args", A], capture_output=True,
                         text=True)
    check(out.returncode == 2 and "--vm" in out.stderr, f"qemu-args without --vm: {out}")
    print("image gone and forget: ok")


run(body, start=True)
