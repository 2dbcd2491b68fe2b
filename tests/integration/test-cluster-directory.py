#!/usr/bin/env python3
"""Theory of operation: the cluster tag directory on a real three-member etcd cluster. Two
hosts (brokerd instances on one shared simulated fabric), each with a tagmem-clusterd,
publish what they have under their own lease; `tagmem cluster where` answers which hosts
have a tag, as which device, used by whom. kill -9 of a host's publisher: its entries vanish
within the lease TTL and come back, without duplicates, when it restarts. One etcd member
down changes nothing; all of them down leaves local work alone, and the directory catches up
within a second or two of etcd's return. A clean stop withdraws at once. Garbage under the
prefix does not break readers."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import TAGMEM, Broker, Client, check, wait_serving  # noqa: E402

FMD = os.environ.get("FMD")
CLUSTERD = os.environ.get("CLUSTERD")
if not FMD or not CLUSTERD:
    sys.exit("FMD and CLUSTERD must be set (ctest sets them)")
ETCD = shutil.which("etcd")
if not ETCD:
    sys.exit("etcd is not installed: tests/deps.sh all installs etcd-server")

S = "c1c1c1c1-1111-4222-8333-444444444444"
T = "c1c1c1c1-2222-4222-8333-444444444444"
P = "c1c1c1c1-3333-4222-8333-444444444444"
TTL = 3


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Etcd:
    """A three-member etcd cluster on loopback."""

    def __init__(self, top):
        self.top = top
        ports = free_ports(6)
        self.client = ports[:3]
        self.peer = ports[3:]
        self.procs = [None] * 3
        self.urls = ",".join(f"http://127.0.0.1:{p}" for p in self.client)
        self.initial = ",".join(f"n{i}=http://127.0.0.1:{self.peer[i]}" for i in range(3))

    def start(self, i, state="new"):
        log = open(os.path.join(self.top, f"etcd{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(
            [ETCD, "--name", f"n{i}", "--data-dir", os.path.join(self.top, f"etcd{i}"),
             "--listen-client-urls", f"http://127.0.0.1:{self.client[i]}",
             "--advertise-client-urls", f"http://127.0.0.1:{self.client[i]}",
             "--listen-peer-urls", f"http://127.0.0.1:{self.peer[i]}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer[i]}",
             "--initial-cluster", self.initial, "--initial-cluster-state", state,
             "--heartbeat-interval", "50", "--election-timeout", "500"],
            stdout=log, stderr=log)

    def start_all(self):
        for i in range(3):
            self.start(i)
        self.wait_healthy()

    def wait_healthy(self, secs=20):
        deadline = time.time() + secs
        while time.time() < deadline:
            r = subprocess.run(["etcdctl", "--endpoints", self.urls, "put", "/probe", "x"],
                               capture_output=True, env=dict(os.environ, ETCDCTL_API="3"),
                               timeout=10)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError("etcd did not come up")

    def kill(self, i):
        if self.procs[i] and self.procs[i].poll() is None:
            self.procs[i].send_signal(signal.SIGKILL)
            self.procs[i].wait()

    def stop_all(self):
        for i in range(3):
            self.kill(i)


def cluster(etcd, *args):
    r = subprocess.run([TAGMEM, "--json", "cluster", *args, "--etcd", etcd.urls],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip().startswith("[") else r.stdout), r.stderr


def where(etcd, tag):
    code, recs, err = cluster(etcd, "where", tag)
    return recs if code == 0 else []


def wait_until(what, cond, secs):
    deadline = time.time() + secs
    while time.time() < deadline:
        v = cond()
        if v:
            return time.time()
        time.sleep(0.05)
    raise AssertionError(f"not within {secs}s: {what}")


def start_publisher(top, etcd, host):
    log = open(os.path.join(top, f"clusterd-{host.name}.log"), "ab")
    return subprocess.Popen([CLUSTERD, "--etcd", etcd.urls, "--host-id", host.name, "--socket",
                             host.sock, "--ttl", str(TTL)], stdout=log, stderr=log)


def body(top, etcd, fab_dir, h1, h2):
    pubs = {h.name: start_publisher(top, etcd, h) for h in (h1, h2)}

    def fm(*args):
        subprocess.run([TAGMEM, "fm", "add", *args], check=True, capture_output=True,
                       env=dict(os.environ, TAGMEM_FABRIC=fab_dir))

    fm("--size", "4M", "--tag", S, "--shared", "--host", "h1", "--host", "h2")
    wait_until("S on h1", lambda: "result" in Client(h1.sock).call("lookup", tag=S), 5)
    check("result" in Client(h1.sock).call("claim", tag=S, name="vm1"), "claim S on h1")
    wait_until("both hosts publish S", lambda: len(where(etcd, S)) == 2, 5)
    recs = {r["host"]: r for r in where(etcd, S)}
    check(recs["h1"]["state"] == "claimed" and recs["h1"]["owner"]["name"] == "vm1",
          f"h1's record says who uses it: {recs['h1']}")
    check(recs["h2"]["state"] == "ready" and "owner" not in recs["h2"], f"h2's: {recs['h2']}")
    check(recs["h1"]["shared"] and recs["h1"]["size"] == 4 << 20, "size and sharing published")
    code, hosts, _ = cluster(etcd, "hosts")
    check(code == 0 and sorted(h["host"] for h in hosts) == ["h1", "h2"], f"hosts: {hosts}")

    # a host's publisher killed: its entries vanish within the lease, and come back once
    pubs["h2"].send_signal(signal.SIGKILL)
    pubs["h2"].wait()
    t0 = time.time()
    gone = wait_until("h2's entries vanish", lambda: [r["host"] for r in where(etcd, S)] == ["h1"],
                      TTL + 3)
    check(gone - t0 <= TTL + 2, f"gone {gone - t0:.1f}s after the kill (TTL {TTL}s)")
    pubs["h2"] = start_publisher(top, etcd, h2)
    wait_until("h2 back", lambda: len(where(etcd, S)) == 2, 5)
    code, recs, _ = cluster(etcd, "list")
    keys = [(r["tag"], r["host"]) for r in recs]
    check(len(keys) == len(set(keys)), f"no duplicates after the restart: {keys}")

    # one member down: nothing changes
    etcd.kill(0)
    fm("--size", "2M", "--tag", T, "--host", "h1")
    wait_until("T published with one member down", lambda: len(where(etcd, T)) == 1, 10)

    # all down: local work goes on; the directory catches up when etcd is back
    etcd.stop_all()
    t0 = time.time()
    check("result" in Client(h1.sock).call("release", tag=S), "release works without etcd")
    check("result" in Client(h1.sock).call("claim", tag=T, name="vm2"), "claim too")
    fm("--size", "2M", "--tag", P, "--host", "h2")
    wait_until("P on h2", lambda: "result" in Client(h2.sock).call("lookup", tag=P), 5)
    check(time.time() - t0 < 3, "local work did not wait on etcd")
    for i in range(3):
        etcd.start(i, state="existing")
    etcd.wait_healthy()
    back = time.time()
    caught = wait_until("the directory caught up",
                        lambda: len(where(etcd, P)) == 1 and
                        where(etcd, T)[0].get("owner", {}).get("name") == "vm2" and
                        where(etcd, S)[0]["state"] == "ready", 10)
    print(f"caught up {caught - back:.2f}s after etcd answered again")
    check(caught - back <= 2.5, f"caught up {caught - back:.2f}s after etcd's return")

    # garbage under the prefix: readers skip it
    subprocess.run(["etcdctl", "--endpoints", etcd.urls, "put",
                    f"/tagmem/v1/hosts/evil/tags/{S}", "{not json"], check=True,
                   capture_output=True, env=dict(os.environ, ETCDCTL_API="3"))
    check(sorted(r["host"] for r in where(etcd, S)) == ["h1", "h2"], "garbage skipped")

    # a clean stop withdraws at once
    pubs["h1"].terminate()
    pubs["h1"].wait(timeout=10)
    check([r["host"] for r in where(etcd, S)] == ["h2"], "h1 withdrew on a clean stop")
    for p in pubs.values():
        if p.poll() is None:
            p.kill()
            p.wait()


def main():
    top = tempfile.mkdtemp(prefix="tagmem-cluster.")
    etcd = Etcd(top)
    fab = os.path.join(top, "fabric")
    fmd = None
    hosts = []
    try:
        etcd.start_all()
        fmd = subprocess.Popen([FMD, "--dir", fab, "--region-size", "16G"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_serving(fmd, os.path.join(fab, "fabric.sock"), "tagmem-fmd")
        for name in ("h1", "h2"):
            b = Broker("--fabric", fab, "--host-id", name, "--guest-dir", "none")
            b.name = name
            hosts.append(b)
            b.start()
        body(top, etcd, fab, *hosts)
    except BaseException:
        for b in hosts:
            sys.stderr.write(f"--- {b.name} log ---\n" + b.log_text())
        for n in sorted(os.listdir(top)):
            if n.endswith(".log") and n.startswith("clusterd"):
                with open(os.path.join(top, n), errors="replace") as f:
                    sys.stderr.write(f"--- {n} ---\n" + f.read()[-3000:])
        raise
    finally:
        for b in hosts:
            b.cleanup()
        if fmd:
            fmd.kill()
        etcd.stop_all()
        subprocess.run(["pkill", "-f", f"{CLUSTERD} --etcd {etcd.urls}"])
        shutil.rmtree(top, ignore_errors=True)
    print("cluster-directory: ok")


main()
