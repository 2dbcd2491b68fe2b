#!/usr/bin/env python3
"""Theory of operation: the broker is the host side of fake-DAX memory. Another process maps
an image MAP_SHARED (as QEMU does) and writes through the mapping; the broker must make those
bytes durable on request (checked with cachestat: no dirty page left, and with an O_DIRECT
read: the bytes are in the file), write only the range asked for, serve concurrent flushes
with one writeback, shrink the image's cache to a budget without losing a dirty byte, and
refuse bad requests without changing anything."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Broker, Client, check  # noqa: E402
from pagecache import MiB, Mapper, cachestat, check_direct  # noqa: E402

SIZE = 256 * MiB


def image(c, b, name, size=SIZE):
    path = os.path.join(b.state, "images", name)
    r = c.call("image_create", path=path, size=size)
    check("result" in r, f"image_create: {r}")
    return r["result"]["tag"], path


def ok(r, what):
    check("result" in r, f"{what}: {r}")
    return r["result"]


def err(r, code, what):
    check(r.get("error", {}).get("code") == code, f"{what}: expected {code}, got {r}")


def durability(c, b):
    tag, path = image(c, b, "durable.img")
    m = Mapper(path, SIZE)
    try:
        m.fill(0, 64 * MiB, 1)
        check(cachestat(path)[1] > 32 * MiB, "the mapper's writes are dirty before the flush")
        res = ok(c.call("flush", tag=tag, offset=0, length=64 * MiB, wait=True), "flush")
        check(res["written_bytes"] >= 32 * MiB, f"flush wrote the dirty bytes: {res}")
        cached, dirty, wb = cachestat(path)
        check(dirty == 0 and wb == 0, f"no dirty page after flush: {dirty} {wb}")
        bad = check_direct(path, 0, 64 * MiB, 1)
        check(bad is None, f"O_DIRECT read after flush: {bad}")
        pc = ok(c.call("show", tag=tag), "show")["page_cache"]
        check(pc["errors"] == 0 and pc["last_error"] is None, f"no errors recorded: {pc}")
    finally:
        m.close()


def ranges(c, b):
    tag, path = image(c, b, "range.img")
    m = Mapper(path, SIZE)
    try:
        m.fill(0, 64 * MiB, 2)
        res = ok(c.call("flush", tag=tag, offset=8 * MiB, length=8 * MiB, wait=True), "range")
        if res["durability"] != "range":
            print(f"SKIP range check: {b.state} is not ext4/xfs (durability: whole file)")
            return
        check(cachestat(path, 8 * MiB, 8 * MiB)[1:] == (0, 0), "the range is clean")
        check(check_direct(path, 8 * MiB, 8 * MiB, 2) is None, "the range is on disk")
        outside = cachestat(path, 16 * MiB, 48 * MiB)
        check(outside[1] + outside[2] > 40 * MiB, f"pages after the range stay dirty: {outside}")
        before = cachestat(path, 0, 8 * MiB)
        check(before[1] + before[2] > 4 * MiB, f"pages before the range stay dirty: {before}")
    finally:
        m.close()


def coalescing(c, b):
    """N flushes sent at once: the first starts a writeback, the rest share the next one."""
    tag, path = image(c, b, "coalesce.img")
    m = Mapper(path, SIZE)
    n = 12
    try:
        m.fill(0, 192 * MiB, 3)
        start = ok(c.call("show", tag=tag), "show")["page_cache"]["flush_batches"]
        for i in range(n):   # pipelined: all sent before any answer is read
            c.send_raw(f'{{"id":"f{i}","op":"flush","tag":"{tag}"}}\n'.encode())
        ids, done = set(), {}
        while len(done) < n:
            msg = c.read_msg()
            if "event" in msg:
                check(msg["event"] == "flush_done" and "error" not in msg, f"{msg}")
                done[msg["flush_id"]] = msg
            else:
                ids.add(ok(msg, "async flush")["flush_id"])
        check(set(done) == ids, "every flush id completes once")
        batches = {d["batch"] for d in done.values()}
        end = ok(c.call("show", tag=tag), "show")["page_cache"]["flush_batches"]
        check(len(batches) <= 2 and end - start == len(batches),
              f"{n} flushes, {len(batches)} writebacks ({end - start} counted)")
        sizes = {d["batch"]: d["batch_size"] for d in done.values()}
        check(sum(sizes.values()) == n, f"each writeback served its waiters: {sizes}")
        check(cachestat(path)[1] == 0, "clean after the last flush")
        check(check_direct(path, 0, 192 * MiB, 3) is None, "on disk")
        print(f"coalescing: {n} flushes -> {len(batches)} writeback(s)")
    finally:
        m.close()


def eviction(c, b):
    tag, path = image(c, b, "evict.img")
    m = Mapper(path, SIZE)
    try:
        m.fill(0, SIZE, 4)        # fully resident, all dirty, mapped by another process
        check(cachestat(path, 0, SIZE)[0] == SIZE, "fully resident")
        res = ok(c.call("evict", tag=tag, to=64 * MiB), "evict")
        check(res["after"]["resident_bytes"] <= 64 * MiB, f"shrunk to the target: {res}")
        check(res["after"]["resident_bytes"] >= 32 * MiB, f"but not far below it: {res}")
        check(cachestat(path)[0] <= 64 * MiB, "cachestat agrees")
        check(check_direct(path, 0, SIZE, 4) is None, "every written byte is in the file")
        m.check(0, SIZE, 4)       # and the mapping reads them back (faulting pages in)
        print(f"eviction: {SIZE >> 20} MiB -> {res['after']['resident_bytes'] >> 20} MiB "
              f"in {res['usec'] / 1000:.0f} ms")
    finally:
        m.close()


RESIDENT, DIRTY = 0, 1   # fields of cachestat()


def sample_while_churning(m, path, val, field, every):
    """Have the mapper dirty the whole image page by page for 3 s (<= 50 MB/s, then one
    last full pass leaving every page = val); meanwhile sample a cachestat field every
    `every` seconds. Returns the samples."""
    m.p.stdin.write(f"churn 3 {SIZE} {val}\n")
    m.p.stdin.flush()
    samples = []
    t0 = time.time()
    while time.time() - t0 < 2.8:
        time.sleep(every)
        samples.append(cachestat(path)[field])
    check(m.p.stdout.readline().startswith("ok"), "churn finished")
    return samples


def budget_under_writer(c, b):
    tag, path = image(c, b, "budget.img")
    budget = 64 * MiB
    ok(c.call("image_budget", tag=tag, resident=budget), "budget")
    m = Mapper(path, SIZE)
    try:
        m.fill(0, SIZE, 5)
        # a writer that keeps dirtying the whole image at a steady rate for 3 s
        samples = sorted(sample_while_churning(m, path, 6, RESIDENT, 0.1))
        median = samples[len(samples) // 2]
        check(median <= budget * 1.5, f"resident median {median >> 20} MiB vs budget 64 MiB")
        time.sleep(0.5)           # the final full pass dirtied everything; upkeep catches up
        final = cachestat(path)[0]
        check(final <= budget + 8 * MiB, f"back within budget: {final >> 20} MiB")
        m.check(0, SIZE, 6)
        check(ok(c.call("flush", tag=tag, wait=True), "flush")["flush_id"] > 0, "flush")
        check(check_direct(path, 0, SIZE, 6) is None, "nothing the writer wrote was lost")
        print(f"budget: resident median {median >> 20} MiB, max {samples[-1] >> 20} MiB, "
              f"after {final >> 20} MiB (budget {budget >> 20} MiB)")
    finally:
        m.close()


def dirty_budget_under_writer(c, b):
    """Background writeback keeps a written image's dirty bytes within its dirty budget,
    without writing every page the moment it is dirtied: below half the budget pages stay
    dirty, so a page the guest rewrites is written once."""
    tag, path = image(c, b, "dirty.img")
    budget = 32 * MiB
    ok(c.call("image_budget", tag=tag, dirty=budget), "dirty budget")
    m = Mapper(path, SIZE)
    try:
        # <= 50 MB/s: ~2.5 MB per 50 ms tick
        samples = sorted(sample_while_churning(m, path, 7, DIRTY, 0.01))
        p95, top = samples[len(samples) * 95 // 100], samples[-1]
        check(p95 <= budget, f"dirty p95 {p95 >> 20} MiB vs budget {budget >> 20} MiB")
        check(top <= budget * 2, f"dirty max {top >> 20} MiB vs budget {budget >> 20} MiB")
        check(top >= budget // 4, f"dirty pages accumulate below half the budget before "
              f"they are written: max {top >> 10} KiB")
        m.check(0, SIZE, 7)
        ok(c.call("flush", tag=tag, wait=True), "flush")
        check(check_direct(path, 0, SIZE, 7) is None, "nothing the writer wrote was lost")
        print(f"dirty budget: p95 {p95 >> 20} MiB, max {top >> 20} MiB dirty under a writer "
              f"(budget {budget >> 20} MiB)")
    finally:
        m.close()


def invalidate(c, b):
    tag, path = image(c, b, "migrate.img")
    m = Mapper(path, SIZE)
    m.fill(0, 16 * MiB, 7)
    err(c.call("image_invalidate", tag=tag), "busy", "dirty pages refuse invalidation")
    ok(c.call("flush", tag=tag, wait=True), "flush")
    err(c.call("image_invalidate", tag=tag), "busy", "a mapping refuses invalidation")
    m.close()
    res = ok(c.call("image_invalidate", tag=tag), "invalidate")
    check(res["dropped_bytes"] >= 16 * MiB and cachestat(path)[0] == 0, f"all dropped: {res}")
    check(check_direct(path, 0, 16 * MiB, 7) is None, "content intact")


def bad_input(c, b):
    tag, path = image(c, b, "bad.img", 32 * MiB)
    reg = os.path.join(b.state, "registry.json")
    before = open(reg).read()
    err(c.call("flush", tag="6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10"), "not_found", "unknown tag")
    err(c.call("flush", tag="nope"), "invalid_argument", "not a UUID")
    err(c.call("flush", tag=tag, offset=32 * MiB), "invalid_argument", "offset at the end")
    err(c.call("flush", tag=tag, offset=16 * MiB, length=17 * MiB), "invalid_argument",
        "range past the end")
    err(c.call("flush", tag=tag, length=0), "invalid_argument", "empty range")
    err(c.call("flush", tag=tag, offset=-1), "invalid_argument", "negative offset")
    err(c.call("flush", tag=tag, length="1M"), "invalid_argument", "length as a string")
    err(c.call("flush", tag=tag, wait="yes"), "invalid_argument", "wait as a string")
    err(c.call("flush", tag=tag, offset=1 << 64), "invalid_argument", "offset beyond u64")
    err(c.call("evict", tag=tag, to=1 << 50), "invalid_argument", "evict to more than the image")
    err(c.call("image_budget", tag=tag, resident=0), "invalid_argument", "budget 0")
    err(c.call("image_budget", tag=tag, dirty=1 << 60), "invalid_argument", "absurd budget")
    err(c.call("image_budget", tag=tag, dirty=-5), "invalid_argument", "negative budget")
    err(c.call("image_budget", tag=tag), "invalid_argument", "no budget given")
    check(open(reg).read() == before, "refusals changed nothing")
    fm = "0b0b0b0b-0b7d-4c1e-9a51-3d2f8e7b4c10"
    ok(c.call("fm_add", size=2 * MiB, tag=fm), "fm_add")
    err(c.call("flush", tag=fm), "not_supported", "flush of dax capacity")
    # the image deleted underneath: a clear error, the daemon lives on
    os.unlink(path)
    r = c.call("flush", tag=tag, wait=True)
    err(r, "gone", "flush of a deleted image")
    check("deleted" in r["error"]["message"], r["error"]["message"])
    check(b.alive() and "result" in c.call("status"), "brokerd survived")


def adopt(c, b):
    imgdir = os.path.join(b.state, "images")
    raw = os.path.join(imgdir, "raw.img")
    with open(raw, "wb") as f:
        f.truncate(32 * MiB + 2 * MiB)
    res = ok(c.call("image_adopt", path=raw), "adopt a label-less file")
    tag = res["tag"]
    check(res["size"] == 32 * MiB, f"the data part is the image: {res}")
    err(c.call("image_adopt", path=raw), "busy", "adopt twice")
    os.link(raw, os.path.join(imgdir, "hard.img"))
    err(c.call("image_adopt", path=os.path.join(imgdir, "hard.img")), "busy",
        "a hard link to an image is the same file")
    os.symlink(raw, os.path.join(imgdir, "sym.img"))
    err(c.call("image_adopt", path=os.path.join(imgdir, "sym.img")), "invalid_argument",
        "a symbolic link")
    odd = os.path.join(imgdir, "odd.img")
    with open(odd, "wb") as f:
        f.truncate(20 * MiB)
    err(c.call("image_adopt", path=odd), "invalid_argument", "a size that is not data + tail")
    err(c.call("image_adopt", path="/etc/passwd"), "invalid_argument", "outside the image dirs")
    err(c.call("image_adopt", path=os.path.join(imgdir, "missing.img")), "not_found", "missing")
    # a file that carries our label comes back under its own tag (a migrated image)
    shown = ok(c.call("show", tag=tag), "show")
    check(shown["label"]["uuid"] == tag, f"the label was written: {shown['label']}")
    return tag, raw


def restart_keeps_budgets(b, tag):
    c = Client(b.sock)
    ok(c.call("image_budget", tag=tag, resident=8 * MiB, dirty=None), "budget")
    c.close()
    b.stop()
    b.start()
    c = Client(b.sock)
    bu = ok(c.call("show", tag=tag), "show")["budgets"]
    check(bu == {"dirty_bytes": None, "resident_bytes": 8 * MiB}, f"budgets survive: {bu}")
    c.close()


def global_budget():
    """Two images under one global resident budget: both shrink, in proportion."""
    b = Broker("--resident-budget", "64M", "--upkeep-interval", "50")
    try:
        b.start()
        c = Client(b.sock, timeout=60)
        maps, paths = [], []
        for name in ("g1.img", "g2.img"):
            tag, path = image(c, b, name, 128 * MiB)
            m = Mapper(path, 128 * MiB)
            m.fill(0, 128 * MiB, 8)
            maps.append(m)
            paths.append(path)
        deadline = time.time() + 5
        while time.time() < deadline:
            res = [cachestat(p)[0] for p in paths]
            if sum(res) <= 64 * MiB + 8 * MiB:
                break
            time.sleep(0.1)
        check(sum(res) <= 64 * MiB + 8 * MiB, f"global budget 64 MiB: {[r >> 20 for r in res]} MiB")
        check(min(res) > 8 * MiB, f"shared out, not taken from one image: {[r >> 20 for r in res]}")
        for m, p in zip(maps, paths):
            m.check(0, 128 * MiB, 8)
            m.close()
        print(f"global budget: {[r >> 20 for r in res]} MiB resident for a 64 MiB budget")
        c.close()
    except BaseException:
        sys.stderr.write("--- brokerd log (global budget) ---\n" + b.log_text())
        raise
    finally:
        b.cleanup()


def main():
    b = Broker("--dirty-budget", "0", "--upkeep-interval", "50", "--pressure", "none")
    try:
        b.start()
        c = Client(b.sock, timeout=60)
        for t in (durability, ranges, coalescing, eviction, budget_under_writer,
                  dirty_budget_under_writer, invalidate, bad_input):
            t(c, b)
            print(f"ok {t.__name__}")
        tag, _ = adopt(c, b)
        print("ok adopt")
        c.close()
        restart_keeps_budgets(b, tag)
        print("ok restart_keeps_budgets")
        global_budget()
        print("ok global_budget")
    except BaseException:
        sys.stderr.write("--- brokerd log ---\n" + b.log_text())
        raise
    finally:
        b.cleanup()


if __name__ == "__main__":
    main()
