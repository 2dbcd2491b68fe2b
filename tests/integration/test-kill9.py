#!/usr/bin/env python3
"""Theory of operation: acknowledged state survives kill -9. A client claims and releases
tags as fast as it can and records every acknowledgement; brokerd is killed with SIGKILL at
a random moment (so, often, in the middle of a registry write); after a restart every
acknowledged claim must be there with its owner and every acknowledged release must hold.
Repeated over several rounds. The registry must parse after every kill."""
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Client, check, run  # noqa: E402

NTAGS = 150
ROUNDS = 6


def make_tag():
    h = f"{random.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


def body2(b):
    b.start()
    c = Client(b.sock)
    tags = [make_tag() for _ in range(NTAGS)]
    for t in tags:
        check("result" in c.call("fm_add", size=2 << 20, tag=t), "fm_add")
    c.close()
    acked = {}  # tag -> True claimed / False released, as last acknowledged
    rng = random.Random(1234)

    for rnd in range(ROUNDS):
        stop = threading.Event()
        inflight = {}

        def worker():
            try:
                w = Client(b.sock, timeout=5)
                while not stop.is_set():
                    t = rng.choice(tags)
                    op = "release" if acked.get(t) else "claim"
                    inflight[t] = op
                    r = w.call(op, tag=t, name=f"r{rnd}")
                    if "result" in r:
                        acked[t] = op == "claim"
                    inflight.pop(t, None)
            except (ConnectionError, OSError, ValueError):
                pass  # killed under us: the request in flight is neither acked nor lost

        th = threading.Thread(target=worker)
        th.start()
        time.sleep(rng.uniform(0.02, 0.3))
        b.kill9()
        stop.set()
        th.join()
        # the registry on disk is always a whole snapshot
        with open(os.path.join(b.state, "registry.json")) as f:
            json.loads(f.read())
        b.start()
        c = Client(b.sock)
        listed = {t["tag"]: t for t in c.call("list")["result"]["tags"]}
        for t, claimed in acked.items():
            if t in inflight:
                continue  # the last request on t was not acknowledged: either outcome is fine
            state = listed[t]["state"]
            if claimed:
                check(state == "claimed", f"round {rnd}: acknowledged claim of {t} lost ({state})")
            else:
                check(state == "ready", f"round {rnd}: acknowledged release of {t} lost ({state})")
        # bring our record in line with the truth for tags whose last request was in flight
        for t in inflight:
            acked[t] = listed[t]["state"] == "claimed"
        c.close()
    check(sum(1 for v in acked.values() if v) > 0, "no claim was acknowledged at all")
    print(f"kill9: ok ({ROUNDS} rounds, {len(acked)} tags touched)")


run(body2)
