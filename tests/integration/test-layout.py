#!/usr/bin/env python3
"""Theory of operation: brokerd's architecture is a layering of folders, each a subsystem
that others reach only through its front-door header. This test reads every #include of
brokerd's sources and fails when a file reaches into another folder past its front door,
when a folder depends on one it must not (the layering below, also in docs/design.md), or
when the folder graph or the header graph has a cycle. It needs no build."""
import os
import re
import sys

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
BROKERD = os.path.join(TOP, "brokerd")

# folder -> the headers other folders may include
FRONT = {
    "base": {"loop.h", "log.h", "list.h", "mailbox.h", "settings.h", "textfile.h"},  # the toolbox: all public
    "core": {"core.h"},
    "registry": {"registry.h"},
    "backends": {"backend.h", "sim.h"},  # sim.h: the pool of the shared fabric manager too
    "dataplane": {"dataplane.h"},
    "vm": {"vm.h"},
    "server": {"server.h"},
    "guests": {"guests.h"},
    "snapshot": {"snapshot.h"},
    "api": {"api.h"},
    "daemon": {"daemon.h"},
    "fabric": {"fabric.h"},
    "cluster": {"cluster.h"},
}
# folder -> the folders it may depend on
ALLOWED = {
    "base": set(),
    "core": {"base"},
    "registry": {"core", "base"},
    "backends": {"core", "base"},
    "dataplane": {"base"},
    "vm": {"base"},
    "server": {"base"},
    "guests": {"base"},
    "snapshot": {"base"},
    "api": {"core", "server", "guests", "snapshot", "dataplane", "vm", "backends", "base"},
    "daemon": set(FRONT) - {"daemon", "fabric", "cluster"},
    "fabric": {"backends", "server", "base"},
    "cluster": {"base"},
    "": {"daemon", "base"},  # main.c
}
# folders that must not speak the protocol: they get work and an opaque completion, and
# never learn who asked or in what words (json-c is the protocol's, and QMP's)
NO_JSON = {"base", "dataplane", "vm"}

failures = []
header_folder = {}
files = []
for root, _, names in os.walk(BROKERD):
    for n in names:
        if n.endswith((".c", ".h")):
            folder = os.path.relpath(root, BROKERD)
            folder = "" if folder == "." else folder
            files.append((folder, n, os.path.join(root, n)))
            if n.endswith(".h"):
                if n in header_folder:
                    failures.append(f"header {n} exists twice in brokerd")
                header_folder[n] = folder

unknown = {f for f, _, _ in files if f and f not in FRONT}
for f in sorted(unknown):
    failures.append(f"folder brokerd/{f} is not in the layering (add it here and to docs/design.md)")

inc_re = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
json_re = re.compile(r'^\s*#\s*include\s+<json-c/', re.M)
folder_edges = {}
header_edges = {}
for folder, name, path in files:
    with open(path) as fh:
        text = fh.read()
    if folder in NO_JSON and json_re.search(text):
        failures.append(f"brokerd/{folder}/{name} includes json-c: {folder} gets work and a "
                        "completion, never the protocol")
    for inc in inc_re.findall(text):
        target = header_folder.get(os.path.basename(inc))
        if target is None:
            continue  # libtagmem or qemu-plugin: below brokerd
        if name.endswith(".h"):
            header_edges.setdefault(name, set()).add(os.path.basename(inc))
        if target == folder:
            continue
        if inc not in FRONT.get(target, set()):
            failures.append(f"brokerd/{folder}/{name} includes {inc}, which is internal to brokerd/{target}")
        folder_edges.setdefault(folder, set()).add(target)
        if target not in ALLOWED.get(folder, set()):
            failures.append(f"brokerd/{folder or '.'}/{name}: {folder or 'main'} may not depend on {target}")


def find_cycle(edges):
    state = {}

    def visit(n, stack):
        state[n] = 1
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack + [n, m]
            if not state.get(m):
                c = visit(m, stack + [n])
                if c:
                    return c
        state[n] = 2
        return None

    for n in sorted(edges):
        if not state.get(n):
            c = visit(n, [])
            if c:
                return c
    return None


for what, edges in (("folder", folder_edges), ("header", header_edges)):
    c = find_cycle(edges)
    if c:
        failures.append(f"{what} include cycle: {' -> '.join(c)}")

for f in failures:
    print("FAIL:", f)
print(f"layout: {len(files)} files, {sum(len(v) for v in folder_edges.values())} folder edges, "
      f"{len(failures)} problem(s)")
sys.exit(1 if failures else 0)
