#!/usr/bin/env python3
"""Theory of operation: qemu_args writes an image's label (it ends in fdatasync) on a
data-plane worker, not on brokerd's event loop. strace delays every fdatasync of a running
brokerd by 2 s; while a qemu_args waits for its label, another client's status is answered
at once (on the loop it would wait the 2 s), and a second qemu_args naming the same image is
refused `busy` (the label being written is for the first VM's slot). The first then gets its
arguments, its label written. Needs root and strace (tests/deps.sh installs it); exit 77
without them."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Client, check, run  # noqa: E402

if os.geteuid() != 0 or not shutil.which("strace"):
    print("needs root and strace")
    sys.exit(77)

IMG = "2b2b2b2b-3333-4222-8333-444444444444"
DELAY_S = 2


def body(b):
    c = Client(b.sock)
    img = os.path.join(b.state, "images", "l.img")
    check("result" in c.call("image_create", path=img, size=16 << 20, tag=IMG), "image")
    log = os.path.join(b.dir, "strace.log")
    tracer = subprocess.Popen(["strace", "-f", "-o", log, "-p", str(b.proc.pid),
                               "-e", "trace=fdatasync",
                               "-e", f"inject=fdatasync:delay_enter={DELAY_S * 1000000}"],
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 10
        while time.time() < deadline and "attached" not in tracer.stderr.readline():
            pass
        first = socket.socket(socket.AF_UNIX)
        first.connect(b.sock)
        t0 = time.time()
        first.sendall((json.dumps({"id": 1, "op": "qemu_args", "vm": "v", "tags": [IMG],
                                   "channel": False}) + "\n").encode())
        time.sleep(0.3)  # its label is being written now
        t1 = time.time()
        st = c.call("status")
        waited = time.time() - t1
        check("result" in st and waited < DELAY_S / 2,
              f"status waited {waited:.2f}s behind a label write: the loop was blocked")
        m = c.call("qemu_args", vm="w", tags=[IMG], channel=False)
        check(m.get("error", {}).get("code") == "busy" and "being written" in
              m["error"]["message"], f"a second VM planned the tag being labelled: {m}")
        reply = json.loads(first.makefile().readline())
        took = time.time() - t0
        check("result" in reply and any("label-size" in a for a in reply["result"]["args"]),
              f"the first qemu_args: {reply}")
        check(took >= DELAY_S * 0.9, f"the answer came before its label was durable ({took:.2f}s)")
        print(f"status answered in {waited * 1000:.0f} ms while a label took {took:.1f} s; "
              f"the other VM was told: {m['error']['message']}")
    finally:
        tracer.terminate()
        tracer.wait()


run(body, start=True)
