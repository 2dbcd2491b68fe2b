#!/usr/bin/env python3
"""Theory of operation: an image create cut short (kill -9 of brokerd while the file is being
made) leaves no file behind. Such a file is in no registry, so it used to answer every later
create at that path with `exists`. strace holds brokerd in the create (its ftruncate, which
happens only there, is delayed by 3 s) so that the kill lands inside it, for both layouts;
the restarted brokerd then creates both images at the same paths. strace attaches to a
running brokerd, so its start is untouched. Needs root and strace
(tests/deps.sh installs it); exit 77 without them."""
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

DELAY_US = 3000000


def hold_in_ftruncate(b, log):
    """strace on the running brokerd's main thread (the loop: create runs there)."""
    p = subprocess.Popen(["strace", "-o", log, "-p", str(b.proc.pid), "-e", "trace=ftruncate",
                          "-e", f"inject=ftruncate:delay_enter={DELAY_US}"],
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 10
    while time.time() < deadline:  # attached once strace says so on stderr
        line = p.stderr.readline()
        if "attached" in line:
            return p
        check(line, "strace exited: cannot attach")
    raise AssertionError("strace did not attach")


def body(b):
    images = os.path.join(b.state, "images")
    paths = {"pmem": os.path.join(images, "p.img"), "devdax": os.path.join(images, "d.img")}
    for layout, path in paths.items():
        b.start()
        tracer = hold_in_ftruncate(b, os.path.join(b.dir, "strace.log"))
        s = socket.socket(socket.AF_UNIX)
        s.connect(b.sock)
        s.sendall((json.dumps({"id": 1, "op": "image_create", "path": path,
                               "size": 64 << 20, "layout": layout}) + "\n").encode())
        time.sleep(DELAY_US / 1e6 / 3)  # inside the delayed ftruncate
        with open(os.path.join(b.dir, "strace.log")) as f:
            check("ftruncate" in f.read(), "brokerd is not in the create's ftruncate")
        b.kill9()
        tracer.wait(timeout=10)
        s.close()
        left = os.listdir(images)
        check(not left, f"a create killed midway ({layout}) left files: {left}")
    b.start()
    c = Client(b.sock)
    for layout, path in paths.items():
        m = c.call("image_create", path=path, size=64 << 20, layout=layout)
        check("result" in m, f"create at the path of a killed create ({layout}): {m}")
    print("a create cut short by kill -9 leaves nothing; the path is free afterwards")


run(body)
