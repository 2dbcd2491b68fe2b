#!/usr/bin/env python3
"""Theory of operation: any local user may connect (the socket is 0666), so no user may stall
or starve the others, or make brokerd hold unbounded memory:
1. one client pipelines lists of 10,000 tags without reading: a normal client's lookups
   keep answering within milliseconds (fair turns, backpressure), not after the flood;
2. sixteen such clients: brokerd's resident memory stays within its documented budget
   (backpressure and a global output budget), not ~1 GB;
3. one uid opening connections until refused: it is told too_many_clients (not a reset),
   and root still gets in (places kept for root);
4. out of file descriptors: brokerd answers the refused clients and does not spin the CPU.
Runs as root (setpriv for the second uid; exit 77 without them)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import TAGMEM, Client, check, run  # noqa: E402

if os.geteuid() != 0 or not shutil.which("setpriv"):
    print("needs root and setpriv")
    sys.exit(77)

TAG = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"


def status_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return {k: v.split()[0] for k, v in (line.split(":", 1) for line in f) if v.split()}


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fill(b, n):
    c = Client(b.sock, timeout=60)
    check("result" in c.call("fm_add", size=2 << 20, tag=TAG), "setup")
    for i in range(0, n, 500):
        batch = b"".join(b'{"id":%d,"op":"fm_add","size":2097152,"tag":"%s"}\n'
                         % (j, str(uuid.uuid4()).encode()) for j in range(i, i + 500))
        c.send_raw(batch)
        for _ in range(500):
            c.read_reply()
    c.close()


def hog(b, requests):
    """A client that pipelines requests and reads nothing."""
    h = socket.socket(socket.AF_UNIX)
    h.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    h.connect(b.sock)
    h.setblocking(False)
    try:
        h.send(requests)
    except BlockingIOError:
        pass
    return h


def requests_served(c):
    return c.call("status")["result"]["requests"]


def flood_and_memory(b):
    """With 10,000 tags (a list reply is ~2.3 MB): one client pipelines lists and does not
    read, then sixteen do. What is asserted is counted, not timed (bench/dos times it)."""
    fill(b, 9999)
    c = Client(b.sock, timeout=60)
    base = int(status_of(b.proc.pid)["VmRSS"])
    before = requests_served(c)
    h = hog(b, b'{"id":1,"op":"list"}\n' * 25)
    time.sleep(0.5)  # brokerd has read the pipeline long before this
    served = requests_served(c) - before - 1
    h.close()
    print(f"flood: one client pipelines 25 lists of 10,000 tags and reads nothing: brokerd "
          f"served {served} of them before the next request of another client")
    check(served <= 2, f"a pipelining client was served {served} requests while others waited")
    # 25 lists is just under the 64 MiB one client may have queued: a client that reads a
    # little now and then would never be dropped, so sixteen held ~600 MB without backpressure
    hogs = [hog(b, b'{"id":1,"op":"list"}\n' * 25) for _ in range(16)]
    time.sleep(2)
    check("result" in c.call("lookup", tag=TAG), "served while sixteen clients do not read")
    st = status_of(b.proc.pid)
    grown = (int(st["VmHWM"]) - base) // 1024
    queued = c.call("status")["result"].get("queued_bytes")
    print(f"memory: sixteen such clients: resident {base // 1024} MiB before, peak "
          f"{int(st['VmHWM']) // 1024} MiB (+{grown} MiB); queued for clients: {queued} bytes")
    check(grown < 128, f"brokerd grew by {grown} MiB for clients that do not read")
    for h in hogs:
        h.close()
    c.close()
    check(b.alive(), "brokerd died")


CONNECTOR = r'''
import json, socket, sys
sock, n = sys.argv[1], int(sys.argv[2])
held, refused, reset = [], [], 0
for i in range(n):
    s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sock)
    try:
        s.sendall(b'{"id":1,"op":"hello"}\n')
        line = s.makefile("rb").readline()
    except (ConnectionResetError, BrokenPipeError):
        reset += 1
        continue
    m = json.loads(line)
    if "error" in m:
        refused.append(m["error"])
        s.close()
    else:
        held.append(s)
import os, subprocess
cli = subprocess.run([sys.argv[3], "status"], capture_output=True, text=True,
                     env=dict(os.environ, TAGMEM_SOCKET=sock)) if len(sys.argv) > 3 else None
print(json.dumps({"held": len(held), "refused": len(refused), "reset": reset,
                  "first": refused[0] if refused else None,
                  "cli": cli.stderr.strip() if cli else None}))
sys.stdout.flush()
sys.stdin.read()   # keep the connections until told
'''


def per_uid(b):
    os.chmod(b.dir, 0o755)
    p = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          sys.executable, "-c", CONNECTOR, b.sock, "150", TAGMEM],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    res = json.loads(p.stdout.readline())
    print(f"per uid: uid 65534 asked for 150 connections: {res['held']} held, "
          f"{res['refused']} refused, {res['reset']} reset; first refusal: {res['first']}")
    check(res["held"] == 100 and res["refused"] == 50 and res["reset"] == 0,
          f"per-uid limit of 100: {res}")
    check(res["first"]["code"] == "too_many_clients" and "uid 65534" in res["first"]["message"],
          f"the refusal says who and why: {res['first']}")
    check("uid 65534 has 100 connections" in res["cli"], f"the CLI shows why: {res['cli']}")
    print(f"per uid: the CLI says: {res['cli']}")
    # the whole server is full for others, root still gets in
    p2 = subprocess.Popen(["setpriv", "--reuid=65533", "--regid=65533", "--clear-groups",
                           sys.executable, "-c", CONNECTOR, b.sock, "100"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    res2 = json.loads(p2.stdout.readline())
    check(res2["refused"] > 0 and res2["reset"] == 0, f"a second uid fills the rest: {res2}")
    c = Client(b.sock)
    check("result" in c.call("status"), "root locked out")
    print(f"per uid: a second uid got {res2['held']} more, then '{res2['first']['message']}';"
          " root still served")
    c.close()
    for proc in (p, p2):
        proc.stdin.close()
        proc.wait()


def out_of_fds(b):
    """brokerd with 64 descriptors and room for 4,096 clients: refused clients are answered
    and the loop does not spin on a listener it cannot accept from."""
    held = []
    refused = 0
    for i in range(120):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(b.sock)
        try:
            s.sendall(b'{"id":1,"op":"hello"}\n')
        except BrokenPipeError:
            pass  # refused and closed before the request went: the answer is there to read
        try:
            m = json.loads(s.makefile("rb").readline() or b"{}")
        except ConnectionResetError:
            m = {}
        if m.get("error", {}).get("code") == "too_many_clients":
            refused += 1
            s.close()
        else:
            held.append(s)
    cpu0, t0 = cpu_seconds(b.proc.pid), time.time()
    # clients keep knocking while brokerd has no descriptor left
    knock = []
    for i in range(50):
        s = socket.socket(socket.AF_UNIX)
        s.connect(b.sock)
        knock.append(s)
    time.sleep(2)
    busy = (cpu_seconds(b.proc.pid) - cpu0) / (time.time() - t0)
    print(f"out of fds: 120 clients, {len(held)} served, {refused} told too_many_clients; "
          f"brokerd CPU while 50 more wait: {busy * 100:.0f}%")
    check(refused > 0, "nobody was refused: the limit was not reached")
    check(busy < 0.3, f"brokerd spins at {busy * 100:.0f}% CPU when out of descriptors")
    for s in held + knock:
        s.close()
    c = Client(b.sock)
    check("result" in c.call("hello"), "serves again once descriptors are free")
    check(b.alive(), "brokerd died")


def main():
    for body, extra, wrapper in (
            (flood_and_memory, ["--max-tags", "20000", "--pressure", "none"], ()),
            (per_uid, ["--max-clients", "200", "--max-clients-per-uid", "100"], ()),
            (out_of_fds, ["--pressure", "none"], ("prlimit", "--nofile=64:64"))):
        if not os.environ.get("DOS_ONLY") or body.__name__ == os.environ["DOS_ONLY"]:
            run(body, *extra, wrapper=wrapper, start=True)
    print("dos: ok")


main()
