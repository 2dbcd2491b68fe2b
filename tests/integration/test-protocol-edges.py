#!/usr/bin/env python3
"""Theory of operation: requests that json-c would accept but that are not what the client
meant, or replies that would not be JSON. Each gets a clear error, changes nothing (the
registry stays byte-identical, the tag keeps its owner) and every reply is strict UTF-8 JSON:
invalid UTF-8 anywhere; a string with an escaped NUL (json-c would keep only the part before
it) in each argument that names something; numbers JSON does not allow (08, 08E, 1., -, 1e);
integers beyond 64 bits (json-c clamps them: an id would come back changed); an unknown op
whose echo would be cut inside a multi-byte character."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Broker, Client, check, run  # noqa: E402

TAG = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"


def strict_reply(c):
    """The next reply, which must be valid UTF-8 and strict JSON."""
    while b"\n" not in c.buf:
        chunk = c.s.recv(65536)
        check(chunk, "brokerd closed the connection")
        c.buf += chunk
    line, c.buf = c.buf.split(b"\n", 1)
    text = line.decode("utf-8")  # raises on invalid UTF-8

    def no_constants(x):
        raise AssertionError(f"non-JSON constant {x} in {text}")
    return json.loads(text, parse_constant=no_constants)


def body(b):
    b.start()
    c = Client(b.sock)
    check("result" in c.call("fm_add", size=2 << 20, tag=TAG), "setup")
    check("result" in c.call("claim", tag=TAG, name="owner"), "claim")
    reg = os.path.join(b.state, "registry.json")
    before = open(reg, "rb").read()

    def expect(raw, code, id_=None, what=""):
        c.send_raw(raw + b"\n")
        m = strict_reply(c)
        check(m.get("error", {}).get("code") == code and m.get("id") == id_,
              f"{what or raw!r}: expected {code} with id {id_}, got {m}")
        return m

    # invalid UTF-8: in a value, in a key, a lone continuation byte, an overlong '/', a
    # surrogate, a sequence cut short
    for bad in [b"\xff", b"\xc3", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82"]:
        m = expect(b'{"id":1,"op":"show","tag":"' + bad + b'"}', "parse_error", None)
        check("UTF-8" in m["error"]["message"], f"says why: {m}")
        expect(b'{"id":1,"op":"show","' + bad + b'":1}', "parse_error")

    # an escaped NUL in every argument that names something
    for key in ["tag", "name", "path", "vm", "qmp", "op"]:
        msg = {"id": 2, "op": "claim", "tag": TAG, "name": "x"}
        msg[key] = (TAG if key == "tag" else "vm1") + "\u0000zzz"
        raw = json.dumps(msg).encode()
        check(b"\\u0000" in raw, "the test sends an escaped NUL")
        m = expect(raw, "parse_error", None, f"escaped NUL in {key}")
        check("NUL" in m["error"]["message"], f"says why: {m}")
    # lone surrogates would become garbage too
    expect(b'{"id":3,"op":"hello","x":"\\ud800"}', "parse_error")
    expect(b'{"id":3,"op":"hello","x":"\\udc00\\ud800"}', "parse_error")
    check("result" in c.call("hello", x="\U0001F600 é"), "a real surrogate pair is fine")

    # numbers JSON does not allow: json-c reads 08 as 8 and prints 1. back as invalid JSON
    for num in [b"08", b"08E", b"1.", b"-", b"1e", b"01", b"-01", b".5", b"+1", b"0x10",
                b"NaN", b"Infinity", b"-Infinity"]:
        m = expect(b'{"id":' + num + b',"op":"hello"}', "parse_error", None, num)
        expect(b'{"id":4,"op":"fm_add","size":' + num + b'}', "parse_error", None, num)
    # comments and single quotes are not JSON either
    expect(b'{"id":4,"op":"hello"/*x*/}', "parse_error")
    expect(b"{'id':4,'op':'hello'}", "parse_error")

    # integers beyond 64 bits: never clamped into something else
    for wide in [b"18446744073709551616", b"-9223372036854775809", b"99999999999999999999999"]:
        m = expect(b'{"id":' + wide + b',"op":"hello"}', "parse_error", None, wide)
        check("64 bits" in m["error"]["message"], f"says why: {m}")
        m = expect(b'{"id":5,"op":"flush","tag":"' + TAG.encode() + b'","offset":' + wide + b'}',
                   "invalid_argument", 5, wide)
    # the edges themselves are exact
    for edge in [18446744073709551615, -9223372036854775808, 0, -0]:
        c.send_raw(json.dumps({"id": edge, "op": "hello"}).encode() + b"\n")
        m = strict_reply(c)
        check(m.get("id") == edge and "result" in m, f"id {edge} echoed exactly: {m}")

    # an unknown op is echoed cut to 64 bytes, but never inside a character
    for op in ["é" * 40, "€" * 30, "\U0001F600" * 20, "a" + "é" * 40]:
        m = expect(json.dumps({"id": 6, "op": op}).encode(), "unknown_op", 6, op[:3])
        quoted = m["error"]["message"].split('"')[1]
        check(op.startswith(quoted) and len(quoted.encode()) <= 64, f"cut cleanly: {quoted!r}")

    # nothing changed, and brokerd still serves
    check(open(reg, "rb").read() == before, "the registry changed")
    show = c.call("show", tag=TAG)["result"]
    check(show["state"] == "claimed" and show["owner"]["name"] == "owner", f"tag: {show}")
    check(b.alive(), "brokerd died")
    print("protocol edges: ok")


run(body)
