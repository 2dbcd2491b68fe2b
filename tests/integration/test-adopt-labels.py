#!/usr/bin/env python3
"""Theory of operation: adopt keeps the tag of a label that is tagmem's, and refuses, changing
nothing, a label area that holds anything else: a label with the nil uuid (it used to be
adopted as tag 00000000-…) and a label named "tagmemEVIL" (another owner's name that merely
begins like ours; it used to pass the prefix rule). A file labelled "tagmem" with a real
tag is adopted with that tag."""
import hashlib
import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import Client, check, run  # noqa: E402

T = "ad0bad0b-1111-4222-8333-444444444444"
MB = 1 << 20


def patch_label(path, find, replace, at=None):
    """Replace bytes in the file's label area (its last 128 KiB); returns where."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size - 128 * 1024)
        area = f.read(128 * 1024)
        i = area.find(find) if at is None else at
        check(i >= 0, f"{find!r} is in the label area")
        f.seek(size - 128 * 1024 + i)
        f.write(replace)
    return i


def body(b):
    c = Client(b.sock)
    path = os.path.join(b.state, "images", "x.img")
    check("result" in c.call("image_create", path=path, size=16 * MB, tag=T), "create")
    check("result" in c.call("image_forget", tag=T), "forget")
    tag_bytes = next(f for f in (uuid.UUID(T).bytes, uuid.UUID(T).bytes_le)
                     if f in open(path, "rb").read()[-128 * 1024:])
    for what, find, replace in (("a label named tagmemEVIL", b"tagmem\0", b"tagmemEVIL\0"),
                                ("a label with the nil uuid", tag_bytes, bytes(16))):
        at = patch_label(path, find, replace)
        before = hashlib.sha256(open(path, "rb").read()).hexdigest()
        r = c.call("image_adopt", path=path)
        check(r.get("error", {}).get("code") == "busy",
              f"{what}: adopt refuses the label area: {r}")
        check(hashlib.sha256(open(path, "rb").read()).hexdigest() == before,
              f"{what}: the refused adopt changed the file")
        check(c.call("show", tag="00000000-0000-0000-0000-000000000000")
              .get("error", {}).get("code") in ("not_found", "invalid_argument"),
              f"{what}: no tag 0000…")
        patch_label(path, replace, find, at)
        print(f"adopt: refused {what}")
    r = c.call("image_adopt", path=path)
    check(r.get("result", {}).get("tag") == T, f"tagmem's own label keeps its tag: {r}")
    c.close()


if __name__ == "__main__":
    run(body, start=True)
