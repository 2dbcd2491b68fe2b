#!/usr/bin/env python3
"""Theory of operation: an image's layout is what brokerd decided when it created or adopted
the image, recorded in its registry, and never read again from bytes a guest can write. A
pmem-layout image's data starts at offset 0, so a guest owns the 4 KiB where a devdax image
keeps its DAX info block, and `ndctl create-namespace -m devdax` in the guest writes one
there. Here a guest's block is planted in two forms: one for another namespace (brokerd used
to forget the image at its next start, with its claim) and one valid for the image's own tag
(brokerd used to switch the image to the devdax layout, so flush offsets named other bytes).
Across a restart the image stays, with its claim, its layout and its data offset; a flush of
data offset 0 still means file offset 0. A devdax image keeps its layout too."""
import os
import struct
import sys
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import Client, check, run  # noqa: E402

A = "a0a0a0a0-2222-4222-8333-444444444444"   # pmem layout: the guest's bytes from offset 0
D = "d0d0d0d0-2222-4222-8333-444444444444"   # devdax layout
MB = 1 << 20


def fletcher64(buf):
    lo = hi = 0
    for (w,) in struct.iter_unpack("<I", buf):
        lo = (lo + w) & 0xFFFFFFFF
        hi = (hi + lo) & 0xFFFFFFFF
    return hi << 32 | lo


def block_for(block, tag_from, tag_to):
    """The info block with its parent namespace changed from one tag to another, re-summed."""
    b = bytearray(block)
    for form in (uuid.UUID(tag_from).bytes, uuid.UUID(tag_from).bytes_le):
        if b[32:48] == form:
            b[32:48] = uuid.UUID(tag_to).bytes if form == uuid.UUID(tag_from).bytes \
                else uuid.UUID(tag_to).bytes_le
            break
    else:
        raise AssertionError("the parent uuid is not where the format says")
    b[4088:4096] = bytes(8)
    b[4088:4096] = struct.pack("<Q", fletcher64(bytes(b)))
    return bytes(b)


def layout_of(c, tag):
    r = c.call("show", tag=tag)
    check("result" in r, f"show {tag}: {r}")
    return r["result"]["layout"], r["result"]["data_offset"], r["result"].get("owner", {})


def body(b):
    images = os.path.join(b.state, "images")
    a_path, d_path = os.path.join(images, "a.img"), os.path.join(images, "d.img")
    c = Client(b.sock)
    check("result" in c.call("image_create", path=a_path, size=32 * MB, tag=A), "create A")
    check("result" in c.call("image_create", path=d_path, size=32 * MB, tag=D, layout="devdax"),
          "create D")
    check("result" in c.call("claim", tag=A, name="vm-a"), "claim A")
    with open(d_path, "rb") as f:
        f.seek(4096)
        d_block = f.read(4096)
    check(d_block[:16] == b"NVDIMM_DAX_INFO\0", "D has its info block")
    c.close()

    for what, block in (("a block for another namespace", d_block),
                        ("a block valid for A's own tag", block_for(d_block, D, A))):
        # what a guest's ndctl create-namespace -m devdax writes into A's data
        with open(a_path, "r+b") as f:
            f.seek(4096)
            f.write(block)
            f.flush()
            os.fsync(f.fileno())
        b.stop()
        b.start()
        c = Client(b.sock)
        layout, off, owner = layout_of(c, A)
        check((layout, off) == ("pmem", 0),
              f"{what}: A keeps the pmem layout brokerd recorded, not the guest's: {layout} {off}")
        check(owner.get("name") == "vm-a", f"{what}: A keeps its claim: {owner}")
        check(layout_of(c, D)[:2] == ("devdax", 16 * MB), f"{what}: D keeps its layout")
        f = c.call("flush", tag=A, offset=0, length=4096, wait=True)
        check(f.get("result", {}).get("offset") == 0, f"{what}: flush offsets are A's: {f}")
        c.close()
        print(f"layout: {what} at A's 4 KiB changes nothing across a restart")


if __name__ == "__main__":
    run(body, start=True)
