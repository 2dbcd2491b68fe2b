#!/usr/bin/env python3
"""Theory of operation: libvirt domains get tagged capacity the way hand-made QEMU command
lines do, and claims follow the domain's life. A real libvirtd (Debian's, run privately: its
/etc/libvirt, /run/libvirt and /var/lib/libvirt are this test's own, bind-mounted in a mount
namespace) has tagmem's qemu hook. `tagmem libvirt-xml` prints the XML for an image and a
simulated DCD tag; merged into a minimal TCG domain by a program (as a management tool
would), `virsh create` starts it: the hook claimed both tags for the domain before QEMU
started, and QEMU maps the image. A second domain naming the same image is refused at start
with brokerd's reason and does not run. `virsh destroy` releases the claims (the hook at
"release end"), and the domain starts again. Metadata that does not read as libvirt-xml
writes it refuses a start too. The figures: the hook's own time at a start (median of 7),
against the whole `virsh create`."""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(__file__))
from harness import TAGMEM, Broker, check  # noqa: E402

LIBVIRTD = shutil.which("libvirtd") or "/usr/sbin/libvirtd"
VIRSH = shutil.which("virsh")
QEMU = shutil.which("qemu-system-x86_64")
if not os.access(LIBVIRTD, os.X_OK) or not VIRSH or not QEMU:
    sys.exit("libvirtd, virsh and qemu-system-x86_64 are needed: tests/deps.sh all installs them")
if os.getuid() != 0:
    print("SKIP: a private libvirtd needs root (a mount namespace over /etc/libvirt)")
    sys.exit(77)

IMG = "11b0a001-1111-4222-8333-444444444444"
DCD = "11b0a002-1111-4222-8333-444444444444"

DOMAIN = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <maxMemory slots='8' unit='GiB'>8</maxMemory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <cpu><numa><cell id='0' cpus='0' memory='128' unit='MiB'/></numa></cpu>
  <devices><emulator>{qemu}</emulator></devices>
</domain>"""


def merge(name, pieces):
    """The domain with libvirt-xml's pieces merged in, as a management tool would."""
    dom = ET.fromstring(DOMAIN.format(name=name, qemu=QEMU))
    for child in ET.fromstring(pieces):
        mine = dom.find(child.tag)
        if mine is not None and child.tag in ("devices", "os", "metadata"):
            mine.extend(list(child))
        else:
            dom.append(child)
    return ET.tostring(dom, encoding="unicode")


