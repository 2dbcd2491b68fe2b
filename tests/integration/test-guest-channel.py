#!/usr/bin/env python3
"""Theory of operation: the host end of the guest channel, played by a hostile "guest" on
the socket QEMU would connect (no VM needed: brokerd cannot tell, and must not care).
`qemu_args` opens the VM's channel socket, 0600 and owned by the VM's uid; another uid cannot
connect. On connect the guest gets its VM's slot map (label-less tags only, its own VM's
only) and again whenever it changes (a release). It can ask hello and slots and nothing else;
garbage gets an error, a line over the limit closes the connection, and a flood is served at
the configured rate while brokerd keeps answering everybody else at once. After a kill -9
brokerd listens again for VMs that hold tags, so QEMU reconnects to the same path.
Runs as root (setpriv for the second uid; exit 77 without them)."""
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Client, check, run  # noqa: E402

if os.geteuid() != 0 or not shutil.which("setpriv"):
    print("needs root and setpriv")
    sys.exit(77)

P = "d0d0d0d0-3333-4222-8333-444444444444"
Q = "d1d1d1d1-3333-4222-8333-444444444444"
IMG = "1a1a1a1a-3333-4222-8333-444444444444"
NOBODY = 65534
RATE = 50


class Guest(Client):
    def first_event(self):
        m = self.read_msg()
        check(m.get("event") == "slots", f"first message: {m}")
        return m

    def request(self, line):
        self.send_raw(line if isinstance(line, bytes) else (json.dumps(line) + "\n").encode())
        return self.read_reply()


def as_nobody(code):
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           sys.executable, "-c", code], capture_output=True, text=True, timeout=30)


def body(b):
    os.chmod(b.dir, 0o755)  # nobody reaches brokerd's socket; the channel's own mode is the test
    c = Client(b.sock)
    check("result" in c.call("fm_add", size=32 << 20, tag=P), "fm add P")
    check("result" in c.call("fm_add", size=32 << 20, tag=Q), "fm add Q")
    img = os.path.join(b.state, "images", "i.img")
    check("result" in c.call("image_create", path=img, size=16 << 20, tag=IMG), "image")
    m = c.call("qemu_args", vm="v1", tags=[P, IMG])
    check("result" in m, f"qemu_args: {m}")
    path = m["result"]["channel"]
    args = m["result"]["args"]
    check(args[args.index("-chardev") + 1] == f"socket,id=tmgc,path={path},reconnect=1",
          f"chardev argument: {args}")
    st = os.stat(path)
    check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0,
          f"channel socket mode/owner: {oct(st.st_mode)} {st.st_uid}")

    # another uid cannot even connect
    r = as_nobody(f"import socket; s=socket.socket(socket.AF_UNIX); s.connect({path!r})")
    check(r.returncode != 0 and "Permission denied" in r.stderr, f"nobody connected: {r}")

    g = Guest(path)
    ev = g.first_event()
    check(ev["slots"] == [{"slot": 0, "tag": P}] and ev["vm"] == "v1" and ev["protocol"] == 1,
          f"slot map: labelled image left out, the DCD tag in slot 0: {ev}")
    hello = g.request({"id": "h", "op": "hello", "protocol": 1})
    check(hello["id"] == "h" and hello["result"]["vm"] == "v1", f"hello: {hello}")
    check(g.request(b"{not json\n")["error"]["code"] == "bad_request", "garbage")
    check(g.request(b'[1,2]\n')["error"]["code"] == "bad_request", "not an object")
    bad_id = g.request(b'{"id":{"deep":[1,2,3]},"op":"hello"}\n')
    check(bad_id["id"] is None and "result" in bad_id, f"a structured id is not echoed: {bad_id}")
    r = g.request({"id": 1, "op": "release", "tag": Q})
    check(r["error"]["code"] == "unknown_op", f"host ops: {r}")
    check(c.call("show", tag=Q)["result"]["state"] == "ready", "Q untouched")

    # a flood is served at the rate, and brokerd answers everybody else meanwhile
    g.send_raw(b'{"id":9,"op":"hello"}\n' * 3000)
    t0 = time.time()
    served = 0
    g.s.settimeout(0.05)
    status_ms = []
    while time.time() - t0 < 2.0:
        try:
            g.read_msg()
            served += 1
        except socket.timeout:
            pass
        s0 = time.time()
        check("result" in c.call("status"), "status during the flood")
        status_ms.append((time.time() - s0) * 1000)
    elapsed = time.time() - t0
    limit = 2 * RATE + RATE * elapsed * 1.5 + 10
    print(f"flood: {served} requests served in {elapsed:.1f} s (rate {RATE}/s, burst {2 * RATE});"
          f" status p50 {sorted(status_ms)[len(status_ms) // 2]:.2f} ms, max {max(status_ms):.1f} ms")
    check(RATE <= served <= limit, f"served {served}, expected between {RATE} and {limit:.0f}")
    check(max(status_ms) < 500, "brokerd kept answering")
    g.close()

    # a line of exactly 4096 bytes is within the limit (its newline is not counted); a blank
    # line is no request and gets no answer
    g = Guest(path)
    g.first_event()
    head = b'{"id":41,"op":"hello","pad":"'
    line = head + b"p" * (4096 - len(head) - 2) + b'"}'
    check(len(line) == 4096, "a 4096-byte line")
    r = g.request(line + b"\n")
    check(r.get("id") == 41 and "result" in r, f"a 4096-byte line is served: {r}")
    g.send_raw(b"\n\r\n")
    r = g.request({"id": 42, "op": "hello"})
    check(r.get("id") == 42, f"blank lines got no answer; the next request did: {r}")
    # a line over the limit closes the connection; a new one works
    g.send_raw(b"x" * 5000)
    check(g.closed(), "over-long line: connection closed")
    g = Guest(path)
    g.first_event()

    # a release reaches the guest as a new map
    check("result" in c.call("release", tag=P), "release P")
    ev = g.read_msg()
    check(ev.get("event") == "slots" and ev["slots"] == [], f"map after release: {ev}")

    # another uid's VM: its own socket, its own slots
    r = as_nobody(
        "import json,socket,sys\n"
        "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
        f"s.sendall(json.dumps(dict(id=1,op='qemu_args',vm='v2',tags=['{Q}'])).encode()+b'\\n')\n"
        "print(s.makefile().readline())\n".replace("sys.argv[1]", repr(b.sock)))
    m = json.loads(r.stdout)
    check("result" in m, f"nobody's qemu_args: {m} {r.stderr}")
    path2 = m["result"]["channel"]
    check(os.stat(path2).st_uid == NOBODY and path2 != path, "v2's socket is nobody's")
    g2 = Guest(path2)  # root may connect to any
    check(g2.first_event()["slots"] == [{"slot": 0, "tag": Q}], "v2 sees only its own tag")
    g2.close()

    # kill -9: brokerd listens again for VMs that hold tags
    g.close()
    c.close()
    b.kill9()
    b.start()
    g2 = Guest(path2)
    check(g2.first_event()["slots"] == [{"slot": 0, "tag": Q}], "v2's channel after restart")
    check(b.alive(), "brokerd alive")


run(body, "--guest-rate", str(RATE), start=True)
print("guest channel: bounded, rate-limited, own VM only, back after kill -9")
