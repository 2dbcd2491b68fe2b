#!/usr/bin/env python3
"""Theory of operation: guest-chosen eviction, with the guest played on its channel socket.
Before brokerd evicts an image a VM holds, it sends that VM's guest a "reclaim" event and
waits (up to --guest-reclaim-ms) for "reclaim_ranges": the ranges the guest can give back go
first, and the eviction reply says chosen_by guest. The dirty data in them is written back,
never lost. A guest that says nothing in time gets the host's own order (chosen_by host),
and so does one whose answer is malformed (refused, changing nothing). A guest cannot answer
for a request that is not its VM's. status counts asked/answered/expired. A resident budget on
a VM's image asks the guest the same way."""
import json
import mmap
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Client, check, run  # noqa: E402
from pagecache import cachestat  # noqa: E402

T = "7e7e7e7e-1111-4222-8333-444444444444"
MB = 1 << 20


class Guest(Client):
    def next_event(self, name):
        while True:
            m = self.read_msg()
            if m.get("event") == name:
                return m


def evict_async(sock, to):
    out = {}

    def go():
        c = Client(sock, timeout=30)
        out["reply"] = c.call("evict", tag=T, to=to)
        c.close()
    th = threading.Thread(target=go)
    th.start()
    return th, out


def body(b):
    c = Client(b.sock)
    path = os.path.join(b.state, "images", "r.img")
    check("result" in c.call("image_create", path=path, size=64 * MB, tag=T), "create")
    m = c.call("qemu_args", vm="v", tags=[T])
    g = Guest(m["result"]["channel"])
    g.next_event("slots")

    def dirty_all(val):
        with open(path, "r+b") as f:
            mm = mmap.mmap(f.fileno(), 64 * MB)
            for off in range(0, 64 * MB, 4096):
                mm[off] = val
            mm.close()

    # the guest answers: the upper half goes, the lower half stays
    dirty_all(1)
    th, out = evict_async(b.sock, 32 * MB)
    ev = g.next_event("reclaim")
    check(ev["tag"] == T and ev["keep_bytes"] == 32 * MB and ev["deadline_ms"] == 2000,
          f"reclaim event: {ev}")
    r = g.call("reclaim_ranges", request=ev["request"] + 1000, tag=T, ranges=[])
    check(r.get("error", {}).get("code") == "invalid_argument", f"a request not asked: {r}")
    r = g.call("reclaim_ranges", request=ev["request"], tag=T, ranges=[{"offset": -1}])
    check(r.get("error", {}).get("code") == "invalid_argument", f"garbage ranges: {r}")
    r = g.call("reclaim_ranges", request=ev["request"], tag=T,
               ranges=[{"offset": 32 * MB, "length": 32 * MB}])
    check(r.get("result", {}).get("accepted") == 1, f"answer: {r}")
    th.join()
    res = out["reply"]["result"]
    check(res["chosen_by"] == "guest", f"evict reply: {res}")
    lo, hi = cachestat(path, 0, 32 * MB)[0], cachestat(path, 32 * MB, 32 * MB)[0]
    print(f"guest-chosen: lower half {lo >> 20} MiB cached, upper half {hi >> 20} MiB")
    check(hi == 0 and lo >= 30 * MB, "the guest's ranges went, the rest stayed")
    with open(path, "rb") as f:
        data = f.read(64 * MB)
    check(all(data[off] == 1 for off in range(0, 64 * MB, 4096)), "nothing written was lost")

    # the guest says nothing: after the deadline the host chooses (from the start)
    dirty_all(2)
    th, out = evict_async(b.sock, 32 * MB)
    g.next_event("reclaim")
    th.join()
    check(out["reply"]["result"]["chosen_by"] == "host", f"silent guest: {out['reply']}")
    lo, hi = cachestat(path, 0, 32 * MB)[0], cachestat(path, 32 * MB, 32 * MB)[0]
    print(f"host-chosen: lower half {lo >> 20} MiB cached, upper half {hi >> 20} MiB")
    check(lo < 4 * MB and hi >= 30 * MB, "the host's own order: from the start")

    st = c.call("status")["result"]["guests"]
    check(st["reclaims_asked"] == 2 and st["reclaims_answered"] == 1 and
          st["reclaims_expired"] == 1, f"status: {st}")

    # a resident budget over a VM's image asks the guest too (not the worker on its own)
    dirty_all(3)
    check("result" in c.call("image_budget", tag=T, resident=16 * MB), "budget")
    ev = g.next_event("reclaim")
    check(ev["reason"] == "budget" and ev["keep_bytes"] == 16 * MB, f"budget reclaim: {ev}")
    r = g.call("reclaim_ranges", request=ev["request"], tag=T,
               ranges=[{"offset": 16 * MB, "length": 48 * MB}])
    check(r.get("result", {}).get("accepted") == 1, f"answer: {r}")
    for _ in range(100):
        if cachestat(path)[0] <= 16 * MB + MB:
            break
        time.sleep(0.05)
    lo, hi = cachestat(path, 0, 16 * MB)[0], cachestat(path, 16 * MB, 48 * MB)[0]
    print(f"budget, guest-chosen: [0,16M) {lo >> 20} MiB cached, [16M,64M) {hi >> 20} MiB, all {cachestat(path)[0] >> 10} KiB")
    # the offered 48 MiB were not quite enough (the label tail is cached too): the rest came
    # from the start of the image, brokerd's own order
    check(hi == 0 and lo >= 8 * MB and cachestat(path)[0] <= 16 * MB,
          "the budget took the guest's ranges first")
    check(b.alive(), "brokerd alive")


run(body, "--guest-reclaim-ms", "2000", "--dirty-budget", "0", "--pressure", "none", start=True)
print("guest-chosen eviction: asked, answered or expired, nothing lost")
