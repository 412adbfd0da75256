#!/usr/bin/env bash
# Checks the library's layering: a file of one layer includes only headers of
# its own layer and of the layers below it, and the include graph of the
# library has no cycle. Run by test.sh (and so by CI); run it by hand after
# moving code between layers.
#
#   error.hpp < detail < schema < core < patterns < admin
#
# Exit status 1 and a line per violation when the rule is broken.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
exec python3 - "$root" <<'PY'
import os, re, sys
root = sys.argv[1]
rank = {"error": 0, "detail": 1, "schema": 2, "core": 3, "patterns": 4, "admin": 5}
inc = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)

def layer_of(path):
    rel = os.path.relpath(path, root)
    parts = rel.split(os.sep)
    if parts[:2] == ["include", "shmbus"]:
        if len(parts) == 3:
            return "error" if parts[2] == "error.hpp" else None  # shmbus.hpp: the umbrella
        return parts[2] if parts[2] in rank else None
    if parts[0] == "src" and len(parts) >= 2:
        if len(parts) == 2:
            return "error" if parts[1] == "error.cpp" else None
        return parts[1] if parts[1] in rank else None
    return None

def target_of(name, here):
    """The layer and file of an included header, or None for outside headers."""
    m = re.match(r'shmbus/(\w+)/', name)
    if name == "shmbus/error.hpp":
        return "error", os.path.join(root, "include", name)
    if m and m.group(1) in rank:
        return m.group(1), os.path.join(root, "include", name)
    local = os.path.join(os.path.dirname(here), name)
    if os.path.exists(local):
        return layer_of(local), local
    src = os.path.join(root, "src", name)
    if os.path.exists(src):
        return layer_of(src), src
    return None

files = []
for top in ("include/shmbus", "src"):
    for d, _, names in os.walk(os.path.join(root, top)):
        if "python" in os.path.relpath(d, root).split(os.sep):
            continue
        files += [os.path.join(d, n) for n in names if n.endswith((".hpp", ".cpp", ".h"))]

bad = []
graph = {}
for f in files:
    mine = layer_of(f)
    text = open(f, encoding="utf-8").read()
    edges = []
    for name in inc.findall(text):
        t = target_of(name, f)
        if t is None or t[0] is None:
            continue
        layer, path = t
        edges.append(os.path.normpath(path))
        if mine is not None and rank[layer] > rank[mine]:
            bad.append(f"{os.path.relpath(f, root)}: layer '{mine}' includes {name} of higher layer '{layer}'")
    graph[os.path.normpath(f)] = edges

# Cycles (headers only: a .cpp is never included).
state = {}
def visit(n, stack):
    state[n] = 1
    stack.append(n)
    for m in graph.get(n, []):
        if state.get(m) == 1:
            cyc = stack[stack.index(m):] + [m]
            bad.append("include cycle: " + " -> ".join(os.path.relpath(c, root) for c in cyc))
        elif state.get(m) is None:
            visit(m, stack)
    stack.pop()
    state[n] = 2
for n in sorted(graph):
    if state.get(n) is None:
        visit(n, [])

if bad:
    print("\n".join(bad))
    print(f"check-layers: {len(bad)} violation(s)")
    sys.exit(1)
print(f"check-layers: {len(files)} files, layering and include graph OK")
PY