class Libvirtd:
    def __init__(self, work, hook):
        self.work = work
        with open(f"{work}/hook", "w") as f:
            f.write(hook)
        self.log = open(f"{work}/libvirtd.log", "w")
        self.proc = subprocess.Popen(
            [os.path.join(os.path.dirname(__file__), "private-libvirtd.sh"), work, f"{work}/hook"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.uri = f"qemu:///system?socket={work}/run/libvirt-sock"
        for _ in range(200):
            if self.virsh("version").returncode == 0:
                return
            check(self.proc.poll() is None, f"libvirtd exited: {self.log_text()}")
            time.sleep(0.05)
        raise AssertionError(f"libvirtd never answered: {self.log_text()}")

    def virsh(self, *args):
        return subprocess.run([VIRSH, "-c", self.uri, *args], capture_output=True, text=True,
                              timeout=120)

    def log_text(self):
        with open(f"{self.work}/libvirtd.log", errors="replace") as f:
            return f.read()[-3000:]

    def stop(self):
        for line in self.virsh("list", "--name").stdout.split():
            self.virsh("destroy", line)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def tagmem(b, *args, ok=True):
    r = subprocess.run([TAGMEM, *args], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, TAGMEM_SOCKET=b.sock))
    if ok:
        check(r.returncode == 0, f"tagmem {' '.join(args)}: {r.stderr}")
    return r


def owner(b, tag):
    import json
    t = json.loads(tagmem(b, "--json", "show", tag).stdout)
    return t["state"], (t.get("owner") or {}).get("name")


def main():
    work = tempfile.mkdtemp(prefix="tagmem-libvirt.")
    b = Broker("--guest-dir", os.path.join(work, "guests"))
    lv = None
    try:
        b.start()
        img = os.path.join(b.state, "images", "lv.img")
        tagmem(b, "image", "create", img, "--size", "64M", "--tag", IMG)
        tagmem(b, "fm", "add", "--size", "128M", "--tag", DCD)
        for _ in range(100):
            if tagmem(b, "lookup", DCD, ok=False).returncode == 0:
                break
            time.sleep(0.05)

        pieces = tagmem(b, "libvirt-xml", IMG, DCD, "--vm", "lv1").stdout
        check(owner(b, IMG) == ("claimed", "lv1") and owner(b, DCD) == ("claimed", "lv1"),
              "libvirt-xml claims the tags for the domain, as qemu-args does")
        root = ET.fromstring(pieces)
        mems = root.findall("devices/memory")
        check(len(mems) == 2 and mems[0].find("source/path").text == img and
              mems[0].find("target/label/size").text == "128" and
              mems[1].find("target/label") is None, f"the nvdimm devices: {pieces}")
        check(root.find("sysinfo/oemStrings/entry").text == f"tagmem.nvdimm.1={DCD}" and
              root.find("os/smbios").get("mode") == "sysinfo", "the label-less tag's SMBIOS name")
        check(root.find("devices/channel/target").get("name") == "org.tagmem.guest.0",
              "the guest channel")
        print("libvirt-xml: two nvdimms (the image labelled), the DCD tag's oemString, the "
              "channel, tagmem's metadata")
        # the domain is defined now and started later: nothing holds the tags meanwhile
        tagmem(b, "release", IMG)
        tagmem(b, "release", DCD)

        # the hook's input is whatever a domain's author wrote: read bounded, believed only
        # in tagmem's own element, and an operation not its own always passes
        def hook_by_hand(op, sub, xml):
            return subprocess.run([TAGMEM, "libvirt-hook", "lvx", op, sub, "-"], input=xml,
                                  capture_output=True, text=True, timeout=30,
                                  env=dict(os.environ, TAGMEM_SOCKET=b.sock))
        ns = "https://tagmem.io/libvirt/1"
        r = hook_by_hand("prepare", "begin", f"<domain><description>{ns}</description></domain>")
        check(r.returncode == 0 and owner(b, IMG)[0] == "ready",
              f"the address in a description is not tagmem metadata: {r.stderr}")
        for bad in (f"<metadata xmlns:t='{ns}'><t:vm><t:tag slot='-1'>{IMG}</t:tag></t:vm>",
                    f"<metadata xmlns:t='{ns}'><t:vm><t:tag slot='0'>{IMG}x</t:tag></t:vm>",
                    f"<metadata xmlns='{ns}'><vm><tag slot='0'>{IMG}</tag></vm></metadata>",
                    "<domain>" + "a" * (5 << 20) + "</domain>"):
            r = hook_by_hand("prepare", "begin", bad)
            check(r.returncode != 0 and owner(b, IMG)[0] == "ready",
                  f"bad metadata ({bad[:60]}…) let a start through: {r.returncode} {r.stderr}")
        r = hook_by_hand("started", "begin", "x" * (5 << 20))
        check(r.returncode == 0, f"an operation not the hook's failed: {r.stderr}")
        print("the hook: metadata that does not read, or 5 MiB of XML, refuses a start; "
              "other operations pass")

        hook = (f"#!/bin/sh\nexec env TAGMEM_SOCKET={b.sock} {TAGMEM} libvirt-hook \"$@\"\n")
        lv = Libvirtd(work, hook)
        doms = {}
        for name in ("lv1", "lv2", "lvbad"):
            doms[name] = os.path.join(work, f"{name}.xml")
            text = merge(name, pieces)
            if name == "lvbad":  # metadata that is not what libvirt-xml writes
                text = text.replace(f">{DCD}<", ">not-a-tag<")
            with open(doms[name], "w") as f:
                f.write(text)

        t0 = time.monotonic()
        r = lv.virsh("create", doms["lv1"])
        create_ms = (time.monotonic() - t0) * 1000
        check(r.returncode == 0, f"virsh create lv1: {r.stderr}\n{lv.log_text()}")
        check(owner(b, IMG) == ("claimed", "lv1") and owner(b, DCD) == ("claimed", "lv1"),
              f"the hook did not claim the tags for lv1: {owner(b, IMG)} {owner(b, DCD)}")
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        check(any("guest=lv1" in line and img in line for line in ps.splitlines()),
              "lv1's QEMU does not map the image")
        print(f"virsh create lv1: the hook claimed both tags, QEMU maps the image "
              f"({create_ms:.0f} ms)")

        r = lv.virsh("create", doms["lv2"])
        check(r.returncode != 0 and "claimed" in r.stderr,
              f"a second domain naming a claimed tag: exit {r.returncode}: {r.stderr}")
        check("lv2" not in lv.virsh("list", "--name").stdout.split(), "lv2 runs")
        check(owner(b, IMG) == ("claimed", "lv1"), "lv2's refused start took lv1's claim")
        why = r.stderr.strip().split("unexpected exit status 1: ")[-1].splitlines()[0]
        print(f"virsh create lv2 (the same image): refused: {why[:200]}")

        r = lv.virsh("destroy", "lv1")
        check(r.returncode == 0, f"virsh destroy: {r.stderr}")
        for _ in range(100):
            if owner(b, IMG)[0] == "ready" and owner(b, DCD)[0] == "ready":
                break
            time.sleep(0.05)
        check(owner(b, IMG)[0] == "ready" and owner(b, DCD)[0] == "ready",
              f"virsh destroy left the claims: {owner(b, IMG)} {owner(b, DCD)}")
        print("virsh destroy lv1: both tags released")

        r = lv.virsh("create", doms["lvbad"])
        check(r.returncode != 0 and "metadata" in r.stderr,
              f"a start with unreadable metadata: exit {r.returncode}: {r.stderr}")
        print("a domain whose tagmem metadata does not read: refused")

        # the figures: the whole start, and the hook's own part of it (as libvirt runs it)
        with open(doms["lv1"]) as f:
            xml = f.read()
        hook_ms, start_ms = [], []
        for _ in range(7):
            t0 = time.monotonic()
            r = lv.virsh("create", doms["lv1"])
            start_ms.append((time.monotonic() - t0) * 1000)
            check(r.returncode == 0, f"virsh create lv1 again: {r.stderr}")
            lv.virsh("destroy", "lv1")
            t0 = time.monotonic()
            r = subprocess.run([f"{work}/etc/hooks/qemu.d/tagmem", "lv1", "prepare", "begin", "-"],
                               input=xml, capture_output=True, text=True, timeout=30)
            hook_ms.append((time.monotonic() - t0) * 1000)
            check(r.returncode == 0, f"the hook by hand: {r.stderr}")
            subprocess.run([f"{work}/etc/hooks/qemu.d/tagmem", "lv1", "release", "end", "-"],
                           input=xml, capture_output=True, text=True, timeout=30)
        print(f"figures: virsh create (hook included) median {statistics.median(start_ms):.0f} ms;"
              f" the hook's prepare median {statistics.median(hook_ms):.1f} ms"
              f" ({100 * statistics.median(hook_ms) / statistics.median(start_ms):.1f}% of it)")
    except BaseException:
        sys.stderr.write("--- brokerd log ---\n" + b.log_text())
        if lv:
            sys.stderr.write("--- libvirtd log ---\n" + lv.log_text())
        raise
    finally:
        if lv:
            lv.stop()
        b.cleanup()
        shutil.rmtree(work, ignore_errors=True)


main()
