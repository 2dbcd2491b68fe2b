#!/usr/bin/env python3
"""Theory of operation: a claim can give its owner the device. `claim` with `grant` as uid
65534 makes 65534 the owner of the device node (here the simulator's node; for an image, its
file) before it is acknowledged; the registry records it, a restart gives it again (a node
made anew at boot is root's), and the release gives it back to brokerd's uid. A claim without
grant changes no owner. Runs as root (setpriv for the second uid; exit 77 without them)."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import NOBODY, Client, call_as_nobody, check, run  # noqa: E402

if os.geteuid() != 0 or not shutil.which("setpriv"):
    print("needs root and setpriv")
    sys.exit(77)

T = "9a9a9a9a-1111-4222-8333-444444444444"
U = "9b9b9b9b-1111-4222-8333-444444444444"
def body(b):
    os.chmod(b.dir, 0o755)
    c = Client(b.sock)
    check("result" in c.call("fm_add", size=2 << 20, tag=T), "fm add T")
    check("result" in c.call("fm_add", size=2 << 20, tag=U), "fm add U")
    dev = c.call("lookup", tag=T)["result"]["path"]
    devu = c.call("lookup", tag=U)["result"]["path"]
    m = call_as_nobody(b.sock, {"id": 1, "op": "claim", "tag": T, "name": "x", "grant": True})
    check(m.get("result", {}).get("owner", {}).get("granted") is True, f"claim: {m}")
    check(os.stat(dev).st_uid == NOBODY, "the node is the claimant's")
    m = call_as_nobody(b.sock, {"id": 2, "op": "claim", "tag": U, "name": "x"})
    check("result" in m and os.stat(devu).st_uid == 0, "no grant, no new owner")
    # a node made anew is root's; after a restart brokerd gives it again
    os.chown(dev, 0, 0)
    c.close()
    b.stop()
    b.start()
    check(os.stat(dev).st_uid == NOBODY, "given again after a restart")
    m = call_as_nobody(b.sock, {"id": 3, "op": "release", "tag": T})
    check("result" in m and os.stat(dev).st_uid == os.geteuid(), f"release gives it back: {m}")
    m = call_as_nobody(b.sock, {"id": 4, "op": "claim", "tag": T, "grant": "yes"})
    check(m.get("error", {}).get("code") == "invalid_argument", f"grant must be a bool: {m}")


run(body, start=True)
print("claim --grant: the node is the claimant's until the release, across restarts")
