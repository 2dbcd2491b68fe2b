"""Shared helpers for the Python integration tests: a private brokerd in a temp dir, and a
raw line client (the point of these tests is to send what the real client never would)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BROKERD = os.environ.get("BROKERD")
TAGMEM = os.environ.get("TAGMEM")
if not BROKERD or not TAGMEM:
    sys.exit("BROKERD and TAGMEM must be set (ctest sets them)")


class Broker:
    def __init__(self, *extra, wrapper=()):
        self.dir = tempfile.mkdtemp(prefix="tagmem-test.")
        self.sock = os.path.join(self.dir, "brokerd.sock")
        self.state = os.path.join(self.dir, "state")
        self.sim = os.path.join(self.dir, "sim")
        self.log = open(os.path.join(self.dir, "brokerd.log"), "ab")
        self.extra = list(extra)
        self.wrapper = list(wrapper)  # e.g. ["prlimit", "--nofile=64:64"]
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            self.wrapper + [BROKERD, "--socket", self.sock, "--state-dir", self.state, "--sim-root",
             self.sim, "--sim-region-size", "16G"] + self.extra,
            stdout=self.log, stderr=self.log)
        wait_serving(self.proc, self.sock, "brokerd", self.log_text)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def alive(self):
        return self.proc.poll() is None

    def log_text(self):
        with open(os.path.join(self.dir, "brokerd.log"), errors="replace") as f:
            return f.read()[-int(os.environ.get("LOG_TAIL", "4000")):]

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_serving(proc, sock, name, log_text=lambda: ""):
    """Wait until proc answers hello on sock (5 s); raise if it exits or never does."""
    deadline = time.time() + 5
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited at start:\n" + log_text())
        try:
            c = Client(sock)
            c.call("hello")
            c.close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"{name} did not come up")


class Client:
    def __init__(self, path, timeout=10):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""
        self.next_id = 1

    def send_raw(self, data):
        self.s.sendall(data)

    def read_msg(self):
        while True:
            while b"\n" not in self.buf:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise ConnectionError("closed by brokerd")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            if line:  # a guest channel starts with an empty line
                return json.loads(line)

    def read_reply(self):
        while True:
            m = self.read_msg()
            if "event" not in m:
                return m

    def call(self, op, **args):
        rid = self.next_id
        self.next_id += 1
        self.send_raw((json.dumps(dict(id=rid, op=op, **args)) + "\n").encode())
        m = self.read_reply()
        assert m.get("id") == rid, m
        return m

    def closed(self):
        """True if brokerd closed this connection (after any queued replies)."""
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except ConnectionError:
            return True

    def close(self):
        self.s.close()


NOBODY = 65534


def sh(*args):
    """Run a command; its stdout, stripped. Raises CalledProcessError on failure."""
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


class Scratch:
    """A temp directory for a root test's filesystems: mounts and loop devices made through it
    are undone in reverse order, and the directory removed, when the with-block ends."""

    def __init__(self, prefix):
        self.top = tempfile.mkdtemp(prefix=prefix)
        self._undo = []

    def dir(self, name):
        path = os.path.join(self.top, name)
        os.mkdir(path)
        return path

    def mount(self, *args):
        """mount ARGS… (the last is the mount point)."""
        sh("mount", *args)
        self._undo.append(["umount", "-l", args[-1]])

    def tmpfs(self, name, size="64M"):
        """A fresh tmpfs mounted at a new directory NAME, or skip the test (77) where root
        cannot mount one here."""
        if os.geteuid() != 0:
            print("SKIP: needs root to mount a tmpfs")
            sys.exit(77)
        mnt = self.dir(name)
        try:
            self.mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt)
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            print(f"SKIP: cannot mount a tmpfs here: {e}")
            sys.exit(77)
        return mnt

    def loop(self, backing, *opts):
        dev = sh("losetup", "--find", "--show", *opts, backing)
        self._undo.append(["losetup", "-d", dev])
        return dev

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for cmd in reversed(self._undo):
            subprocess.run(cmd, capture_output=True)
        shutil.rmtree(self.top, ignore_errors=True)
        return False


def call_as_nobody(sock, req):
    """One request from uid 65534 (the socket's directory must let it in): the reply."""
    code = ("import json,socket,sys\ns=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
            "s.sendall(sys.argv[2].encode()+b'\\n'); print(s.makefile().readline())")
    r = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                        sys.executable, "-c", code, sock, json.dumps(req)],
                       capture_output=True, text=True, timeout=30)
    return json.loads(r.stdout)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def run(main, *extra, wrapper=(), start=False):
    """Run a test body with a fresh broker (started first if start); print the log on
    failure."""
    b = None
    try:
        b = Broker(*extra, wrapper=wrapper)
        if start:
            b.start()
        main(b)
    except BaseException:
        if b:
            sys.stderr.write("--- brokerd log ---\n" + b.log_text())
        raise
    finally:
        if b:
            b.cleanup()
