#!/usr/bin/env python3
"""Theory of operation: hostile clients. Every bad input gets a clear error (or a clean
disconnect where the stream cannot be trusted any more), changes nothing, and the daemon
keeps serving everyone else: malformed JSON, NUL bytes, a line over 64 KiB, unknown ops,
wrong types, invalid UUIDs, a client stalling mid-line, clients vanishing mid-request, and
1,000 clients at once."""
import faulthandler
import json
import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Broker, Client, check, run  # noqa: E402

TAG = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"


def err_code(m):
    return m.get("error", {}).get("code")


def body(b):
    faulthandler.dump_traceback_later(int(os.environ.get("TEST_WATCHDOG", "120")), exit=True)
    b.extra = ["--request-timeout", "300", "--max-clients", "1100"]
    b.start()
    c = Client(b.sock)
    check("result" in c.call("fm_add", size=4 << 20, tag=TAG), "setup fm_add")
    c.call("claim", tag=TAG, name="victim")
    before = open(os.path.join(b.state, "registry.json")).read()

    # malformed lines: an error reply with id null, and the connection stays usable
    for raw in [b"{", b"not json", b"[1,2,3]", b"\"str\"", b"{} {}", b"{\"id\":1,\"op\":\"hello\"} x",
                b"\xff\xfe\xfd", b"{\"id\":1,\"op\":\"he\x00llo\"}"]:
        c.send_raw(raw + b"\n")
        m = c.read_reply()
        check(m.get("id") is None and err_code(m) == "parse_error", f"{raw!r} -> {m}")
    check("result" in c.call("hello"), "connection usable after garbage")

    # requests that parse but are wrong
    cases = [
        ({"op": "hello"}, "invalid_request"),                       # no id
        ({"id": {"a": 1}, "op": "hello"}, "invalid_request"),       # id of the wrong type
        ({"id": "x" * 200, "op": "hello"}, "invalid_request"),      # id too long
        ({"id": 7}, "invalid_request"),                              # no op
        ({"id": 7, "op": 5}, "invalid_request"),                     # op not a string
        ({"id": 7, "op": "reboot"}, "unknown_op"),
        ({"id": 7, "op": "lookup"}, "invalid_argument"),             # missing tag
        ({"id": 7, "op": "lookup", "tag": 5}, "invalid_argument"),
        ({"id": 7, "op": "lookup", "tag": "5a4b3c2d1e0f4a9b8c7d6e5f4a3b2c1d"}, "invalid_argument"),
        ({"id": 7, "op": "lookup", "tag": TAG + "0"}, "invalid_argument"),
        ({"id": 7, "op": "lookup", "tag": "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1g"}, "invalid_argument"),
        ({"id": 7, "op": "lookup", "tag": "00000000-0000-4000-8000-000000000000"}, "not_found"),
        ({"id": 7, "op": "claim", "tag": TAG, "name": 5}, "invalid_argument"),
        ({"id": 7, "op": "claim", "tag": TAG, "name": "n" * 5000}, "invalid_argument"),
        ({"id": 7, "op": "fm_add", "size": "1G"}, "invalid_argument"),
        ({"id": 7, "op": "fm_add", "size": -2097152}, "invalid_argument"),
        ({"id": 7, "op": "fm_add", "size": 3 << 20}, "invalid_argument"),
        ({"id": 7, "op": "fm_add", "size": 1 << 62}, "no_space"),
        ({"id": 7, "op": "fm_add", "size": 2 << 20, "shared": "yes"}, "invalid_argument"),
        ({"id": 7, "op": "fm_add", "size": 2 << 20, "tag": TAG}, "exists"),
        ({"id": 7, "op": "fm_release", "tag": "00000000-0000-4000-8000-000000000001"}, "not_found"),
        ({"id": 7, "op": "release", "tag": "zz"}, "invalid_argument"),
    ]
    for req, code in cases:
        c.send_raw((json.dumps(req) + "\n").encode())
        m = c.read_reply()
        check(err_code(m) == code, f"{req} -> {m}, expected {code}")
        check(m["error"]["message"], "error without a message")
    # a string id is echoed as it came
    c.send_raw(b'{"id":"abc","op":"hello"}\n')
    check(c.read_reply()["id"] == "abc", "string id echoed")

    # a line over the limit: one error, then the connection is closed
    big = Client(b.sock)
    big.send_raw(b'{"id":1,"op":"hello","pad":"' + b"x" * (70 * 1024) + b'"}\n')
    m = big.read_reply()
    check(err_code(m) == "line_too_long", f"long line -> {m}")
    check(big.closed(), "connection not closed after an oversized line")
    # ... also without any newline at all
    big = Client(b.sock)
    try:
        big.send_raw(b"x" * (200 * 1024))
    except (BrokenPipeError, ConnectionResetError):
        pass
    check(err_code(big.read_reply()) == "line_too_long", "endless line")

    # half a line and then silence: closed after --request-timeout
    slow = Client(b.sock)
    slow.send_raw(b'{"id":1,"op":"hel')
    t0 = time.time()
    m = slow.read_reply()
    check(err_code(m) == "timeout", f"stalled client -> {m}")
    check(slow.closed(), "stalled client not closed")
    check(time.time() - t0 < 5, "stall timeout took too long")

    # vanishing clients: mid-line, right after a full request, with unread replies
    for payload in [b'{"id":1,"op":"lis', b'{"id":1,"op":"list"}\n', b'{"id":1,"op":"list"}\n' * 500]:
        v = Client(b.sock)
        v.send_raw(payload)
        v.close()
    v = Client(b.sock)
    v.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    v.send_raw(b'{"id":1,"op":"claim","tag":"' + TAG.encode() + b'"}\n')
    v.close()  # RST while the daemon may be replying

    # 1,000 clients at once, every one served
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    many = [Client(b.sock) for _ in range(1000)]
    for i, m in enumerate(many):
        m.send_raw(b'{"id":%d,"op":"lookup","tag":"%s"}\n' % (i, TAG.encode()))
    for i, m in enumerate(many):
        r = m.read_reply()
        check(r.get("id") == i and "result" in r, f"client {i}: {r}")
    st = c.call("status")["result"]
    check(st["clients"] >= 1001, f"status counts {st['clients']} clients")
    # over the limit (1100): told, then closed; the others unaffected
    extra = [Client(b.sock) for _ in range(150)]
    refused = served = 0
    for e in extra:
        try:
            e.send_raw(b'{"id":1,"op":"hello"}\n')
        except (BrokenPipeError, ConnectionResetError):
            pass  # already refused and closed; its error line may still be readable
        try:
            m = e.read_reply()
            if err_code(m) == "too_many_clients":
                refused += 1
            elif "result" in m:
                served += 1
        except (socket.timeout, ConnectionError):
            pass
    check(refused >= 40 and served >= 90, f"limit 1100: {served} served, {refused} refused")
    for m in many + extra:
        m.close()

    # after all that: alive, serving, and the registry unchanged
    check(b.alive(), "brokerd died")
    c2 = Client(b.sock)
    r = c2.call("show", tag=TAG)["result"]
    check(r["state"] == "claimed" and r["owner"]["name"] == "victim", f"claim intact: {r}")
    after = open(os.path.join(b.state, "registry.json")).read()
    check(before == after, "registry changed by bad input")
    print("bad-input: ok")


run(body)
