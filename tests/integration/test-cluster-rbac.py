#!/usr/bin/env python3
"""Theory of operation: the cluster directory over TLS with client certificates and etcd's
RBAC. Certificates are made here (openssl): a CA, etcd's server certificate, a client
certificate per host. etcd requires a client certificate of its CA (--client-cert-auth), and
each host is an etcd user (password in a 0600 file) whose role may write only its own part of
the directory (/tagmem/v1/hosts/<host>/) and the claims. etcd's JSON gateway ignores a
certificate's CN for RBAC (and refuses one that has a CN once auth is on), so tagmem's
certificates carry none and the user is named by password. A host that tries to write
another's part is refused by etcd, through tagmem-clusterd or by hand; a client without a
certificate, trusting another CA, or with a world-readable password file, gets nothing."""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from etcdtest import ETCD, STARTED, free_ports, print_logs, stop_started  # noqa: E402
from harness import TAGMEM, Broker, check, wait_serving  # noqa: E402

CLUSTERD = os.environ.get("CLUSTERD")
if not CLUSTERD:
    sys.exit("CLUSTERD must be set (ctest sets it)")
T = "d1d1d1d1-1111-4222-8333-444444444444"


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def make_certs(d):
    """A CA, etcd's certificate (for 127.0.0.1), and a client certificate per user."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    sh("openssl", "req", "-x509", *ec, "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt",
       "-days", "2", "-subj", "/CN=tagmem-test-ca")

    def issue(name, subject, ext):
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(ext)
        sh("openssl", "req", *ec, "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr",
           "-subj", subject)
        sh("openssl", "x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.crt", "-CAkey",
           f"{d}/ca.key", "-CAcreateserial", "-out", f"{d}/{name}.crt", "-days", "2",
           "-extfile", f"{d}/{name}.ext")
    issue("server", "/CN=etcd",
          "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    issue("root", "/CN=root", "extendedKeyUsage=clientAuth\n")  # etcdctl (gRPC): CN is the user
    for h in ("h1", "h2"):  # tagmem (the JSON gateway): no CN, a password names the user
        issue(h, f"/O=tagmem/OU=host-{h}", "extendedKeyUsage=clientAuth\n")
        with open(f"{d}/{h}.pw", "w") as f:
            f.write(f"secret-of-{h}\n")
        os.chmod(f"{d}/{h}.pw", 0o600)
    # another CA, that signed nothing etcd trusts
    sh("openssl", "req", "-x509", *ec, "-keyout", f"{d}/other.key", "-out", f"{d}/other.crt",
       "-days", "2", "-subj", "/CN=someone-else")


def etcdctl(url, d, user, *args, check_ok=True):
    """As root (its certificate's CN), or as a host (its certificate, and its password)."""
    who = [] if user == "root" else ["--user", f"{user}:secret-of-{user}"]
    r = subprocess.run(["etcdctl", "--endpoints", url, "--cacert", f"{d}/ca.crt",
                        "--cert", f"{d}/{user}.crt", "--key", f"{d}/{user}.key", *who, *args],
                       capture_output=True, text=True, env=dict(os.environ, ETCDCTL_API="3"),
                       timeout=20)
    if check_ok and r.returncode != 0:
        raise AssertionError(f"etcdctl {' '.join(args)}: {r.stderr}")
    return r


def setup_rbac(url, d):
    """root, and a role per host: its own part, the claims, and reading the rest."""
    as_root = lambda *a: etcdctl(url, d, "root", *a)  # noqa: E731
    as_root("user", "add", "root", "--no-password")
    as_root("user", "grant-role", "root", "root")
    for h in ("h1", "h2"):
        as_root("role", "add", f"host-{h}")
        as_root("role", "grant-permission", f"host-{h}", "readwrite", f"/tagmem/v1/hosts/{h}/",
                "--prefix=true")
        as_root("role", "grant-permission", f"host-{h}", "readwrite", f"/tagmem/v1/hostinfo/{h}")
        as_root("role", "grant-permission", f"host-{h}", "readwrite", "/tagmem/v1/claims/",
                "--prefix=true")
        as_root("role", "grant-permission", f"host-{h}", "read", "/tagmem/v1/", "--prefix=true")
        as_root("user", "add", h, f"--new-user-password=secret-of-{h}")
        as_root("user", "grant-role", h, f"host-{h}")
    as_root("auth", "enable")


def cluster_where(url, d, user, tag):
    env = dict(os.environ, TAGMEM_ETCD_CA=f"{d}/ca.crt", TAGMEM_ETCD_CERT=f"{d}/{user}.crt",
               TAGMEM_ETCD_KEY=f"{d}/{user}.key", TAGMEM_ETCD_USER=user,
               TAGMEM_ETCD_PASSWORD_FILE=f"{d}/{user}.pw")
    r = subprocess.run([TAGMEM, "--json", "cluster", "where", tag, "--etcd", url],
                       capture_output=True, text=True, env=env, timeout=30)
    return r.returncode, r.stdout, r.stderr


def main():
    top = tempfile.mkdtemp(prefix="tagmem-rbac.")
    data = tempfile.mkdtemp(prefix="tagmem-etcd.", dir="/dev/shm")
    d = os.path.join(top, "pki")
    os.mkdir(d)
    cport, pport = free_ports(2)
    url = f"https://127.0.0.1:{cport}"
    etcd = b = None
    try:
        make_certs(d)
        log = open(os.path.join(top, "etcd.log"), "ab")
        etcd = subprocess.Popen(
            [ETCD, "--name", "n0", "--data-dir", os.path.join(data, "n0"),
             "--listen-client-urls", url, "--advertise-client-urls", url,
             "--listen-peer-urls", f"http://127.0.0.1:{pport}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
             "--initial-cluster", f"n0=http://127.0.0.1:{pport}",
             "--cert-file", f"{d}/server.crt", "--key-file", f"{d}/server.key",
             "--trusted-ca-file", f"{d}/ca.crt", "--client-cert-auth"], stdout=log, stderr=log)
        deadline = time.time() + 20
        while etcdctl(url, d, "root", "endpoint", "health", check_ok=False).returncode != 0:
            check(time.time() < deadline and etcd.poll() is None, "etcd with TLS came up")
            time.sleep(0.2)
        setup_rbac(url, d)

        b = Broker("--guest-dir", "none")
        b.start()
        check("result" in __import__("harness").Client(b.sock).call("fm_add", size=2 << 20, tag=T),
              "a tag on h1")

        def publisher(host_id, cert, listen):
            p = subprocess.Popen([CLUSTERD, "--etcd", url, "--host-id", host_id, "--socket",
                                  b.sock, "--ttl", "5", "--listen", os.path.join(top, listen),
                                  "--etcd-ca", f"{d}/ca.crt", "--etcd-cert", f"{d}/{cert}.crt",
                                  "--etcd-key", f"{d}/{cert}.key", "--etcd-user", cert,
                                  "--etcd-password-file", f"{d}/{cert}.pw"],
                                 stdout=open(os.path.join(top, f"{listen}.log"), "ab"),
                                 stderr=subprocess.STDOUT)
            STARTED.append(p)
            wait_serving(p, os.path.join(top, listen), "tagmem-clusterd")
            return p

        # h1 with its own certificate: published, and readable with a certificate
        publisher("h1", "h1", "c1.sock")
        deadline = time.time() + 5
        while True:
            code, out, err = cluster_where(url, d, "h2", T)
            if code == 0:
                break
            check(time.time() < deadline, f"h1 published over TLS: {err}")
            time.sleep(0.1)
        recs = json.loads(out)
        check([r["host"] for r in recs] == ["h1"], f"h2's user reads h1's part: {recs}")

        # h1's certificate pretending to be h2: etcd refuses every write of h2's part
        publisher("h2", "h1", "c2.sock")
        time.sleep(1.5)
        with open(os.path.join(top, "c2.sock.log")) as f:
            text = f.read()
        check("permission denied" in text, f"the impostor is told etcd refused it: {text}")
        code, out, _ = cluster_where(url, d, "h1", T)
        check([r["host"] for r in json.loads(out)] == ["h1"], "nothing of h2's was written")
        r = etcdctl(url, d, "h1", "put", "/tagmem/v1/hosts/h2/tags/x", "{}", check_ok=False)
        check(r.returncode != 0 and "permission denied" in r.stderr, f"by hand too: {r.stderr}")
        r = etcdctl(url, d, "h2", "put", "/tagmem/v1/hosts/h2/tags/x", "{}", check_ok=False)
        check(r.returncode == 0, f"h2 may write its own part: {r.stderr}")

        # no client certificate, or trusting another CA: nothing
        env = dict(os.environ, TAGMEM_ETCD_CA=f"{d}/ca.crt")
        r = subprocess.run([TAGMEM, "cluster", "where", T, "--etcd", url], capture_output=True,
                           text=True, env=env, timeout=30)
        check(r.returncode == 3, f"no client certificate: refused: {r.stderr}")
        env = dict(os.environ, TAGMEM_ETCD_CA=f"{d}/other.crt", TAGMEM_ETCD_CERT=f"{d}/h1.crt",
                   TAGMEM_ETCD_KEY=f"{d}/h1.key")
        r = subprocess.run([TAGMEM, "cluster", "where", T, "--etcd", url], capture_output=True,
                           text=True, env=env, timeout=30)
        check(r.returncode == 3, f"an etcd signed by another CA is not trusted: {r.stderr}")
        r = subprocess.run([TAGMEM, "cluster", "where", T, "--etcd", url], capture_output=True,
                           text=True, timeout=30)
        check(r.returncode == 2 and "TAGMEM_ETCD_CA" in r.stderr, f"https needs a CA: {r.stderr}")
        os.chmod(f"{d}/h1.pw", 0o644)
        code, _, err = cluster_where(url, d, "h1", T)
        check(code == 2 and "PASSWORD_FILE" in err, f"a password others can read: {err}")
        os.chmod(f"{d}/h1.pw", 0o600)
        code, _, err = cluster_where(url, d, "h1", T)
        check(code == 0, f"and with it private again: {err}")
    except BaseException:
        print_logs(top)
        raise
    finally:
        stop_started()
        if b:
            b.cleanup()
        if etcd:
            etcd.kill()
            etcd.wait()
        subprocess.run(["rm", "-rf", top, data])
    print("cluster-rbac: ok")


main()
