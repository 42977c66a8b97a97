#!/usr/bin/env python3
"""Checks the layer rule of docs/architecture.md ("What each folder may depend on").

Reads every C++ file under src/, tools/ and bench/ and every src/*/CMakeLists.txt:
- a quoted include "x/..." of another layer x must be allowed for the file's layer;
- a midge_x library linked by src/<layer>/CMakeLists.txt must be allowed too;
- protocol/ and broker/ stay free of I/O: no socket, file-descriptor or OpenSSL header, and
  no clock read (every event carries `now`).
Prints one line per violation and exits 1 if there is any; 0 otherwise.
tests/ may use every layer and is not checked.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Layer -> the other layers it may use (keep in step with docs/architecture.md).
ALLOWED = {
    "util": set(),
    "protocol": {"util"},
    "config": {"util"},
    "auth": {"broker", "protocol", "util"},  # implements broker/authenticator.h
    "broker": {"protocol", "util"},
    "store": {"broker", "protocol", "util"},  # implements broker/store.h
    "net": {"broker", "protocol", "util"},
    "client": {"protocol", "util"},
    "server": {"net", "broker", "store", "config", "auth", "protocol", "util"},
    "main": {"server"},                      # src/main.cc
    "tools": {"client", "auth", "protocol", "util"},
    "bench": {"broker", "store", "protocol", "util"},
}
LAYERS = {"util", "protocol", "config", "auth", "broker", "store", "net", "client", "server"}

# Known exceptions, by file and the layer it reaches: (path, layer) -> why.
EXCEPTIONS = {}

# Layers that never touch I/O (sans-IO), and the system headers that would mean they do.
NO_IO = {"protocol", "broker"}
IO_HEADER = re.compile(r"^(sys/|netinet/|arpa/|openssl/|unistd\.h|poll\.h|fcntl\.h|netdb\.h)")
CLOCK_READ = re.compile(r"\b(Clock|steady_clock|system_clock|high_resolution_clock)::now\s*\(")

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
LINK = re.compile(r"\bmidge_(\w+)\b")
SOURCES = (".h", ".hpp", ".cc", ".cpp")


def layer_of(rel):
    parts = rel.split("/")
    if parts[0] == "src":
        return "main" if rel == "src/main.cc" else parts[1]
    return parts[0]  # tools, bench


def check_edge(rel, layer, used, where, problems, exceptions_used):
    if used == layer or used in ALLOWED[layer]:
        return
    if (rel, used) in EXCEPTIONS:
        exceptions_used.add((rel, used))
        return
    problems.append("%s: %s may not depend on %s" % (where, layer, used))


def check_source(rel, problems, exceptions_used):
    layer = layer_of(rel)
    with open(os.path.join(ROOT, rel), encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if layer in NO_IO and CLOCK_READ.search(line):
                problems.append("%s:%d: %s is sans-IO and may not read a clock" % (rel, number, layer))
            m = INCLUDE.match(line)
            if not m:
                continue
            quote, header = m.groups()
            where = "%s:%d" % (rel, number)
            if quote == "<":
                if layer in NO_IO and IO_HEADER.match(header):
                    problems.append("%s: %s is sans-IO and may not include <%s>" % (where, layer, header))
                continue
            used = header.split("/")[0]
            if "/" in header and used in LAYERS:
                check_edge(rel, layer, used, where, problems, exceptions_used)


def check_cmake(rel, problems, exceptions_used):
    layer = layer_of(rel)
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        text = f.read()
    for call in re.finditer(r"target_link_libraries\s*\(([^)]*)\)", text):
        for used in LINK.findall(call.group(1)):
            if used in LAYERS:
                check_edge(rel, layer, used, rel, problems, exceptions_used)


def main():
    problems, exceptions_used = [], set()
    for top in ("src", "tools", "bench"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for name in sorted(files):
                rel = os.path.relpath(os.path.join(dirpath, name), ROOT)
                if name.endswith(SOURCES):
                    check_source(rel, problems, exceptions_used)
                elif name == "CMakeLists.txt" and top == "src" and rel.count("/") == 2:
                    check_cmake(rel, problems, exceptions_used)
    for key in sorted(set(EXCEPTIONS) - exceptions_used):
        print("note: exception no longer needed, remove it from %s: %s -> %s"
              % (os.path.relpath(__file__, ROOT), *key), file=sys.stderr)
    for p in problems:
        print(p)
    if problems:
        print("%d layer violation(s); the rule is in docs/architecture.md" % len(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
