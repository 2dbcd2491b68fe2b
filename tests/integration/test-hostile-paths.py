#!/usr/bin/env python3
"""Theory of operation: an unprivileged local user tries to make brokerd (root) use an object
other than the one it checked.

1. attach: the user swaps its own QMP socket for a symlink to root's QMP socket, as fast as
   it can, while asking brokerd to attach through that name. brokerd must never connect to
   root's socket (a root-owned listener here counts connections).
2. image create: an image directory holds a directory the user may write; the user swaps a
   subdirectory for a symlink to a directory outside while root creates images below it.
   No file may appear outside the image directory, and every create is refused: a directory
   another user can write is no place for an image (they could swap it for their own file).
3. image adopt: a hard link inside the image directory to a file outside is refused and the
   file is left byte-identical.
4. the directory of an image made writable by others later: qemu-args refuses to hand QEMU
   the name, and a restarted brokerd does not serve the image until the directory is fixed;
   a file swapped in under the image's name is never handed to QEMU, nor served after a
   restart (the image's inode is recorded).
Runs as root with setpriv (exit 77 otherwise)."""
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import Client, check, run  # noqa: E402

NOBODY = 65534
if os.geteuid() != 0 or not shutil.which("setpriv"):
    print("needs root and setpriv")
    sys.exit(77)

ATTACKER = r'''
import json, os, socket, sys, threading, time
sock, tag, d, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
own = os.path.join(d, "own.qmp")
srv = socket.socket(socket.AF_UNIX); srv.bind(own); srv.listen(64)
def serve():
    while True:
        c, _ = srv.accept(); c.close()         # not QMP: the attach fails fast
threading.Thread(target=serve, daemon=True).start()
name = os.path.join(d, "vm.qmp")
stop = False
def swap():
    i = 0
    while not stop:
        i += 1
        a, b = os.path.join(d, "h%d" % i), os.path.join(d, "s%d" % i)
        os.link(own, a); os.rename(a, name)       # our socket ...
        os.symlink(sys.argv[5], b); os.rename(b, name)  # ... then root's, by name
threading.Thread(target=swap, daemon=True).start()
c = socket.socket(socket.AF_UNIX); c.settimeout(30); c.connect(sock)
f = c.makefile("rb")
codes = {}
for i in range(rounds):
    c.sendall((json.dumps({"id": i, "op": "attach", "tag": tag, "vm": "x%d" % i, "qmp": name}) + "\n").encode())
    m = json.loads(f.readline())
    code = m.get("error", {}).get("code", "ok")
    codes[code] = codes.get(code, 0) + 1
stop = True
print(json.dumps(codes))
'''


def as_nobody(*argv, **kw):
    return subprocess.run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                           "--clear-groups"] + list(argv), capture_output=True, text=True,
                          timeout=120, **kw)


def attach_race(b):
    c = Client(b.sock)
    tag = c.call("fm_add", size=2 << 20, tag=str(uuid.uuid4()))["result"]["tag"]
    os.chmod(b.dir, 0o755)
    root_qmp = os.path.join(b.dir, "root.qmp")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(root_qmp)
    srv.listen(64)
    os.chmod(root_qmp, 0o777)   # even a world-writable socket of root's is not the user's
    accepted = []

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()
    threading.Thread(target=serve, daemon=True).start()
    d = os.path.join(b.dir, "u")
    os.mkdir(d)
    os.chown(d, NOBODY, NOBODY)
    t0 = time.time()
    r = as_nobody(sys.executable, "-c", ATTACKER, b.sock, tag, d, "400", root_qmp)
    check(r.returncode == 0, "attacker failed: " + r.stderr)
    print("attach race: 400 attaches in %.1f s while swapping: %s; connections to root's "
          "socket: %d" % (time.time() - t0, r.stdout.strip(), len(accepted)))
    check(not accepted, "brokerd connected to root's QMP socket for an unprivileged caller")
    check(b.alive(), "brokerd died")
    show = c.call("show", tag=tag)["result"]
    check(show["state"] == "ready", "the tag was left claimed: %s" % show)
    srv.close()


SWAPPER = r'''
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
user, outside = sys.argv[1], sys.argv[2]
sub, other = os.path.join(user, "sub"), os.path.join(user, "other")
os.mkdir(sub)
os.symlink(outside, other)
while True:   # sub is a real directory, then a symlink to outside, atomically, forever
    libc.renameat2(-100, other.encode(), -100, sub.encode(), 2)  # RENAME_EXCHANGE
'''


