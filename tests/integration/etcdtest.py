"""A real etcd cluster on loopback for the cluster tests: three members, their data on
/dev/shm (fast, and gone with the test), started, killed and restarted one by one."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ETCD = shutil.which("etcd")
if not ETCD or not shutil.which("etcdctl"):
    sys.exit("etcd is not installed: tests/deps.sh all installs etcd-server and etcd-client")


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Etcd:
    """A three-member etcd cluster on loopback."""

    def __init__(self, top):
        self.top = top
        self.data = tempfile.mkdtemp(prefix="tagmem-etcd.", dir="/dev/shm")
        ports = free_ports(6)
        self.client = ports[:3]
        self.peer = ports[3:]
        self.procs = [None] * 3
        self.urls = ",".join(f"http://127.0.0.1:{p}" for p in self.client)
        self.initial = ",".join(f"n{i}=http://127.0.0.1:{self.peer[i]}" for i in range(3))

    def start(self, i, state="new"):
        log = open(os.path.join(self.top, f"etcd{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(
            [ETCD, "--name", f"n{i}", "--data-dir", os.path.join(self.data, f"etcd{i}"),
             "--listen-client-urls", f"http://127.0.0.1:{self.client[i]}",
             "--advertise-client-urls", f"http://127.0.0.1:{self.client[i]}",
             "--listen-peer-urls", f"http://127.0.0.1:{self.peer[i]}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer[i]}",
             "--initial-cluster", self.initial, "--initial-cluster-state", state,
             "--heartbeat-interval", "50", "--election-timeout", "500"],
            stdout=log, stderr=log)

    def start_all(self):
        for i in range(3):
            self.start(i)
        self.wait_healthy()

    def wait_healthy(self, secs=20):
        deadline = time.time() + secs
        while time.time() < deadline:
            r = subprocess.run(["etcdctl", "--endpoints", self.urls, "put", "/probe", "x"],
                               capture_output=True, env=dict(os.environ, ETCDCTL_API="3"),
                               timeout=10)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError("etcd did not come up")

    def kill(self, i):
        if self.procs[i] and self.procs[i].poll() is None:
            self.procs[i].send_signal(signal.SIGKILL)
            self.procs[i].wait()

    def stop_all(self):
        for i in range(3):
            self.kill(i)

    def cleanup(self):
        self.stop_all()
        shutil.rmtree(self.data, ignore_errors=True)

    def put(self, key, value):
        subprocess.run(["etcdctl", "--endpoints", self.urls, "put", key, value], check=True,
                       capture_output=True, env=dict(os.environ, ETCDCTL_API="3"), timeout=10)




STARTED = []  # the publishers a test started: stopped at its end (and only those)


def start_publisher(top, endpoints, host, ttl):
    """The host's tagmem-clusterd, its own socket at host.csock; waits until it answers."""
    from harness import wait_serving
    log = open(os.path.join(top, f"clusterd-{host.name}.log"), "ab")
    p = subprocess.Popen([os.environ["CLUSTERD"], "--etcd", endpoints, "--host-id", host.name,
                          "--socket", host.sock, "--ttl", str(ttl), "--listen", host.csock],
                         stdout=log, stderr=log)
    STARTED.append(p)
    wait_serving(p, host.csock, "tagmem-clusterd")
    return p


def print_logs(top):
    """The tail of every log the test wrote in top (on a failure)."""
    for n in sorted(os.listdir(top)):
        if n.endswith(".log"):
            with open(os.path.join(top, n), errors="replace") as f:
                sys.stderr.write(f"--- {n} ---\n" + f.read()[-3000:])


def stop_started():
    for p in STARTED:
        if p.poll() is None:
            p.kill()
            p.wait()


def run_cluster(names, body, title, extra=()):
    """A three-member etcd, a shared fabric and a brokerd per host name (extra: more brokerd
    arguments); body(top, etcd, fab, hosts) runs with them and everything is stopped after,
    the logs printed on failure."""
    from harness import Broker, wait_serving
    top = tempfile.mkdtemp(prefix="tagmem-cluster.")
    os.chmod(top, 0o755)
    etcd = Etcd(top)
    fab = os.path.join(top, "fabric")
    fmd = None
    hosts = []
    try:
        etcd.start_all()
        fmd = subprocess.Popen([os.environ["FMD"], "--dir", fab, "--region-size", "16G"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_serving(fmd, os.path.join(fab, "fabric.sock"), "tagmem-fmd")
        for name in names:
            b = Broker("--fabric", fab, "--host-id", name, "--guest-dir", "none", *extra)
            b.name = name
            b.csock = os.path.join(top, f"clusterd-{name}.sock")
            hosts.append(b)
            b.start()
            os.chmod(b.dir, 0o755)
        body(top, etcd, fab, hosts)
    except BaseException:
        for b in hosts:
            sys.stderr.write(f"--- {b.name} log ---\n" + b.log_text())
        print_logs(top)
        raise
    finally:
        stop_started()
        for b in hosts:
            b.cleanup()
        if fmd:
            fmd.kill()
        etcd.cleanup()
        shutil.rmtree(top, ignore_errors=True)
    print(f"{title}: ok")
