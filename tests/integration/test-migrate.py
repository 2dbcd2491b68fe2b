#!/usr/bin/env python3
"""Theory of operation: live migration between two hosts of one simulated fabric, with real
QEMU (no guest kernel: the data a guest sees is tests/guest/test-migrate.sh's) and a real
three-member etcd. VM "a" on h1 has its RAM on a shared tag, a shared nvdimm tag and an image
on storage both hosts see. Every refusal happens before anything stops and changes nothing
(the VM runs on h1 with its claims, h2 holds nothing, etcd has no claim): private RAM, a
private DCD tag, a destination without the tags, a destination without brokerd, a
destination whose QEMU was not prepared, etcd unreachable. Every failure is injected between
two steps (TAGMEM_MIGRATE_HOLD stops the orchestrator there) and ends with one running VM and
one owner: the destination's QEMU killed before the send, and in the middle of it (the VM
goes on on h1, h2's provisional claims go); h2's brokerd killed -9 after the switch (the migration finishes once
it is back: the VM runs on h2, the claims are h2's in etcd, in h2's registry and none on h1);
the source's brokerd killed -9 in the middle of the way back (h2 to h1), with the same end;
the destination's brokerd killed -9 before the switch (its provisional claims were never its:
after the restart it holds nothing, and the VM stays on h1)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from etcdtest import STARTED, run_cluster, start_publisher  # noqa: E402
from harness import TAGMEM, check, wait_serving  # noqa: E402

if not os.environ.get("FMD") or not os.environ.get("CLUSTERD"):
    sys.exit("FMD and CLUSTERD must be set (ctest sets them)")
QEMU = shutil.which("qemu-system-x86_64")
if not QEMU:
    sys.exit("qemu-system-x86_64 is not installed: tests/deps.sh all installs it")

R = "a1a1a1a1-0001-4222-8333-444444444444"   # the VM's RAM: shared
N = "a1a1a1a1-0002-4222-8333-444444444444"   # an nvdimm: shared
I = "a1a1a1a1-0003-4222-8333-444444444444"   # an image on storage both hosts see
P = "a1a1a1a1-0004-4222-8333-444444444444"   # h1's private DCD allocation
N2 = "a1a1a1a1-0005-4222-8333-444444444444"  # shared, for the VM with private RAM
SHARED = tempfile.mkdtemp(prefix="tagmem-shared.")  # the storage both hosts see
BASE = [QEMU, "-accel", "tcg", "-machine", "pc,nvdimm=on", "-m", "64M,slots=4,maxmem=1G",
        "-smp", "1", "-display", "none", "-nodefaults"]


def qmp(path, cmd, **args):
    """One command on a QMP socket of the test's own (QEMU has one for brokerd, one for us)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    f = s.makefile("rw")
    f.readline()
    for msg in ({"execute": "qmp_capabilities"}, {"execute": cmd, "arguments": args}):
        f.write(json.dumps(msg) + "\n")
        f.flush()
        while True:
            r = json.loads(f.readline())
            if "return" in r or "error" in r:
                break
    s.close()
    return r.get("return", r)


def status(path):
    return qmp(path, "query-status")["status"]


