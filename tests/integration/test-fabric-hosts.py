#!/usr/bin/env python3
"""Theory of operation: several hosts share one simulated fabric (tagmem-fmd). Three brokerd
instances, each with its own state, socket and sysfs tree, attach to one manager by host id.
A shared tag is on every host given it, under each host's own device name, and is the same
bytes on all of them (written on one, read on the others); a host added later (DC Add
Reference) sees them too; a release from one host leaves the others' mapping alone, and one
still claimed there waits for the claim. The manager's state survives kill -9; a host that
was down when its tag was released loses it when it comes back, and a host keeps serving
what it has while the manager is away. Bad requests to the manager change nothing."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import TAGMEM, Broker, Client, check, wait_serving  # noqa: E402

FMD = os.environ.get("FMD")
if not FMD:
    sys.exit("FMD must be set (ctest sets it)")

S = "5a5a5a5a-1111-4222-8333-444444444444"    # shared by h1 and h2, later h3
S0 = "5a5a5a5a-0000-4222-8333-444444444444"   # h2 only: so that h2 numbers S differently
P = "5a5a5a5a-2222-4222-8333-444444444444"    # private to h1


class Fabric:
    def __init__(self, top):
        self.dir = os.path.join(top, "fabric")
        self.sock = os.path.join(self.dir, "fabric.sock")
        self.log = open(os.path.join(top, "fmd.log"), "ab")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([FMD, "--dir", self.dir, "--region-size", "16G"],
                                     stdout=self.log, stderr=self.log)
        wait_serving(self.proc, self.sock, "tagmem-fmd")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def tagmem(fab, *args):
    r = subprocess.run([TAGMEM, *args], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, TAGMEM_FABRIC=fab.dir))
    return r.returncode, r.stdout, r.stderr


def fm(fab, *args):
    code, out, err = tagmem(fab, "fm", *args)
    check(code == 0, f"tagmem fm {' '.join(args)}: exit {code}: {err}")
    return out


def wait_for(host, tag, want_state=None, secs=5):
    """The host's lookup of tag once it answers (with that state); None if it never does."""
    deadline = time.time() + secs
    while time.time() < deadline:
        m = Client(host.sock).call("lookup", tag=tag)
        if "result" in m and (want_state is None or m["result"]["state"] == want_state):
            return m["result"]
        time.sleep(0.05)
    return None


def wait_gone(host, tag, secs=5):
    deadline = time.time() + secs
    while time.time() < deadline:
        if "error" in Client(host.sock).call("lookup", tag=tag):
            return True
        time.sleep(0.05)
    return False


def pwrite(path, off, data):
    fd = os.open(path, os.O_WRONLY)
    check(os.pwrite(fd, data, off) == len(data), f"wrote all of it to {path}")
    os.fsync(fd)
    os.close(fd)


def pread(path, off, n):
    fd = os.open(path, os.O_RDONLY)
    data = os.pread(fd, n, off)
    os.close(fd)
    return data


