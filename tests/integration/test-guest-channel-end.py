#!/usr/bin/env python3
"""Theory of operation: every guest channel has an end. A channel nobody is connected to, of
a VM that holds no tags, is closed after --guest-idle; one whose VM holds a tag, or that QEMU
(here: a plain socket) is connected to, stays. A uid at its 64 channels gets a 65th by
closing its unused channel idle longest, and is refused (too_many_vms, saying why) only when
every channel is in use. Runs as root (setpriv for the second uid; exit 77 without them)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import NOBODY, Client, check, run  # noqa: E402

if os.geteuid() != 0 or not shutil.which("setpriv"):
    print("needs root and setpriv")
    sys.exit(77)

P = "e0e0e0e0-3333-4222-8333-444444444444"
IDLE = 2
PER_UID = 64

# As uid nobody: one connection to brokerd, qemu_args for each VM name given, then (if
# asked) connect to every channel and keep the connections while asking once more.
NOBODY_CODE = r"""
import json, socket, sys
sock, names, hold, extra = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
s = socket.socket(socket.AF_UNIX); s.connect(sock); f = s.makefile()
def call(vm):
    s.sendall((json.dumps({"id": vm, "op": "qemu_args", "vm": vm, "tags": []}) + "\n").encode())
    return json.loads(f.readline())
out, held = [], []
for vm in names:
    m = call(vm)
    out.append(m)
    if hold and "result" in m:
        c = socket.socket(socket.AF_UNIX); c.connect(m["result"]["channel"]); held.append(c)
if extra:
    out.append(call(extra))
print(json.dumps(out))
"""


def as_nobody(sock, names, hold=False, extra=""):
    r = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                        sys.executable, "-c", NOBODY_CODE, sock, json.dumps(names),
                        "1" if hold else "0", extra], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"nobody's client: {r.stderr}")
    return json.loads(r.stdout)


def wait_gone(path, secs):
    deadline = time.time() + secs
    while time.time() < deadline and os.path.exists(path):
        time.sleep(0.1)
    return not os.path.exists(path)


def body(b):
    os.chmod(b.dir, 0o755)  # nobody reaches brokerd's socket
    c = Client(b.sock)
    check("result" in c.call("fm_add", size=32 << 20, tag=P), "fm add P")

    # idle: the tagless channel ends, the one whose VM holds a tag and the connected one stay
    held = c.call("qemu_args", vm="holds", tags=[P])["result"]["channel"]
    empty = c.call("qemu_args", vm="empty", tags=[])["result"]["channel"]
    conn = c.call("qemu_args", vm="running", tags=[])["result"]["channel"]
    qemu = socket.socket(socket.AF_UNIX)
    qemu.connect(conn)
    check(wait_gone(empty, IDLE + 5), "the channel of a VM with no tags outlived --guest-idle")
    check(os.path.exists(held), "the channel of a VM that holds a tag was closed")
    check(os.path.exists(conn), "a connected channel was closed")
    qemu.close()  # QEMU exits: idle from now on
    check(wait_gone(conn, IDLE + 5), "the channel stayed after its QEMU went away")
    check("result" in c.call("release", tag=P), "release P")
    check(wait_gone(held, IDLE + 5), "the channel stayed after its VM's last tag was released")
    check("closed, unused" in b.log_text(), "the log says why a channel was closed")
    check(b.alive(), "brokerd died")


def body_limit(b):
    """With the default --guest-idle (600 s) nothing ends by age during this part."""
    os.chmod(b.dir, 0o755)
    # a uid at its limit: the unused channel idle longest makes room
    names = [f"n{i}" for i in range(PER_UID)]
    out = as_nobody(b.sock, names, extra="n-extra")
    check(all("result" in m for m in out), f"qemu_args of 65 tagless VMs: {out[-1]}")
    first = out[0]["result"]["channel"]
    check(not os.path.exists(first), "the oldest unused channel was not closed for the 65th")
    check(os.path.exists(out[-1]["result"]["channel"]), "the 65th channel is there")
    # ... and refused, saying why, only when every channel is in use
    out = as_nobody(b.sock, names[1:] + ["n-extra"], hold=True, extra="n-more")
    last = out[-1]
    check(last.get("error", {}).get("code") == "too_many_vms" and
          "holds tags or runs" in last["error"]["message"], f"every channel in use: {last}")
    check(b.alive(), "brokerd died")


run(body, "--guest-idle", str(IDLE), start=True)
run(body_limit, start=True)
