#!/usr/bin/env python3
"""Theory of operation: brokerd as systemd starts it. The test plays the service manager: it
binds the listening socket itself, passes it as fd 3 with LISTEN_FDS/LISTEN_PID, and listens
on a NOTIFY_SOCKET. brokerd must serve on the inherited socket (not bind its own), send
READY=1 once it serves, and leave the socket file alone when it exits."""
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import BROKERD, Broker, Client, check  # noqa: E402

b = Broker()
try:
    path = os.path.join(b.dir, "activated.sock")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(16)
    notify_path = os.path.join(b.dir, "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(10)

    env = dict(os.environ, LISTEN_FDS="1", NOTIFY_SOCKET=notify_path,
               PASSED_FD=str(lsock.fileno()))
    # The socket must arrive as fd 3 and LISTEN_PID must be brokerd's own pid: the shell
    # moves the fd into place and execs brokerd, which keeps the shell's pid.
    proc = subprocess.Popen(
        ["sh", "-c", 'exec 3<&"$PASSED_FD"; export LISTEN_PID=$$; exec "$0" "$@"', BROKERD,
         "--socket", os.path.join(b.dir, "unused.sock"), "--state-dir", b.state,
         "--sim-root", b.sim],
        env=env, pass_fds=[lsock.fileno()], stderr=subprocess.PIPE)
    msg = notify.recv(4096).decode()
    check("READY=1" in msg, f"notify message: {msg!r}")
    c = Client(path)
    r = c.call("hello")
    check(r["result"]["protocol"] == 1, f"hello over the inherited socket: {r}")
    check(not os.path.exists(os.path.join(b.dir, "unused.sock")),
          "brokerd bound its own socket although one was passed")
    c.close()
    proc.terminate()
    proc.wait(timeout=10)
    err = proc.stderr.read().decode()
    check("Using the socket passed by the service manager" in err, err)
    check(os.path.exists(path), "brokerd removed the service manager's socket file")
    print("activation: ok")
finally:
    b.cleanup()