def body(top, fab, hosts):
    h1, h2, h3 = hosts
    fm(fab, "add", "--size", "4M", "--tag", S0, "--shared", "--host", "h2")
    check(wait_for(h2, S0, "ready"), "h2 has S0")
    out = fm(fab, "add", "--size", "8M", "--tag", S, "--shared", "--host", "h1", "--host", "h2")
    check(S in out and "h1,h2" in out, f"fm add says what and where: {out}")
    fm(fab, "add", "--size", "2M", "--tag", P, "--host", "h1")
    a, b = wait_for(h1, S, "ready"), wait_for(h2, S, "ready")
    check(a and b, "the shared tag reached both hosts")
    check(os.path.basename(a["path"]) != os.path.basename(b["path"]),
          f"each host names its device itself: {a['path']} {b['path']}")
    check(wait_for(h1, P, "ready") and wait_gone(h2, P, 0.5), "private capacity on h1 only")
    check(wait_gone(h3, S, 0.5), "h3 was not given S")

    # the same bytes: written through h1's device, read through h2's, at the same offsets
    pattern = os.urandom(4096)
    for off in (0, 3 << 20, (8 << 20) - 4096):
        pwrite(a["path"], off, pattern)
        got = pread(b["path"], off, 4096)
        check(len(got) == 4096 and got == pattern, f"h2 reads at {off} what h1 wrote")
    check(os.path.getsize(a["path"]) == os.path.getsize(b["path"]) == 8 << 20, "sizes agree")

    # DC Add Reference: h3 maps it too, and sees what is there
    fm(fab, "add-host", "--tag", S, "--host", "h3")
    c = wait_for(h3, S, "ready")
    check(c and pread(c["path"], 3 << 20, 4096) == pattern, "h3 sees the bytes h1 wrote")
    listed = json.loads(tagmem(fab, "--json", "fm", "list")[1])
    tags = {t["tag"]: t for t in listed["tags"]}
    check(tags[S]["hosts"] == ["h1", "h2", "h3"] and tags[S]["shared"], f"List Tags: {tags[S]}")
    check(tags[P]["hosts"] == ["h1"] and not tags[P]["shared"], "the private tag listed")

    # a release from h1 leaves h2 and h3 alone; claimed on h1, it waits for the claim
    check("result" in Client(h1.sock).call("claim", tag=S), "claim S on h1")
    fm(fab, "release", "--tag", S, "--host", "h1")
    check(wait_for(h1, S, "release_pending"), "h1's claim holds the release")
    check(wait_for(h2, S, "ready") and wait_for(h3, S, "ready"), "others keep S")
    check("result" in Client(h1.sock).call("release", tag=S), "h1 releases its claim")
    check(wait_gone(h1, S), "S left h1 once its claim went")
    check(pread(b["path"], 0, 4096) == pattern, "h2's bytes are intact after h1 let go")

    # this host's own fm ops point at the shared manager
    m = Client(h1.sock).call("fm_add", size=2 << 20)
    check(m.get("error", {}).get("code") == "unsupported" and "--fabric" in
          m["error"]["message"], f"fm_add on a fabric host says where to go: {m}")

    # bad requests change nothing, and the manager stays up
    k = Client(fab.sock)
    for req, code in (({"op": "fm_add", "size": 3}, "invalid_argument"),
                      ({"op": "fm_add", "size": 2 << 20, "hosts": ["h1", "h2"]}, "invalid_argument"),
                      ({"op": "fm_add", "size": 2 << 20, "hosts": ["../x"]}, "invalid_argument"),
                      ({"op": "fm_add", "size": 2 << 20, "tag": S, "host": "h1", "shared": True},
                       "exists"),
                      ({"op": "fm_add", "size": 1 << 40, "host": "h1"}, "no_space"),
                      ({"op": "fm_release", "tag": S, "host": "h9"}, "not_found"),
                      ({"op": "fm_add_reference", "tag": P, "host": "h2"}, "invalid_argument"),
                      ({"op": "attach", "host": ""}, "invalid_argument"),
                      ({"op": "nope"}, "unknown_op")):
        m = k.call(req.pop("op"), **req)
        check(m.get("error", {}).get("code") == code, f"{req}: {m}")
    k.send_raw(b"{not json\n")
    check(k.read_msg()["error"]["code"] == "parse_error", "garbage is a parse_error")
    after = json.loads(tagmem(fab, "--json", "fm", "list")[1])
    check({t["tag"] for t in after["tags"]} == {S0, S, P}, "refusals changed nothing")

    # kill -9 of the manager: hosts keep what they have; what it acknowledged survives
    fab.kill9()
    check(wait_for(h2, S, "ready"), "h2 serves S while the manager is away")
    code, _, err = tagmem(fab, "fm", "add", "--size", "2M", "--host", "h1")
    check(code == 3 and "fabric manager" in err, f"unreachable manager: exit 3: {err}")
    # what a crash mid-add would leave: bytes and a half-written hosts file of no tag
    stray = "5a5a5a5a-9999-4222-8333-444444444444"
    open(os.path.join(fab.dir, "bytes", stray), "w").close()
    open(os.path.join(fab.dir, "refs", "." + stray + ".new"), "w").close()
    fab.start()
    check(not os.path.exists(os.path.join(fab.dir, "bytes", stray)), "stray bytes removed")
    check(not os.listdir(os.path.join(fab.dir, "refs")) or
          all(not n.startswith(".") for n in os.listdir(os.path.join(fab.dir, "refs"))),
          "a torn hosts file removed")
    again = json.loads(tagmem(fab, "--json", "fm", "list")[1])
    tags = {t["tag"]: t for t in again["tags"]}
    check(tags[S]["hosts"] == ["h2", "h3"], f"references survived kill -9: {tags[S]}")
    T = "5a5a5a5a-3333-4222-8333-444444444444"
    fm(fab, "add", "--size", "2M", "--tag", T, "--host", "h1")
    check(wait_for(h1, T, "ready"), "h1 reattached and hears the restarted manager")

    # a host down while its tag is released loses it when it comes back, keeps the rest
    h3.kill9()
    fm(fab, "release", "--tag", S, "--host", "h3")
    h3.start()
    check(wait_gone(h3, S), "h3 dropped the tag released while it was down")
    check(wait_for(h2, S, "ready"), "h2 still has S")
    check(pread(b["path"], (8 << 20) - 4096, 4096) == pattern, "and its bytes")

    # the last host gives it back: the capacity and its bytes are freed
    fm(fab, "release", "--tag", S)
    check(wait_gone(h2, S), "released from every host")
    check(not os.path.exists(os.path.join(fab.dir, "bytes", S)), "its memory returned")


def main():
    top = tempfile.mkdtemp(prefix="tagmem-fabric.")
    fab = Fabric(top)
    hosts = []
    try:
        fab.start()
        for h in ("h1", "h2", "h3"):
            b = Broker("--fabric", fab.dir, "--host-id", h, "--guest-dir", "none")
            hosts.append(b)
            b.start()
        body(top, fab, hosts)
    except BaseException:
        for i, b in enumerate(hosts):
            sys.stderr.write(f"--- h{i + 1} log ---\n" + b.log_text())
        with open(os.path.join(top, "fmd.log"), errors="replace") as f:
            sys.stderr.write("--- tagmem-fmd log ---\n" + f.read()[-4000:])
        raise
    finally:
        for b in hosts:
            b.cleanup()
        if fab.proc and fab.proc.poll() is None:
            fab.proc.kill()
        subprocess.run(["rm", "-rf", top])
    print("fabric-hosts: ok")


main()