class Env:
    def __init__(self, top, etcd, fab, hosts):
        self.top, self.etcd, self.fab = top, etcd, fab
        self.h1, self.h2, self.h3 = hosts

    def tagmem(self, host, *args, check_rc=True, env=None):
        e = dict(os.environ, TAGMEM_SOCKET=host.sock, TAGMEM_CLUSTER_SOCKET=host.csock,
                 TAGMEM_FABRIC=self.fab, **(env or {}))
        r = subprocess.run([TAGMEM, *args], capture_output=True, text=True, env=e, timeout=120)
        if check_rc and r.returncode:
            raise AssertionError(f"tagmem {' '.join(args)}: {r.stderr}")
        return r

    def qemu(self, name, args, *extra):
        """A QEMU with the tag arguments, brokerd's QMP socket and the test's."""
        bq, tq = os.path.join(self.top, f"{name}.qmp"), os.path.join(self.top, f"{name}-t.qmp")
        p = subprocess.Popen(BASE + args + list(extra) +
                             ["-qmp", f"unix:{bq},server=on,wait=off",
                              "-qmp", f"unix:{tq},server=on,wait=off"],
                             stdout=open(os.path.join(self.top, f"{name}.log"), "ab"),
                             stderr=subprocess.STDOUT)
        STARTED.append(p)  # stopped at the end, whatever happens
        for _ in range(200):
            if os.path.exists(tq):
                break
            check(p.poll() is None, f"QEMU {name} exited: see {name}.log")
            time.sleep(0.05)
        return p, bq, tq

    def claims(self, host):
        """{tag: (owner, incoming)} of what host's brokerd lists as claimed by VM a."""
        out = json.loads(self.tagmem(host, "--json", "list").stdout)
        return {t["tag"]: (t["owner"]["name"], t.get("incoming", False))
                for t in out if t.get("owner", {}).get("name") == "a"}

    def etcd_claims(self):
        r = subprocess.run(["etcdctl", "--endpoints", self.etcd.urls, "get", "--prefix",
                            "/tagmem/v1/claims/"], capture_output=True, text=True, check=True,
                           env=dict(os.environ, ETCDCTL_API="3"), timeout=10)
        lines = r.stdout.splitlines()
        return {k.rsplit("/", 1)[1]: json.loads(v)["host"] for k, v in zip(lines[::2], lines[1::2])}

    def migrate(self, vm, src, dst, src_qmp, dst_qmp, hold=None, to_socket=None):
        env = {"TAGMEM_MIGRATE_HOLD": hold} if hold else {}
        e = dict(os.environ, TAGMEM_SOCKET=src.sock, TAGMEM_CLUSTER_SOCKET=src.csock, **env)
        uri = f"unix:{self.top}/mig-{vm}-{dst.name}.sock"
        return subprocess.Popen([TAGMEM, "--json", "vm", "migrate", vm, "--to", dst.name,
                                 "--to-socket", to_socket or dst.sock, "--uri", uri,
                                 "--qmp", src_qmp, "--to-qmp", dst_qmp],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)

    def prepare(self, vm, src, dst, name):
        """migrate-args on dst, and the destination QEMU started with them."""
        out = self.tagmem(src, "vm", "migrate-args", vm, "--to", dst.name, "--to-socket",
                          dst.sock).stdout.split("\n")
        args = [a for a in out if a]
        check("-incoming" in args and "-S" in args, f"migrate-args: {args}")
        return self.qemu(name, args)


def wait_held(p, step):
    said = []
    for _ in range(600):
        said.append(p.stderr.readline())
        if f"held before {step}" in said[-1]:
            return
    raise AssertionError(f"the migration never held before {step}: {''.join(said)}")


def finish(p, want_ok, what):
    out, err = p.communicate(timeout=180)
    check((p.returncode == 0) == want_ok, f"{what}: exit {p.returncode}: {err} {out}")
    return json.loads(out) if want_ok else err


def unchanged(env, a_qmp, before_h1, what):
    check(status(a_qmp) == "running", f"{what}: the VM does not run on h1")
    check(env.claims(env.h1) == before_h1, f"{what}: h1's claims changed: {env.claims(env.h1)}")
    check(env.claims(env.h2) == {}, f"{what}: h2 holds {env.claims(env.h2)}")
    check(env.etcd_claims() == {}, f"{what}: etcd has claims {env.etcd_claims()}")
    print(f"refused, nothing changed: {what}")


def one_owner(env, src, dst, src_qemu, dst_qmp):
    """After a migration src -> dst: one VM runs (dst's), and dst alone owns its tags, in its
    registry and in etcd."""
    check(status(dst_qmp) == "running", f"the VM does not run on {dst.name}")
    check(src_qemu.wait(timeout=10) is not None, f"{src.name}'s QEMU did not quit")
    check(env.claims(src) == {}, f"{src.name} still holds {env.claims(src)}")
    check(env.claims(dst) == {R: ("a", False), N: ("a", False), I: ("a", False)},
          f"{dst.name}'s claims: {env.claims(dst)}")
    check(env.etcd_claims() == {R: dst.name, N: dst.name, I: dst.name},
          f"etcd: {env.etcd_claims()}")


