"""Page-cache helpers for the data-plane tests: cachestat(2), O_DIRECT reads, and a mapper
process that holds a MAP_SHARED mapping of an image (as QEMU does) and writes or checks a
known pattern through it on command."""
import ctypes
import mmap
import os
import subprocess
import sys

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
PAGE = 4096
MiB = 1 << 20


class _Range(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Stat(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in
                ("cache", "dirty", "writeback", "evicted", "recently_evicted")]


def cachestat(path, off=0, length=0):
    """(cached, dirty, writeback) bytes of [off, off+length); length 0: to the end."""
    fd = os.open(path, os.O_RDONLY)
    try:
        r, s = _Range(off, length), _Stat()
        if _libc.syscall(451, fd, ctypes.byref(r), ctypes.byref(s), 0) < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return s.cache * PAGE, s.dirty * PAGE, s.writeback * PAGE
    finally:
        os.close(fd)


def page_byte(page, val):
    return (page * 7 + val) & 0xFF


def read_direct(path, off, length):
    """The bytes on the device, bypassing (and not filling) the page cache."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, length)
    try:
        n = os.preadv(fd, [buf], off)
        assert n == length, f"short O_DIRECT read: {n}"
        return bytes(buf)
    finally:
        buf.close()
        os.close(fd)


def check_direct(path, off, length, val):
    data = read_direct(path, off, length)
    for i in range(0, length, PAGE):
        want = page_byte((off + i) // PAGE, val)
        if data[i] != want or data[i + PAGE - 1] != want:
            return f"page {(off + i) // PAGE}: {data[i]} on disk, {want} written"
    return None


class Mapper:
    """A separate process mapping the image; commands over a pipe."""

    def __init__(self, path, size):
        self.p = subprocess.Popen([sys.executable, __file__, path, str(size)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pid = self.p.pid

    def cmd(self, *words):
        self.p.stdin.write(" ".join(str(w) for w in words) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().strip()
        if not line.startswith("ok"):
            raise AssertionError(f"mapper {words}: {line}")
        return line

    def fill(self, off, length, val):
        return self.cmd("fill", off, length, val)

    def check(self, off, length, val):
        return self.cmd("check", off, length, val)

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


def _mapper_main(path, size):
    fd = os.open(path, os.O_RDWR)
    m = mmap.mmap(fd, size, mmap.MAP_SHARED)
    for line in sys.stdin:
        w = line.split()
        if not w:
            continue
        if w[0] == "fill":       # fill OFF LEN VAL
            off, length, val = int(w[1]), int(w[2]), int(w[3])
            for o in range(off, off + length, PAGE):
                m[o:o + PAGE] = bytes([page_byte(o // PAGE, val)]) * PAGE
            print("ok", flush=True)
        elif w[0] == "check":    # check OFF LEN VAL: through the mapping
            off, length, val = int(w[1]), int(w[2]), int(w[3])
            bad = next((o for o in range(off, off + length, PAGE)
                        if m[o] != page_byte(o // PAGE, val)), None)
            print("ok" if bad is None else f"bad page {bad // PAGE}", flush=True)
        elif w[0] == "churn":    # churn SECONDS LEN VAL: keep dirtying [0, LEN), page by page
            import time
            end, length, val = time.time() + float(w[1]), int(w[2]), int(w[3])
            o = 0
            while time.time() < end:      # a steady rate: 64 pages per 5 ms, <= 50 MB/s
                for _ in range(64):
                    m[o:o + PAGE] = bytes([page_byte(o // PAGE, val)]) * PAGE
                    o = (o + PAGE) % length
                time.sleep(0.005)
            for o in range(0, length, PAGE):   # leave every page with this value
                m[o:o + PAGE] = bytes([page_byte(o // PAGE, val)]) * PAGE
            print("ok", flush=True)
    m.close()


if __name__ == "__main__":
    _mapper_main(sys.argv[1], int(sys.argv[2]))