def create_race(b):
    c = Client(b.sock)
    os.chmod(b.dir, 0o755)
    images = os.path.join(b.state, "images")
    os.chmod(images, 0o755)
    outside = os.path.join(b.dir, "outside")
    os.mkdir(outside)
    os.chmod(outside, 0o777)
    user = os.path.join(images, "u")        # a directory in the image dir the user may write
    os.mkdir(user)
    os.chown(user, NOBODY, NOBODY)
    sub = os.path.join(user, "sub")
    swapper = subprocess.Popen(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                                "--clear-groups", sys.executable, "-c", SWAPPER, user, outside])
    try:
        while not os.path.lexists(os.path.join(user, "other")):
            time.sleep(0.01)
        made = refused = 0
        t_end = time.time() + 5
        i = 0
        while time.time() < t_end:
            i += 1
            m = c.call("image_create", path=os.path.join(sub, "i%d.img" % i), size=16 << 20)
            if "result" in m:
                made += 1
            else:
                refused += 1
                check(m["error"]["code"] in ("permission_denied", "invalid_argument"),
                      "refused, but how: %s" % m)
    finally:
        swapper.kill()
        swapper.wait()
    escaped = os.listdir(outside)
    print("create race: %d created inside, %d refused, %d outside the image directory"
          % (made, refused, len(escaped)))
    check(not escaped, "image create wrote outside the image directory: %s" % escaped)
    check(made + refused > 20, "too few attempts to mean anything")
    check(made == 0, "%d images created below a directory another user can write" % made)


def adopt_hardlink(b):
    c = Client(b.sock)
    images = os.path.join(b.state, "images")
    victim = os.path.join(b.dir, "victim")
    with open(victim, "wb") as f:
        f.write(os.urandom(1 << 20))
        f.truncate((16 << 20) + (2 << 20))
    before = hashlib.sha256(open(victim, "rb").read()).hexdigest()
    link = os.path.join(images, "linked.img")
    os.link(victim, link)
    m = c.call("image_adopt", path=link)
    check("error" in m and m["error"]["code"] == "invalid_argument", "hard link adopted: %s" % m)
    check("hard link" in m["error"]["message"], "the refusal does not say why: %s" % m)
    check(hashlib.sha256(open(victim, "rb").read()).hexdigest() == before, "victim changed")
    os.unlink(link)
    print("adopt: a hard link to a file outside is refused:", m["error"]["message"])


def lookup_ok(c, tag):
    return "result" in c.call("lookup", tag=tag)


def writable_later(b):
    c = Client(b.sock)
    images = os.path.join(b.state, "images")
    shared = os.path.join(images, "shared")
    os.mkdir(shared, 0o755)
    img = os.path.join(shared, "a.img")
    tag = str(uuid.uuid4())
    check("result" in c.call("image_create", path=img, size=16 << 20, tag=tag), "create")
    check("result" in c.call("qemu_args", vm="v", tags=[tag], channel=False), "qemu_args")
    os.chmod(shared, 0o777)
    m = c.call("image_create", path=os.path.join(shared, "b.img"), size=16 << 20)
    check(m.get("error", {}).get("code") == "permission_denied" and
          "writable" in m["error"]["message"], "create below a world-writable directory: %s" % m)
    m = c.call("qemu_args", vm="v", tags=[tag], channel=False)
    check(m.get("error", {}).get("code") == "permission_denied", "qemu_args through a "
          "world-writable directory: %s" % m)
    os.chmod(shared, 0o755)
    # another file under the image's name (only root can do it now; the check is the same)
    os.rename(img, img + ".real")
    shutil.copyfile(img + ".real", img)
    m = c.call("qemu_args", vm="v", tags=[tag], channel=False)
    check(m.get("error", {}).get("code") == "busy" and "no longer the image" in
          m["error"]["message"], "qemu_args of a swapped image: %s" % m)
    os.replace(img + ".real", img)
    check("result" in c.call("qemu_args", vm="v", tags=[tag], channel=False), "put back")
    # a restart finds the directory writable by others: the image is not served meanwhile
    os.chmod(shared, 0o1777)
    b.stop()
    b.start()
    c = Client(b.sock)
    check(not lookup_ok(c, tag), "a restarted brokerd serves an image below a directory others "
          "can write")
    check("lies below a directory" in b.log_text(), "the log does not say why")
    os.chmod(shared, 0o755)
    deadline = time.time() + 15
    while time.time() < deadline and not lookup_ok(c, tag):
        time.sleep(0.2)
    check(lookup_ok(c, tag), "the image is not served once its directory is root's again")
    # another file under the name while brokerd is down, byte for byte and size the same:
    # not the image brokerd made (its inode is recorded), so not served until it is back
    b.stop()
    os.rename(img, img + ".real")
    shutil.copyfile(img + ".real", img)
    b.start()
    c = Client(b.sock)
    check(not lookup_ok(c, tag), "a restarted brokerd serves a file swapped in under the name")
    check("is not the file brokerd created" in b.log_text(), "the log does not say why")
    os.replace(img + ".real", img)
    deadline = time.time() + 15
    while time.time() < deadline and not lookup_ok(c, tag):
        time.sleep(0.2)
    check(lookup_ok(c, tag), "the image is not served once it is back")
    print("writable later: refused while others can write its directory, served again after;"
          " a swapped file is not served")


for body in (attach_race, create_race, adopt_hardlink, writable_later):
    run(body, start=True)
print("hostile paths: ok")
