#!/usr/bin/env python3
"""Theory of operation: cluster-wide exclusive claims on a real three-member etcd. Three hosts
share one tag; their tagmem-clusterd race for its exclusive claim round after round: each
round exactly one wins, the loser is told who holds it, and the fencing tokens grow strictly
with every new holder. A holder whose host loses etcd (a proxy between them is cut) is told it
lost the claim before another host can win it; a holder whose publisher is killed loses it to
another host within the lease. Claims of a tag the host has not, or by a stranger's uid, are
refused."""
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from etcdtest import free_ports, run_cluster, start_publisher  # noqa: E402
from harness import TAGMEM, Client, NOBODY, check  # noqa: E402

if not os.environ.get("FMD") or not os.environ.get("CLUSTERD"):
    sys.exit("FMD and CLUSTERD must be set (ctest sets them)")

S = "e5e5e5e5-1111-4222-8333-444444444444"
TTL = 2
ROUNDS = int(os.environ.get("CLAIM_ROUNDS", "1000"))


class Proxy:
    """A TCP proxy to one etcd member that the test can cut (a network partition)."""

    def __init__(self, target_port):
        self.target = target_port
        self.port = free_ports(1)[0]
        self.cut = False
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(16)
        self.conns = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            c, _ = self.lsock.accept()
            if self.cut:
                c.close()
                continue
            u = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [c, u]
            threading.Thread(target=self.pipe, args=(c, u), daemon=True).start()

    def pipe(self, a, b):
        try:
            while not self.cut:
                r, _, _ = select.select([a, b], [], [], 0.1)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            pass
        finally:
            a.close()
            b.close()

    def partition(self):
        self.cut = True
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Holder:
    """A program on a host that claims through that host's clusterd and listens for loss."""

    def __init__(self, path):
        self.c = Client(path)
        check("result" in self.c.call("subscribe"), "subscribe")

    def claim(self, name):
        return self.c.call("cluster_claim", tag=S, name=name)

    def release(self):
        return self.c.call("cluster_release", tag=S)

    def wait_event(self, secs):
        self.c.s.settimeout(secs)
        try:
            return self.c.read_msg()
        except (socket.timeout, OSError):
            return None


