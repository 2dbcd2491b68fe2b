#!/usr/bin/env python3
"""Theory of operation: the cluster tag directory on a real three-member etcd cluster. Two
hosts (brokerd instances on one shared simulated fabric), each with a tagmem-clusterd,
publish what they have under their own lease; `tagmem cluster where` answers which hosts
have a tag, as which device, used by whom. kill -9 of a host's publisher: its entries vanish
within the lease TTL and come back, without duplicates, when it restarts. A host busy with
changes keeps its lease (publishing does not renew it: the keep-alives go on). One etcd member
down changes nothing; all of them down leaves local work alone, and the directory catches up
within a second or two of etcd's return. A clean stop withdraws at once. Garbage under the
prefix does not break readers."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from etcdtest import run_cluster, start_publisher  # noqa: E402
from harness import TAGMEM, Client, check  # noqa: E402

if not os.environ.get("FMD") or not os.environ.get("CLUSTERD"):
    sys.exit("FMD and CLUSTERD must be set (ctest sets them)")

S = "c1c1c1c1-1111-4222-8333-444444444444"
T = "c1c1c1c1-2222-4222-8333-444444444444"
P = "c1c1c1c1-3333-4222-8333-444444444444"
TTL = 3


def cluster(etcd, *args):
    r = subprocess.run([TAGMEM, "--json", "cluster", *args, "--etcd", etcd.urls],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip().startswith("[") else r.stdout), r.stderr


def where(etcd, tag):
    code, recs, err = cluster(etcd, "where", tag)
    return recs if code == 0 else []


def host_lease(etcd, host):
    """The lease the host's hostinfo key lives under (None: no key)."""
    r = subprocess.run(["etcdctl", "--endpoints", etcd.urls, "get", "-w", "json",
                        f"/tagmem/v1/hostinfo/{host}"], capture_output=True, text=True,
                       check=True, env=dict(os.environ, ETCDCTL_API="3"), timeout=10)
    kvs = json.loads(r.stdout).get("kvs", [])
    return kvs[0].get("lease") if kvs else None


def wait_until(what, cond, secs):
    deadline = time.time() + secs
    while time.time() < deadline:
        v = cond()
        if v:
            return time.time()
        time.sleep(0.05)
    raise AssertionError(f"not within {secs}s: {what}")


def body(top, etcd, fab_dir, h1, h2):
    pubs = {h.name: start_publisher(top, etcd.urls, h, TTL) for h in (h1, h2)}

    def fm(*args):
        subprocess.run([TAGMEM, "fm", "add", *args], check=True, capture_output=True,
                       env=dict(os.environ, TAGMEM_FABRIC=fab_dir))

    fm("--size", "4M", "--tag", S, "--shared", "--host", "h1", "--host", "h2")
    wait_until("S on h1", lambda: "result" in Client(h1.sock).call("lookup", tag=S), 5)
    check("result" in Client(h1.sock).call("claim", tag=S, name="vm1"), "claim S on h1")
    # h1 may publish S as ready (its rescan) a moment before the claim's update reaches etcd:
    # wait for the claim's record, not for any record of both hosts
    def published():
        recs = {r["host"]: r for r in where(etcd, S)}
        return len(recs) == 2 and recs["h1"].get("state") == "claimed"

    wait_until("both hosts publish S, h1 as claimed", published, 5)
    recs = {r["host"]: r for r in where(etcd, S)}
    check(recs["h1"]["state"] == "claimed" and recs["h1"]["owner"]["name"] == "vm1",
          f"h1's record says who uses it: {recs['h1']}")
    check(recs["h2"]["state"] == "ready" and "owner" not in recs["h2"], f"h2's: {recs['h2']}")
    check(recs["h1"]["shared"] and recs["h1"]["size"] == 4 << 20, "size and sharing published")
    code, hosts, _ = cluster(etcd, "hosts")
    check(code == 0 and sorted(h["host"] for h in hosts) == ["h1", "h2"], f"hosts: {hosts}")

    # a busy host keeps its lease: a change every 0.2 s for two TTLs (each one published: a
    # put under the lease, which does not renew it) and h1 is still there, under one lease
    lease0 = host_lease(etcd, "h1")
    c = Client(h1.sock)
    t0 = time.time()
    while time.time() - t0 < 2 * TTL:
        c.call("release", tag=S)
        c.call("claim", tag=S, name="vm1")
        time.sleep(0.2)
    check(host_lease(etcd, "h1") == lease0, f"h1 lost its lease while busy ({lease0} -> "
          f"{host_lease(etcd, 'h1')}): its directory and claims went with it")

    # a host's publisher killed: its entries vanish within the lease, and come back once
    pubs["h2"].send_signal(signal.SIGKILL)
    pubs["h2"].wait()
    t0 = time.time()
    gone = wait_until("h2's entries vanish", lambda: [r["host"] for r in where(etcd, S)] == ["h1"],
                      TTL + 3)
    check(gone - t0 <= TTL + 2, f"gone {gone - t0:.1f}s after the kill (TTL {TTL}s)")
    pubs["h2"] = start_publisher(top, etcd.urls, h2, TTL)
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
    etcd.put(f"/tagmem/v1/hosts/evil/tags/{S}", "{not json")
    check(sorted(r["host"] for r in where(etcd, S)) == ["h1", "h2"], "garbage skipped")

    # a clean stop withdraws at once
    pubs["h1"].terminate()
    pubs["h1"].wait(timeout=10)
    check([r["host"] for r in where(etcd, S)] == ["h2"], "h1 withdrew on a clean stop")
    for p in pubs.values():
        if p.poll() is None:
            p.kill()
            p.wait()


run_cluster(("h1", "h2"), lambda top, etcd, fab, hosts: body(top, etcd, fab, *hosts),
            "cluster-directory")
