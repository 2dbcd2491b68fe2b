#!/usr/bin/env python3
"""Theory of operation: brokerd's metrics, read by a real node_exporter. brokerd keeps a
Prometheus text file (--metrics-file) current every --metrics-interval; after claims, image
flushes, an eviction and refused requests, the file says so (tags by state and kind, claims,
the flush latency histogram, evictions by reason and chooser, refusals by error code, the
image's page cache and budget). The file is replaced whole: a reader never sees half of one.
Debian's node_exporter, with only its textfile collector, serves every tagmem metric and
reports no scrape error. A metrics file in a directory that does not exist stops brokerd at
start with a message that says so."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import TAGMEM, Broker, check  # noqa: E402

EXPORTER = shutil.which("prometheus-node-exporter")
if not EXPORTER:
    sys.exit("prometheus-node-exporter is not installed: tests/deps.sh all installs it")

D = "d0d0d0d0-1111-4222-8333-444444444444"   # DCD capacity, claimed
IMG = "d0d0d0d0-2222-4222-8333-444444444444"  # an image: flushed, evicted


def parse(text):
    """{(name, labels): value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, value = line.rsplit(" ", 1)
        out[key] = float(value)
    return out


def tagmem(b, *args):
    r = subprocess.run([TAGMEM, *args], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, TAGMEM_SOCKET=b.sock))
    return r


def main():
    # a directory that is not there: brokerd says so and does not start
    bad = Broker("--metrics-file", "/nonexistent-dir/tagmem.prom")
    try:
        bad.proc = subprocess.Popen(
            [os.environ["BROKERD"], "--socket", bad.sock, "--state-dir", bad.state,
             "--sim-root", bad.sim, "--metrics-file", "/nonexistent-dir/tagmem.prom"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _, err = bad.proc.communicate(timeout=10)
        check(bad.proc.returncode != 0 and "metrics" in err and "directory" in err,
              f"a metrics file in a missing directory: exit {bad.proc.returncode}: {err}")
    finally:
        bad.cleanup()
    print("refused: a metrics file in a directory that does not exist")

    prom_dir = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"tagmem-metrics.{os.getpid()}")
    os.makedirs(prom_dir)
    prom = os.path.join(prom_dir, "tagmem.prom")
    b = Broker("--metrics-file", prom, "--metrics-interval", "100", "--guest-dir", "none")
    exporter = None
    try:
        b.start()
        check(tagmem(b, "fm", "add", "--size", "2M", "--tag", D).returncode == 0, "fm add")
        for _ in range(100):
            if tagmem(b, "lookup", D).returncode == 0:
                break
            time.sleep(0.05)
        check(tagmem(b, "claim", D, "--name", "m").returncode == 0, "claim")
        img = os.path.join(b.state, "images", "m.img")
        check(tagmem(b, "image", "create", img, "--size", "16M", "--tag", IMG).returncode == 0,
              "image create")
        with open(img, "r+b") as f:
            for i in range(3):
                f.seek(i << 20)
                f.write(os.urandom(1 << 20))
                f.flush()
                check(tagmem(b, "flush", IMG).returncode == 0, "flush")
        check(tagmem(b, "evict", IMG).returncode == 0, "evict")
        check(tagmem(b, "claim", D, "--name", "other").returncode != 0, "a busy claim refused")
        check(tagmem(b, "show", "d0d0d0d0-3333-4222-8333-444444444444").returncode != 0,
              "an unknown tag refused")

        want = {
            'tagmem_up': 1,
            'tagmem_claims': 1,
            'tagmem_tags{state="claimed",kind="dcd"}': 1,
            'tagmem_tags{state="ready",kind="image"}': 1,
            'tagmem_tag_bytes{kind="dcd"}': 2 << 20,
            'tagmem_flush_seconds_count': 3,
            'tagmem_flush_errors_total': 0,
            'tagmem_evictions_total{reason="request",chosen_by="host"}': 1,
            'tagmem_requests_refused_total{code="busy"}': 1,
            'tagmem_requests_refused_total{code="not_found"}': 1,
            f'tagmem_image_lost_writes{{tag="{IMG}"}}': 0,
            f'tagmem_image_budget_bytes{{tag="{IMG}",budget="dirty"}}': 64 << 20,
        }
        got = {}
        for _ in range(100):
            with open(prom) as f:
                got = parse(f.read())
            if all(got.get(k) == v for k, v in want.items()):
                break
            time.sleep(0.05)
        for k, v in want.items():
            check(got.get(k) == v, f"{k}: {got.get(k)}, not {v}")
        check(got['tagmem_flush_seconds_bucket{le="+Inf"}'] == 3, "the histogram's +Inf bucket")
        check(f'tagmem_image_cached_bytes{{tag="{IMG}"}}' in got, "the image's page cache")
        print(f"the file says what happened: {len(got)} samples")

        # replaced whole: every read of it, while brokerd rewrites it ten times a second, is
        # a whole exposition (it ends with the last family's sample)
        whole = 0
        t0 = time.time()
        while time.time() - t0 < 3:  # the torn moment is short: many reads, many rewrites
            with open(prom) as f:
                text = f.read()
            check(text.rstrip("\n").split("\n")[-1].startswith(
                "tagmem_metrics_write_failures_total "), f"a read saw half a file: {text[-200:]}")
            whole += 1
        print(f"{whole} reads while it was rewritten: each one whole")

        # node_exporter's textfile collector serves every metric
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        exporter = subprocess.Popen(
            [EXPORTER, "--collector.disable-defaults", "--collector.textfile",
             f"--collector.textfile.directory={prom_dir}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        served = ""
        for _ in range(100):
            try:
                served = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                                timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.05)
        scraped = parse(served)
        check(scraped.get("node_textfile_scrape_error") == 0,
              f"node_exporter could not read the file: {served[-500:]}")
        families = {k.split("{")[0] for k in got}
        for fam in sorted(families):
            check(any(k.split("{")[0] == fam for k in scraped), f"node_exporter lacks {fam}")
        check(scraped.get("tagmem_claims") == 1, "node_exporter's tagmem_claims")
        print(f"node_exporter serves all {len(families)} tagmem metric names, no scrape error")
    except BaseException:
        sys.stderr.write(b.log_text())
        raise
    finally:
        if exporter:
            exporter.kill()
            exporter.wait()
        b.cleanup()
        shutil.rmtree(prom_dir, ignore_errors=True)
    print("metrics: ok")


main()
