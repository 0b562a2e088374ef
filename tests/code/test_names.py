"""Names live in one module: no `promptcls.*` tag key or champion URI typed elsewhere in the library; UI links
open the training-runs view; the library's module-level imports have no cycle."""

import ast
import re
from pathlib import Path

from promptcls import names

PACKAGE = Path(names.__file__).parent
SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "names.py")


def test_no_tag_key_or_champion_uri_literal_outside_names():
    offenders = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if re.fullmatch(r"promptcls\.[a-z0-9_.]+", node.value) and not node.value.startswith(
                        ("promptcls.families", "promptcls.conf", "promptcls.registry")):  # module names
                    offenders.append(f"{path.name}:{node.lineno} {node.value!r}")
                if "@champion" in node.value:
                    offenders.append(f"{path.name}:{node.lineno} {node.value!r}")
    assert offenders == []


def test_ui_links_open_the_training_runs_view():
    assert names.experiment_url("http://127.0.0.1:5123/", "7") == \
        "http://127.0.0.1:5123/#/experiments/7?workflowType=machine_learning"
    assert names.run_url("http://h:1", "7", "abc") == \
        "http://h:1/#/experiments/7/runs/abc?workflowType=machine_learning"
    assert names.champion_uri("pc") == "models:/pc@champion" and names.CHAMPION_URI == "models:/promptcls@champion"


def module_imports(path: Path) -> set[str]:
    """promptcls modules imported anywhere in the module (a lazy import inside a function still closes a loop)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("promptcls"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("promptcls"))
    return found


def test_no_import_cycle():
    modules = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in PACKAGE.rglob("*.py")}
    graph = {m: {i for i in module_imports(p) if i in modules and i != m} for m, p in modules.items()}
    cycles = []

    def visit(node, stack):
        for nxt in graph[node]:
            if nxt in stack:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif len(stack) < 12:
                visit(nxt, stack + [nxt])

    for start in graph:
        visit(start, [start])
    assert not [c for c in cycles if c[0] != "promptcls"], cycles[:3]
