#!/usr/bin/env python3
"""Theory of operation: the devdax image layout on the host. `image_create` with
`layout: devdax` makes a file of a 16 MiB header (a DAX info block for the tag at 4 KiB), the
data, and the label tail; `show` says where the data starts; flush ranges are the data's
offsets (a range flush of the file at data offset + 16 MiB). The file describes itself: after
`image forget` and `image adopt`, and after a restart, the layout is the same. A file whose
info block names another namespace is refused by adopt and left byte-identical; a bad layout
value is refused; virtio-pmem, which would show the guest the header, is refused."""
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Client, check, run  # noqa: E402

T = "dada2222-1111-4222-8333-444444444444"
U = "dada3333-1111-4222-8333-444444444444"
MB = 1 << 20


def body(b):
    c = Client(b.sock)
    images = os.path.join(b.state, "images")
    path = os.path.join(images, "d.img")
    m = c.call("image_create", path=path, size=32 * MB, tag=T, layout="pmem-ish")
    check(m.get("error", {}).get("code") == "invalid_argument", f"bad layout: {m}")
    check(not os.path.exists(path), "a refused create made no file")
    m = c.call("image_create", path=path, size=32 * MB, tag=T, layout="devdax")
    check("result" in m, f"create: {m}")
    r = m["result"]
    check((r["layout"], r["data_offset"], r["size"], r["file_size"]) ==
          ("devdax", 16 * MB, 32 * MB, 16 * MB + 32 * MB + 2 * MB), f"shape: {r}")
    with open(path, "rb") as f:
        f.seek(4096)
        block = f.read(4096)
    check(block[:16] == b"NVDIMM_DAX_INFO\0", "info block at 4 KiB")
    f = c.call("flush", tag=T, offset=2 * MB, length=4096, wait=True)
    check(f["result"]["offset"] == 2 * MB and f["result"]["length"] == 4096,
          f"flush names data offsets: {f}")
    f = c.call("flush", tag=T, offset=32 * MB - 4096, length=8192, wait=True)
    check(f.get("error", {}).get("code") == "invalid_argument", f"past the data: {f}")
    m = c.call("qemu_args", vm="v", tags=[T], mode="virtio-pmem", channel=False)
    check(m.get("error", {}).get("code") == "invalid_argument" and "devdax" in
          m["error"]["message"], f"virtio-pmem: {m}")

    # the file says its layout: forget, adopt, restart
    check("result" in c.call("image_forget", tag=T), "forget")
    m = c.call("image_adopt", path=path)
    check(m.get("result", {}).get("layout") == "devdax" and m["result"]["tag"] == T,
          f"adopt finds the layout and the tag: {m}")
    c.close()
    b.stop()
    b.start()
    c = Client(b.sock)
    s = c.call("show", tag=T)["result"]
    check(s["layout"] == "devdax" and s["data_offset"] == 16 * MB, f"after restart: {s}")

    # an info block for another namespace: not ours to take
    other = os.path.join(images, "o.img")
    m = c.call("image_create", path=other, size=32 * MB, tag=U, layout="devdax")
    check("result" in m, f"create o: {m}")
    check("result" in c.call("image_forget", tag=U), "forget o")
    with open(other, "r+b") as f:   # drop the label, keep U's info block
        f.seek(-128 * 1024, os.SEEK_END)
        f.write(bytes(128 * 1024))
    before = hashlib.sha256(open(other, "rb").read()).hexdigest()
    m = c.call("image_adopt", path=other, tag=T.replace("2222", "4444"))
    check(m.get("error", {}).get("code") == "busy" and "DAX info block" in m["error"]["message"]
          and f"is for namespace {U}" in m["error"]["message"], f"foreign info block: {m}")
    check(hashlib.sha256(open(other, "rb").read()).hexdigest() == before, "file untouched")
    # a damaged info block (one flipped byte) is said to be damaged, not someone else's
    with open(other, "r+b") as f:
        f.seek(4096 + 100)
        b = f.read(1)
        f.seek(4096 + 100)
        f.write(bytes([b[0] ^ 0x40]))
    before = hashlib.sha256(open(other, "rb").read()).hexdigest()
    m = c.call("image_adopt", path=other, tag=U)
    check(m.get("error", {}).get("code") == "busy" and "is damaged" in m["error"]["message"],
          f"damaged info block: {m}")
    check(hashlib.sha256(open(other, "rb").read()).hexdigest() == before, "file untouched")


run(body, start=True)
print("devdax layout: self-describing, data offsets, foreign info blocks refused")