def body(top, etcd, fab, hosts):
    env = Env(top, etcd, fab, hosts)
    h1, h2, h3 = hosts
    for h in hosts:
        start_publisher(top, etcd.urls, h, 5)
    env.tagmem(h1, "fm", "add", "--size", "64M", "--tag", R, "--shared", "--host", "h1",
               "--host", "h2")
    env.tagmem(h1, "fm", "add", "--size", "16M", "--tag", N, "--shared", "--host", "h1",
               "--host", "h2")
    env.tagmem(h1, "fm", "add", "--size", "16M", "--tag", N2, "--shared", "--host", "h1",
               "--host", "h2")
    env.tagmem(h1, "fm", "add", "--size", "16M", "--tag", P, "--host", "h1")
    img = os.path.join(SHARED, "i.img")
    env.tagmem(h1, "image", "create", img, "--size", "16M", "--tag", I)
    env.tagmem(h2, "image", "adopt", img, "--tag", I)
    for h, tags in ((h1, (R, N, N2, P, I)), (h2, (R, N, N2, I))):
        for t in tags:
            for _ in range(100):
                if env.tagmem(h, "lookup", t, check_rc=False).returncode == 0:
                    break
                time.sleep(0.05)
    args = [a for a in env.tagmem(h1, "qemu-args", N, I, "--vm", "a", "--ram", R,
                                  "--no-channel").stdout.split("\n") if a]
    a, a_qmp_b, a_qmp = env.qemu("a", args)
    check(status(a_qmp) == "running", "VM a does not run")
    before = env.claims(h1)
    check(set(before) == {R, N, I}, f"h1's claims: {before}")
    # every directory record is published before the checks read them
    time.sleep(1)

    # ---- refusals, each before anything stops ----
    p_args = [a for a in env.tagmem(h1, "qemu-args", N2, "--vm", "p", "--no-channel")
              .stdout.split("\n") if a]
    pq, pq_b, pq_t = env.qemu("p", p_args)
    err = finish(env.migrate("p", h1, h2, pq_b, "/nonexistent.qmp"), False, "private RAM")
    check("private memory" in err and "share=off" in err, f"private RAM: {err}")
    check(status(pq_t) == "running", "the refused VM with private RAM stopped")
    env.tagmem(h1, "qemu-args", P, "--vm", "q", "--no-channel")
    err = finish(env.migrate("q", h1, h2, pq_b, "/nonexistent.qmp"), False, "private tag")
    check("only this host has" in err, f"private DCD tag: {err}")
    print("refused: private RAM, a private DCD tag")
    before = env.claims(h1)
    err = finish(env.migrate("a", h1, h3, a_qmp_b, "/nonexistent.qmp"), False, "no capacity")
    check("has no tag" in err and "h3" in err, f"destination without the tags: {err}")
    unchanged(env, a_qmp, before, "a destination without the tags (h3)")
    err = finish(env.migrate("a", h1, h2, a_qmp_b, "/x.qmp", to_socket="/nonexistent.sock"),
                 False, "no brokerd")
    check("cannot reach the destination's brokerd" in err, f"no brokerd: {err}")
    unchanged(env, a_qmp, before, "a destination without brokerd")
    err = finish(env.migrate("a", h1, h2, a_qmp_b, "/x.qmp"), False, "not prepared")
    check("not migrating in here" in err, f"not prepared: {err}")
    unchanged(env, a_qmp, before, "a destination whose QEMU was not prepared")
    dead = type("H", (), {"name": "h1", "sock": h1.sock,
                          "csock": os.path.join(top, "clusterd-dead.sock")})()
    STARTED.append(subprocess.Popen([os.environ["CLUSTERD"], "--etcd", "http://127.0.0.1:9",
                                     "--host-id", "h1", "--socket", h1.sock, "--listen",
                                     dead.csock],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for _ in range(100):
        if os.path.exists(dead.csock):
            break
        time.sleep(0.05)
    e = dict(os.environ, TAGMEM_SOCKET=h1.sock, TAGMEM_CLUSTER_SOCKET=dead.csock)
    r = subprocess.run([TAGMEM, "vm", "migrate", "a", "--to", "h2", "--to-socket", h2.sock,
                        "--uri", f"unix:{top}/x.sock", "--qmp", a_qmp_b, "--to-qmp", "/x.qmp"],
                       capture_output=True, text=True, env=e, timeout=120)
    check(r.returncode != 0 and "etcd" in r.stderr, f"etcd unreachable: {r.stderr}")
    unchanged(env, a_qmp, before, "etcd unreachable")

    # ---- the destination's QEMU killed before the send: the VM goes on on h1 ----
    d, d_b, d_t = env.prepare("a", h1, h2, "a-h2-killed")
    check(all(inc for _, inc in env.claims(h2).values()), "h2's claims are not provisional")
    p = env.migrate("a", h1, h2, a_qmp_b, d_b, hold="send")
    wait_held(p, "send")
    d.kill()
    d.wait()
    p.send_signal(signal.SIGCONT)
    err = finish(p, False, "destination QEMU killed")
    for _ in range(100):
        if not env.claims(h2):
            break
        time.sleep(0.05)
    unchanged(env, a_qmp, before, "the destination's QEMU killed before the send")

    # ---- the destination's QEMU killed in the middle of the send: the VM goes on on h1 ----
    # (the test's own monitor slows QEMU's stream to 20 KB/s: what it sends besides the shared
    # RAM, its ROMs, takes seconds, and the kill lands while it is under way)
    qmp(a_qmp, "migrate-set-parameters", **{"max-bandwidth": 20000})
    d, d_b, d_t = env.prepare("a", h1, h2, "a-h2-mid")
    p = env.migrate("a", h1, h2, a_qmp_b, d_b)
    for _ in range(1000):
        mig = qmp(a_qmp, "query-migrate")
        if mig.get("status") == "active" and mig.get("ram", {}).get("transferred", 0) > 0:
            break
        time.sleep(0.01)
    check(mig.get("status") == "active", f"the send never got under way: {mig}")
    d.kill()
    d.wait()
    err = finish(p, False, "destination QEMU killed mid-send")
    check("migration" in err, f"killed mid-send: {err}")
    qmp(a_qmp, "migrate-set-parameters", **{"max-bandwidth": 1 << 40})
    for _ in range(100):
        if not env.claims(h2):
            break
        time.sleep(0.05)
    unchanged(env, a_qmp, before, f"the destination's QEMU killed mid-send "
              f"({mig['ram']['transferred']} bytes sent)")

    # ---- h2's brokerd killed -9 while it holds the provisional claims: they were never its ----
    d, d_b, d_t = env.prepare("a", h1, h2, "a-h2-restarted")
    h2.kill9()
    h2.start()
    check(env.claims(h2) == {}, f"h2's restart made its provisional claims real: {env.claims(h2)}")
    err = finish(env.migrate("a", h1, h2, a_qmp_b, d_b), False, "destination restarted")
    check("not migrating in here" in err, f"destination restarted: {err}")
    d.kill()
    d.wait()
    unchanged(env, a_qmp, before, "h2's brokerd killed -9 before the switch")

    # ---- h2's brokerd killed -9 after the switch: the migration finishes when it is back ----
    d, d_b, d_t = env.prepare("a", h1, h2, "a-h2")
    p = env.migrate("a", h1, h2, a_qmp_b, d_b, hold="finish")
    wait_held(p, "finish")
    check(status(d_t) == "paused", "the destination runs before the claims are its host's")
    check(env.etcd_claims() == {R: "h2", N: "h2", I: "h2"}, f"etcd: {env.etcd_claims()}")
    h2.kill9()
    h2.start()
    p.send_signal(signal.SIGCONT)
    res = finish(p, True, "migration with h2's brokerd killed")
    one_owner(env, h1, h2, a, d_t)
    print(f"h1 -> h2 with h2's brokerd killed after the switch: the VM runs on h2; "
          f"{res['transferred_bytes']} bytes sent, QEMU's downtime {res['qemu_downtime_ms']} "
          f"ms, paused {res['pause_ms']} ms")

    # ---- back to h1, the source's brokerd (h2) killed -9 before the switch ----
    b, b_b, b_t = env.prepare("a", h2, h1, "a-h1")
    p = env.migrate("a", h2, h1, d_b, b_b, hold="switch")
    wait_held(p, "switch")
    h2.kill9()
    h2.start()
    p.send_signal(signal.SIGCONT)
    finish(p, True, "migration back with the source's brokerd killed")
    one_owner(env, h2, h1, d, b_t)
    print("h2 -> h1 with the source's brokerd killed before the switch: the VM runs on h1")

    # the VM stops on h1: its claims, there and cluster-wide, are released like any others
    qmp(b_t, "quit")
    b.wait(timeout=10)
    for t in (R, N, I):
        env.tagmem(h1, "release", t, "--cluster-exclusive")
    check(env.claims(h1) == {} and env.etcd_claims() == {},
          f"released: h1 {env.claims(h1)}, etcd {env.etcd_claims()}")
    print("the VM stopped on h1: its claims there and in etcd released")


try:
    run_cluster(["h1", "h2", "h3"], body, "live migration", extra=("--image-dir", SHARED))
finally:
    shutil.rmtree(SHARED, ignore_errors=True)
