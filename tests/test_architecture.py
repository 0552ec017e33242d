"""The package's shape: one-way imports, no cycles, small modules, modalities as plug-ins.

These read the source (ast) rather than trusting a diagram, so a change that adds a cycle or a
modality fork outside the plug-in folders fails here first.
"""

import ast
import os
import subprocess
import sys


ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "keras_tl")
MAX_LINES = 450


def _modules():
    """{dotted module name: path} for every .py file in keras_tl."""
    found = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                found[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return found


def _imports(module, path, known):
    """keras_tl modules that `module` imports at module level or inside functions."""
    tree = ast.parse(open(path).read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    targets = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant):
                names = [node.args[0].value]
        for name in names:
            if name in known and name != module:
                targets.add(name)
    return targets


def _graph():
    known = _modules()
    return {m: _imports(m, p, known) for m, p in known.items()}


def _cycle(graph):
    """One import cycle as a list of modules, or None. A package's `__init__` importing its own
    submodules lazily is not an edge of concern, so edges from a package to its children are dropped."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for child in sorted(graph[node]):
            if child.startswith(node + "."):
                continue
            if state.get(child) == "open":
                return stack[stack.index(child):] + [child]
            if child not in state:
                found = visit(child, stack)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def test_no_import_cycle():
    graph = _graph()
    assert len(graph) > 40  # the walk found the package
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


def test_the_cycle_check_can_fail():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _cycle(graph) == ["a", "b", "c", "a"]


def test_core_never_imports_a_modality_or_the_workflow():
    """Data flows one way: core knows no modality folder, no workflow, no CLI."""
    upward = ("keras_tl.image", "keras_tl.text", "keras_tl.audio", "keras_tl.workflow", "keras_tl.cli",
              "keras_tl.datasets")
    for module, targets in _graph().items():
        if module.startswith("keras_tl.core"):
            bad = sorted(t for t in targets if t.startswith(upward))
            assert not bad, f"{module} imports {bad}"
        if module.startswith("keras_tl.weights"):
            bad = sorted(t for t in targets if t.startswith(("keras_tl.core.registry",) + upward))
            assert not bad, f"{module} imports {bad}"


def test_modalities_do_not_import_each_other():
    for module, targets in _graph().items():
        plugins = ("keras_tl.image", "keras_tl.text", "keras_tl.audio")
        for mine in plugins:
            if module.startswith(mine):
                bad = sorted(t for t in targets if t.startswith(tuple(p for p in plugins if p != mine)))
                assert not bad, f"{module} imports {bad}"


GENERATED = {"keras_tl.core.tflite_metadata_schema"}  # flatc output, vendored unmodified (see its header)


def test_no_module_over_the_line_limit():
    long = {m: n for m, p in _modules().items()
            if m not in GENERATED and (n := sum(1 for _ in open(p))) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_modality_string_forks_outside_the_plugins():
    """Nothing outside a modality's folder compares against "image"/"text" (dispatch through the
    plug-in object instead). Choice lists and docs may name them; comparisons may not."""
    offenders = []
    for module, path in _modules().items():
        if module.startswith(("keras_tl.image", "keras_tl.text", "keras_tl.audio")):
            continue
        for node in ast.walk(ast.parse(open(path).read(), path)):
            if isinstance(node, ast.Compare):
                for part in [node.left] + node.comparators:
                    if isinstance(part, ast.Constant) and part.value in ("image", "text", "audio"):
                        offenders.append(f"{module}:{node.lineno}")
    assert not offenders, f"modality forks outside the plug-ins: {offenders}"


def test_every_module_imports_on_its_own():
    """Import order cannot hide a cycle: each module is imported with no other keras_tl module loaded
    (one fresh interpreter; keras_tl is dropped from `sys.modules` before each import, TensorFlow
    stays loaded so this takes seconds, not minutes)."""
    modules = sorted(m for m in _modules() if not m.endswith("__main__"))
    script = (
        "import importlib, sys, traceback\n"
        f"for name in {modules!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'keras_tl' or m.startswith('keras_tl.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception:\n"
        "        sys.exit(name + ': ' + traceback.format_exc()[-2000:])\n"
        "print(len(" + repr(modules) + "))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(len(modules))