def race(holders):
    """One round: every host asks at once; the replies, by host."""
    out = [None] * len(holders)
    go = threading.Barrier(len(holders))

    def ask(i):
        go.wait()
        out[i] = holders[i].claim(f"r{i}")
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(holders))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def body(top, etcd, fab, hosts):
    subprocess.run([TAGMEM, "fm", "add", "--size", "2M", "--tag", S, "--shared",
                    *sum((["--host", h.name] for h in hosts), [])], check=True,
                   env=dict(os.environ, TAGMEM_FABRIC=fab), capture_output=True)
    proxy = Proxy(etcd.client[0])
    pubs = {}
    for h in hosts:
        # h1 reaches etcd only through the proxy (to cut it later); the others directly
        ep = f"http://127.0.0.1:{proxy.port}" if h.name == "h1" else etcd.urls
        pubs[h.name] = start_publisher(top, ep, h, TTL)
    holders = [Holder(h.csock) for h in hosts]
    deadline = time.time() + 10
    while time.time() < deadline and "error" in holders[0].claim("probe"):
        time.sleep(0.1)  # until the host's tag is in the directory
    check("result" in holders[0].release(), "the first claim works and is given back")

    # the race: exactly one winner a round, tokens strictly increasing
    last = 0
    t0 = time.time()
    for rnd in range(ROUNDS):
        out = race(holders)
        won = [i for i, m in enumerate(out) if "result" in m]
        check(len(won) == 1, f"round {rnd}: {len(won)} holders: {out}")
        w = won[0]
        for i, m in enumerate(out):
            if i != w:
                check(m["error"]["code"] == "busy" and f"host h{w + 1}" in m["error"]["message"],
                      f"round {rnd}: the loser is told who holds it: {m}")
        token = out[w]["result"]["token"]
        check(token > last, f"round {rnd}: token {token} after {last}")
        last = token
        check("result" in holders[w].release(), f"round {rnd}: release")
    print(f"{ROUNDS} rounds of 3 in {time.time() - t0:.1f}s: one holder each, tokens increasing")

    # the CLI: claim --cluster-exclusive on h1, refused on h2 (naming h1), then released
    def cli(h, *args):
        return subprocess.run([TAGMEM, *args], capture_output=True, text=True, timeout=30,
                              env=dict(os.environ, TAGMEM_SOCKET=h.sock,
                                       TAGMEM_CLUSTER_SOCKET=h.csock))
    r = cli(hosts[0], "claim", S, "--name", "master", "--cluster-exclusive")
    check(r.returncode == 0 and "fencing token" in r.stdout, f"CLI exclusive claim: {r}")
    token = int(r.stdout.split("fencing token ")[1].rstrip(")\n"))
    check(token > last, "its token is larger than every earlier one")
    r = cli(hosts[1], "claim", S, "--cluster-exclusive")
    check(r.returncode == 1 and "host h1" in r.stderr, f"refused on h2, naming h1: {r}")
    check("error" in Client(hosts[1].sock).call("release", tag=S), "and h2 claimed nothing")
    r = cli(hosts[0], "release", S, "--cluster-exclusive")
    check(r.returncode == 0, f"CLI release: {r}")
    r = cli(hosts[1], "claim", S, "--cluster-exclusive")
    check(r.returncode == 0, f"h2 wins it now: {r}")
    check(cli(hosts[1], "release", S, "--cluster-exclusive").returncode == 0, "h2 releases")

    # refusals
    nobody = Client(hosts[1].csock)
    m = nobody.call("cluster_claim", tag="e5e5e5e5-9999-4222-8333-444444444444")
    check(m["error"]["code"] == "not_found", f"a tag the host has not: {m}")
    check("result" in holders[1].claim("mine"), "h2 holds it")
    m = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                        sys.executable, "-c",
                        "import json,socket,sys; s=socket.socket(socket.AF_UNIX); "
                        "s.connect(sys.argv[1]); s.sendall(b'{\"id\":1,\"op\":\"cluster_release\","
                        "\"tag\":\"" + S + "\"}\\n'); print(s.makefile().readline())",
                        hosts[1].csock], capture_output=True, text=True)
    check("permission_denied" in m.stdout, f"another uid cannot release it: {m.stdout} {m.stderr}")
    check("result" in holders[1].release(), "h2 gives it back")

    # a partition: the holder on h1 hears of the loss before h2 can win
    check("result" in holders[0].claim("part"), "h1 holds it")
    proxy.partition()
    cut = time.time()
    won_at = [None]

    def contend():
        while won_at[0] is None and time.time() - cut < TTL + 8:
            if "result" in holders[1].claim("after"):
                won_at[0] = time.time()
            else:
                time.sleep(0.02)
    t = threading.Thread(target=contend)
    t.start()
    ev = holders[0].wait_event(TTL + 5)
    lost_at = time.time()
    t.join()
    check(ev and ev.get("event") == "cluster_claim_lost" and ev.get("tag") == S,
          f"h1's holder told of the loss: {ev}")
    check(won_at[0] is not None, "h2 won after h1's lease ended")
    check(lost_at < won_at[0], f"told {lost_at - cut:.2f}s after the cut, "
          f"h2 won {won_at[0] - cut:.2f}s after: the loser must know first")
    print(f"partition: lost told at {lost_at - cut:.2f}s, won elsewhere at {won_at[0] - cut:.2f}s")
    check("result" in holders[1].release(), "h2 gives it back")

    # the holder's publisher killed: another host wins within the lease
    check("result" in holders[2].claim("k"), "h3 holds it")
    pubs["h3"].send_signal(signal.SIGKILL)
    pubs["h3"].wait()
    killed = time.time()
    deadline = killed + TTL + 3
    while time.time() < deadline and "result" not in holders[1].claim("k2"):
        time.sleep(0.05)
    check(time.time() < deadline, "h2 won once h3's lease ended")
    print(f"kill -9 of the holder's publisher: won elsewhere {time.time() - killed:.2f}s after")
    for p in pubs.values():
        if p.poll() is None:
            p.terminate()
            p.wait(timeout=10)


run_cluster(("h1", "h2", "h3"), body, "cluster-claims")
