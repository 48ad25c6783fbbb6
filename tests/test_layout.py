"""The package's shape: layers that only import downwards, no import circles, small modules.

The import graph is read from the source with `ast` (nothing is imported), function-level
imports included; imports under `if TYPE_CHECKING:` never run and are left out. Like
import-linter, importing `a.b.c` is an edge to `a.b.c` only, not to the packages above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A module may import project modules of its own layer or below, never above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("convis.config", "convis.errors", "convis.cache")),
    ("pure core", ("convis.windows", "convis.saliency", "convis.boxes", "convis.render", "convis.figure",
                   "convis.concepts", "convis.concepts.hierarchy", "convis.concepts.dag", "convis.concepts.lookup",
                   "convis.concepts.chains", "convis.index", "convis.index.")),
    ("doors", ("convis.image", "convis.concepts.wordnet", "convis.concepts.nltk_data", "convis.concepts.hints",
               "convis.clip", "convis.clip.")),
    ("facade", ("convis", "convis.engine")),
    ("collections", ("convis.store", "convis.store.", "convis.dataset", "convis.dataset.")),
    ("shells", ("convis.__main__", "convis.cli", "convis.cli.", "convis.bench", "convis.bench.", "convis.eval",
                "convis.eval.", "convis.app", "convis.app.", "app")),
]
# Third-party packages a layer must not import (the heavy or optional ones have one home each).
FORBIDDEN = {
    "base": {"torch", "nltk", "open_clip", "huggingface_hub", "gradio", "ray", "mcp", "tqdm", "PIL"},
    "pure core": {"nltk", "open_clip", "huggingface_hub", "gradio", "ray", "mcp", "tqdm"},
    "doors": {"gradio", "ray", "mcp", "tqdm"},
    "facade": {"gradio", "ray", "mcp", "nltk", "open_clip"},
    "collections": {"gradio", "mcp", "nltk", "open_clip"},
}
APP_FORBIDDEN = {"open_clip", "nltk"}  # app.py and convis/app/ go through the doors
# An optional extra is imported in one module only, at call time, so a missing extra fails in one
# place with one message (the fix) and every other module imports without it.
HOMES = {"ray": {"convis.dataset.ray_engine"}}


def layer_of(module: str) -> int:
    """Index into LAYERS of the most specific entry naming the module."""
    best, depth = None, -1
    for i, (_, names) in enumerate(LAYERS):
        for n in names:
            hit = module == n or (n.endswith(".") and module.startswith(n))
            if hit and len(n) > depth:
                best, depth = i, len(n)
    if best is None:
        raise AssertionError(f"module {module} is in no layer of tests/test_layout.py: add it there")
    return best


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> file, for convis/ and app.py."""
    out = {"app": root / "app.py"}
    for path in sorted((root / "convis").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def imports_of(path: Path, known: set[str]) -> tuple[set[str], set[str]]:
    """(project modules, third-party top-level packages) a file imports at run time."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inner, outer = set(), set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if _type_checking(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                     for a in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in ("convis", "app") and (name in known or top == "convis"):
                while name not in known:  # "convis.index.image_index.ImageIndex" style: the module
                    name = name.rpartition(".")[0]
                inner.add(name)
            else:
                outer.add(top)
    return inner, outer


def import_graph(root: Path = ROOT) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    modules = project_modules(root)
    graph, external = {}, {}
    for name, path in modules.items():
        graph[name], external[name] = imports_of(path, set(modules))
        graph[name].discard(name)
    return graph, external


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            node, kids = work[-1]
            for kid in kids:
                if kid not in index:
                    index[kid] = low[kid] = counter[0]
                    counter[0] += 1
                    stack.append(kid)
                    on.add(kid)
                    work.append((kid, iter(sorted(graph[kid]))))
                    break
                if kid in on:
                    low[node] = min(low[node], index[kid])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop()
                        on.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def layer_violations(graph: dict[str, set[str]], external: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in sorted(graph.items()):
        mine = layer_of(mod)
        for dep in sorted(deps):
            if layer_of(dep) > mine:
                bad.append(f"{mod} ({LAYERS[mine][0]}) imports {dep} ({LAYERS[layer_of(dep)][0]})")
        banned = FORBIDDEN.get(LAYERS[mine][0], set())
        if mod == "app" or mod.startswith("convis.app"):
            banned = APP_FORBIDDEN
        for pkg in sorted(external[mod] & banned):
            bad.append(f"{mod} ({LAYERS[mine][0]}) imports {pkg}")
        for pkg in sorted(external[mod] & set(HOMES)):
            if mod not in HOMES[pkg]:
                bad.append(f"{mod} imports {pkg}, whose one home is {', '.join(sorted(HOMES[pkg]))}")
    return bad


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_no_import_cycles(graph):
    assert cycles(graph[0]) == []


def test_layers_only_import_downwards(graph):
    assert layer_violations(*graph) == []


def test_the_checks_catch_a_planted_violation(tmp_path):
    """A copy of the tree with a pure module importing a shell and a two-module circle: both are found."""
    import shutil

    shutil.copytree(ROOT / "convis", tmp_path / "convis", ignore=shutil.ignore_patterns("__pycache__", "assets"))
    shutil.copy(ROOT / "app.py", tmp_path / "app.py")
    with open(tmp_path / "convis" / "saliency.py", "a") as f:
        f.write("\n\ndef _planted():\n    from convis.cli.flags import Bar  # a pure module reaching a shell\n")
    with open(tmp_path / "convis" / "boxes.py", "a") as f:
        f.write("\nfrom convis import render  # noqa\n")
    with open(tmp_path / "convis" / "render.py", "a") as f:
        f.write("\nimport convis.boxes  # noqa\n")
    g, ext = import_graph(tmp_path)
    assert ["convis.boxes", "convis.render"] in cycles(g)
    assert "convis.saliency (pure core) imports convis.cli.flags (shells)" in layer_violations(g, ext)


def test_an_optional_extra_has_one_home():
    """ray imported by a store module (a layer that may import torch) or a shell is flagged; its home is not."""
    g, ext = import_graph()
    ext = {**ext, "convis.store.search": ext["convis.store.search"] | {"ray"}, "convis.cli.dataset": {"ray"}}
    bad = layer_violations(g, ext)
    assert "convis.store.search imports ray, whose one home is convis.dataset.ray_engine" in bad
    assert "convis.cli.dataset imports ray, whose one home is convis.dataset.ray_engine" in bad
    assert not [b for b in bad if b.startswith("convis.dataset.ray_engine")]


def test_small_top_level_and_modules():
    top = sorted(p.name for p in (ROOT / "convis").glob("*.py"))
    assert len(top) <= 15, top
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "convis").rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 250}
    assert long == {}


def test_every_subpackage_says_its_job():
    for init in (ROOT / "convis").rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc) > 40, f"{init.relative_to(ROOT)} needs a docstring saying the package's job"
