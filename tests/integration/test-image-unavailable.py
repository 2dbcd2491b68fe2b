#!/usr/bin/env python3
"""Theory of operation: an image whose file cannot be opened when brokerd starts — its
filesystem came up read-only, here a real tmpfs remounted ro — is not forgotten. brokerd
keeps its registry record as it was (budgets, lost writes), says so in its log and in
`status`, answers not_found for the tag meanwhile, and serves it again by itself once the
file can be opened (it retries every few seconds), with what the record held and the claim
on it. The registry rewritten at start (it forgets the deleted image) still holds every other
claim, including one the backend's scan matches only after the registry was read. A file that
was deleted is still forgotten. Needs root for the mount; skips (77) otherwise."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Client, Scratch, check, run  # noqa: E402

A = "a1a1a1a1-1111-4222-8333-444444444444"
B = "b1b1b1b1-1111-4222-8333-444444444444"
D = "d1d1d1d1-1111-4222-8333-444444444444"
MiB = 1 << 20


def registry(b, what):
    with open(os.path.join(b.state, "registry.json")) as f:
        return {x["tag"]: x for x in json.load(f).get(what, [])}


def main():
    with Scratch("tagmem-unavail.") as scratch:
        mnt = scratch.tmpfs("images")
        run(lambda b: body(b, mnt), "--image-dir", mnt, start=True)


def body(b, mnt):
    c = Client(b.sock)
    for tag, name in ((A, "a.img"), (B, "b.img")):
        m = c.call("image_create", path=os.path.join(mnt, name), size=16 * MiB, tag=tag)
        check("result" in m, f"create: {m}")
    check("result" in c.call("image_budget", tag=A, dirty=4 * MiB), "budget")
    check("result" in c.call("claim", tag=A, name="vm-a"), "claim")
    # a DCD tag's claim, matched only by the scan after the registry is read
    check("result" in c.call("fm_add", size=2 * MiB, tag=D), "fm_add")
    check("result" in c.call("claim", tag=D, name="vm-d"), "claim D")
    before, claims = registry(b, "images"), registry(b, "claims")
    c.close()
    b.stop()

    # the filesystem comes back read-only, and b.img is gone for good
    os.unlink(os.path.join(mnt, "b.img"))
    subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
    b.start()
    c = Client(b.sock)
    st = c.call("status")["result"]
    check(st["images_unavailable"] == 1, f"status counts the unopenable image: {st}")
    check(c.call("show", tag=A).get("error", {}).get("code") == "not_found",
          "it is not served meanwhile")
    out = subprocess.run([os.environ["TAGMEM"], "--socket", b.sock, "status"],
                         capture_output=True, text=True)
    check("images unavailable: 1" in out.stdout, f"tagmem status says so: {out.stdout}")
    reg = registry(b, "images")
    check(reg.get(A) == before[A], f"its record is kept as it was: {reg.get(A)}")
    check(registry(b, "claims").get(A) == claims[A], "and so is the claim on it")
    # forgetting b.img rewrote the registry at start: after the scan, with every claim
    check(registry(b, "claims").get(D) == claims[D],
          f"the DCD tag's claim is in the rewritten registry: {registry(b, 'claims')}")
    check(B not in reg, "a deleted image is forgotten")
    log = b.log_text()
    check("cannot be opened" in log and "Read-only file system" in log,
          f"the log says what and why: {log}")

    # the filesystem is fixed: brokerd picks the image up again by itself
    subprocess.run(["mount", "-o", "remount,rw", mnt], check=True)
    deadline = time.time() + 15
    while time.time() < deadline and "result" not in c.call("show", tag=A):
        time.sleep(0.2)
    m = c.call("show", tag=A)
    check("result" in m, f"served again once it can be opened: {m}")
    check(m["result"]["budgets"]["dirty_bytes"] == 4 * MiB, f"with its budget: {m}")
    check(m["result"]["state"] == "claimed" and m["result"]["owner"]["name"] == "vm-a",
          f"and its claim: {m}")
    check(c.call("status")["result"]["images_unavailable"] == 0, "nothing unavailable")
    check(registry(b, "images").get(A) == before[A], "the registry holds it as before")
    check(registry(b, "claims").get(A) == claims[A], "the claim too")
    print("unavailable image kept, then served again")
    c.close()
    b.stop()


if __name__ == "__main__":
    main()
