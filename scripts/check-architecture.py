#!/usr/bin/env python3
"""Checks docs/architecture.md's module graph against Package.swift.

Every module of the product (non-test, non-C targets) is in the graph; every arrow in the
graph is a dependency in Package.swift; and every dependency Package.swift declares between
product modules is reachable along the graph's arrows (the graph may leave out an arrow
that another path already implies, never a dependency). Prints what differs; exit 1 if any.
"""
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
package = (root / "Package.swift").read_text()
doc = (root / "docs/architecture.md").read_text()

targets = {}
for match in re.finditer(r'\.(target|executableTarget)\(\n\s*name:\s*"(\w+)"(.*?)\n        \),?', package, re.S):
    kind, name, body = match.groups()
    deps = re.search(r'dependencies:\s*\[(.*?)\]', body, re.S)
    names = re.findall(r'(?<![\w:])"(\w+)"(?!\s*,\s*package)', deps.group(1)) if deps else []
    names = [n for n in names if not re.search(r'product\(name:\s*"%s"' % n, deps.group(1))]
    targets[name] = set(names)
# One-line targets: .target(name: "X", dependencies: [...], ...)
for match in re.finditer(r'\.target\(name:\s*"(\w+)"(?:,\s*dependencies:\s*\[([^\]]*)\])?', package):
    name, deps = match.groups()
    targets.setdefault(name, set(re.findall(r'"(\w+)"', deps or "")))

product = {n for n in targets if not n.startswith("C") and n != "TestSupport"}
graph_block = re.search(r"```mermaid\n(.*?)```", doc, re.S).group(1)
edges = set()
nodes = set()
for line in graph_block.splitlines():
    line = line.strip()
    m = re.match(r'(\w+)(?:\[".*?"\])?(?:\s*-->\s*(.*))?$', line)
    if not m or line.startswith("flowchart"):
        continue
    source, rest = m.groups()
    nodes.add(source)
    for target in (rest or "").split("&"):
        target = target.strip()
        if target:
            edges.add((source, target))
            nodes.add(target)

problems = []
for missing in sorted(product - nodes):
    problems.append(f"module {missing} is not in docs/architecture.md's graph")
for extra in sorted(nodes - product):
    problems.append(f"the graph names {extra}, which is not a module of Package.swift")
for source, target in sorted(edges):
    if target not in targets.get(source, set()):
        problems.append(f"the graph draws {source} --> {target}, which Package.swift does not declare")

def reachable(start):
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        for s, t in edges:
            if s == node and t not in seen:
                seen.add(t)
                todo.append(t)
    return seen

for name in sorted(product):
    for dep in sorted(targets[name] & product):
        if dep not in reachable(name):
            problems.append(f"Package.swift: {name} depends on {dep}, which the graph does not reach from {name}")

for problem in problems:
    print(problem)
if problems:
    sys.exit(1)
print(f"docs/architecture.md matches Package.swift: {len(product)} modules, {len(edges)} arrows")
