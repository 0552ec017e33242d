"""The package's shape: layers that import only downward, modalities as plug-ins, small modules, a
documented tree. These read the source (ast) rather than trusting a diagram, so a change that adds an
upward import, a cycle or a fork on a modality's name fails here first."""

import ast
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "keras_tl")
MAX_LINES = 450
GENERATED = ("keras_tl._vendor",)  # flatc output, vendored unmodified: no line cap, no linter.
PLUGINS = ("keras_tl.image", "keras_tl.text", "keras_tl.audio")
MODALITY_NAMES = ("image", "text", "audio")

# Each group's layer: a module may import its own group, or any group of a lower layer.
#   utils <- contract <- data <- models <- train, evaluation, export <- adapt <- weights
#   <- plug-ins <- datasets <- workflow <- cli (and the package's own entry points)
LAYERS = [
    ("keras_tl.core.utils", 0),
    ("keras_tl._vendor", 0),
    ("keras_tl.core.contract", 1),
    ("keras_tl.assets", 1),
    ("keras_tl.core.data", 2),
    ("keras_tl.core.models", 3),
    ("keras_tl.core.train", 4),
    ("keras_tl.core.evaluation", 4),
    ("keras_tl.core.export", 4),
    ("keras_tl.core.adapt", 5),
    ("keras_tl.weights", 6),
    ("keras_tl.image", 7),
    ("keras_tl.text", 7),
    ("keras_tl.audio", 7),
    ("keras_tl.datasets", 8),
    ("keras_tl.workflow", 9),
    ("keras_tl.cli", 10),
    ("keras_tl.quickstart", 10),
    ("keras_tl.__main__", 10),
    ("keras_tl", 10),
]
TOP = 10  # the entry points (root package, CLI, quickstart) may use one another


# Lines outside the plug-ins where one of the words is not a modality: (module, the line's start).
NOT_A_MODALITY = set()  # (module, assignment target) pairs where a modality's name is a plain word


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
    """keras_tl modules that `module` imports, at module level or inside functions."""
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
            # `from package import name`: the submodule `package.name` where there is one, else the
            # package (its __init__) itself.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant):
                names = [node.args[0].value]
        for name in names:
            while name and name not in known:  # `import a.b.c` of a non-module attribute path
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
    return targets


def _graph():
    known = _modules()
    return {m: _imports(m, p, known) for m, p in known.items()}


def _group(module):
    """`(group, layer)` of a module: the longest group name it falls under."""
    return max(
        ((g, layer) for g, layer in LAYERS if module == g or module.startswith(g + ".")), key=lambda x: len(x[0])
    )


def layer_violations(graph):
    """Imports that go up a layer, or sideways into another group of the same layer."""
    found = []
    for module, targets in graph.items():
        group, layer = _group(module)
        for target in targets:
            if group == "keras_tl" and target.count(".") == 1:  # The root package's lazy public API.
                continue
            other, other_layer = _group(target)
            if other != group and (other_layer > layer or (other_layer == layer and layer != TOP)):
                found.append(f"{module} -> {target}")
    return sorted(found)


def modality_forks(source, where="<snippet>"):
    """Lines where code outside the plug-ins names a modality in a literal ("image", "text", "audio"):
    comparisons, conditional expressions, dict keys and lookups, arguments. Docstrings may name them."""
    tree = ast.parse(source, where)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return sorted(
        {
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in MODALITY_NAMES and id(node) not in docstrings
        }
    )


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
                return stack[stack.index(child) :] + [child]
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


def test_every_module_has_a_layer_and_imports_only_downward():
    graph = _graph()
    assert len(graph) > 60  # the walk found the package
    assert all(_group(m) for m in graph)
    assert layer_violations(graph) == []


def test_the_layer_check_can_fail():
    graph = {
        "keras_tl.core.utils.paths": {"keras_tl.core.train.training"},  # up
        "keras_tl.core.train.training": {"keras_tl.core.evaluation.plots"},  # sideways, same layer
        "keras_tl.image.data": {"keras_tl.text.data"},  # one plug-in into another
        "keras_tl.core.models.heads": {"keras_tl.core.contract.errors"},  # down: fine
        "keras_tl.core.train.features": {"keras_tl.core.train.resume"},
    }  # own group: fine
    assert layer_violations(graph) == [
        "keras_tl.core.train.training -> keras_tl.core.evaluation.plots",
        "keras_tl.core.utils.paths -> keras_tl.core.train.training",
        "keras_tl.image.data -> keras_tl.text.data",
    ]


def test_no_import_cycle():
    graph = _graph()
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


def test_the_cycle_check_can_fail():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _cycle(graph) == ["a", "b", "c", "a"]


def test_nothing_outside_the_plugins_names_a_modality():
    """The core, the workflow, the CLI and the converters reach a modality through its plug-in object,
    never by a literal name (the one registration line, `keras_tl.core.contract.choices.MODALITIES`,
    excepted)."""
    offenders = {}
    for module, path in _modules().items():
        if module.startswith(PLUGINS + GENERATED) or module in (
            "keras_tl.core.contract.choices",
            "keras_tl.datasets",
            "keras_tl.datasets.drums",
            "keras_tl.datasets.instruments",
        ):
            continue
        source = open(path).read().splitlines()
        lines = [
            n
            for n in modality_forks("\n".join(source), path)
            if (module, source[n - 1].strip().split("=")[0].strip()) not in NOT_A_MODALITY
        ]
        if lines:
            offenders[module] = lines
    assert offenders == {}


@pytest.mark.parametrize(
    "snippet",
    [
        'if modality.name == "text":\n    pass',
        'kind = "text" if has_tokenizer else "image"',
        'default = {"image": 224, "text": 128}[name]',
        'ok = name in ("image", "audio")',
        'plugin = get("audio")',
        'key = {"auto": "image"}.get(config.modality, config.modality)',
    ],
)
def test_the_modality_check_catches_every_kind_of_fork(snippet):
    assert modality_forks(snippet) == [1]


def test_the_modality_check_lets_docstrings_and_words_be():
    assert modality_forks('def f():\n    """Reads image and text files."""\n    return "images"\n') == []


def test_keras_objects_modules_import_nothing_that_imports_keras_half_way():
    """`keras_tl.KERAS_OBJECT_MODULES` are imported the moment Keras finishes importing, possibly while
    another keras_tl module is half-way through its own `import keras`: at module level they import only
    keras-free keras_tl modules (utils, contract, a plug-in's presets)."""
    import keras_tl

    graph, paths = _graph(), _modules()
    keras_free = (
        "keras_tl.core.utils",
        "keras_tl.core.contract",
        "keras_tl.image.presets",
        "keras_tl.text.presets",
        "keras_tl.audio.presets",
        "keras_tl.assets",
        "keras_tl.core.data.multitask_labels",
    )
    for module in keras_tl.KERAS_OBJECT_MODULES:
        tree = ast.parse(open(paths[module]).read())
        top = {
            alias.name if isinstance(node, ast.Import) else node.module
            for node in tree.body
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        }
        bad = sorted(t for t in top if t and t.startswith("keras_tl") and not t.startswith(keras_free))
        assert not bad, f"{module} imports {bad} at module level"
        assert module in graph


def _prints(path):
    """Lines of a module that write to the terminal themselves: `print(...)`, `sys.stdout/stderr.write`."""
    found = []
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (isinstance(func, ast.Name) and func.id == "print") or (
            isinstance(func, ast.Attribute)
            and func.attr == "write"
            and isinstance(func.value, ast.Attribute)
            and func.value.attr in ("stdout", "stderr")
        ):
            found.append(node.lineno)
    return found


def test_library_code_speaks_through_the_keras_tl_logger_only():
    """A library user silences keras-tl with `logging.getLogger("keras_tl")`: no module but the CLI's
    writes to the terminal itself."""
    offenders = [
        f"{module}:{line}"
        for module, path in _modules().items()
        if not module.startswith(("keras_tl.cli", *GENERATED))
        for line in _prints(path)
    ]
    assert offenders == []


def test_the_print_check_can_fail(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("import sys\nprint('x')\nsys.stderr.write('y')\nlog.info('fine')\n")
    assert _prints(str(path)) == [2, 3]


def test_no_module_over_the_line_limit():
    long = {
        m: n
        for m, p in _modules().items()
        if not m.startswith(GENERATED) and (n := sum(1 for _ in open(p))) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def documented_files(text):
    """The `.py` files the first code block of docs/ARCHITECTURE.md lists: a tree indented two spaces a
    level, folders ending in `/`, a line naming one or more files (`a.py b.py`) before its description."""
    files, folders = set(), []
    for line in text.split("```")[1].splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        folders = folders[:depth]
        words = line.split()
        if words[0].endswith("/"):
            folders.append(words[0].rstrip("/"))
            continue
        for word in words:
            if not word.endswith(".py"):
                break
            files.add("/".join(folders + [word]))
    return files


def test_the_architecture_document_lists_the_tree():
    """docs/ARCHITECTURE.md names every module of the package, and only modules that exist."""
    with open(os.path.join(os.path.dirname(ROOT), "docs", "ARCHITECTURE.md"), encoding="utf-8") as f:
        listed = documented_files(f.read())
    actual = {os.path.relpath(p, os.path.dirname(ROOT)).replace(os.sep, "/") for p in _modules().values()}
    package_files = ("/__init__.py", "/__main__.py")  # listed where they say something, not required
    actual = {f for f in actual if not f.endswith(package_files)}
    listed = {f for f in listed if not f.endswith(package_files) or f in actual}
    assert sorted(actual - listed) == [] and sorted(listed - actual) == []


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
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(len(modules))


def test_private_apis_of_other_libraries_are_named_in_one_place():
    """Keras', LiteRT's and argparse's private names are used only in `keras_tl.core.utils.private`,
    which says why each is needed."""
    offenders = []
    pattern = re.compile(
        r"\b(?:keras|interpreter|parser|argparse|layer|backbone|model|self|base)\._[a-z]\w*|"
        r"from keras\.src|import keras\.src"
    )
    for module, path in _modules().items():
        if module == "keras_tl.core.utils.private" or module.startswith(GENERATED):
            continue
        for number, line in enumerate(open(path), 1):
            code = line.split("#")[0]
            if pattern.search(code) and "self._" not in code:
                offenders.append(f"{module}:{number}: {line.strip()}")
    assert offenders == []


def _modality_uses():
    """Attributes the shared code (outside the plug-ins) reads on a modality object: `modality.x`,
    `classifier.modality.x`, `modalities.get(name).x`."""
    used = set()
    for module, path in _modules().items():
        if module.startswith(PLUGINS + GENERATED):
            continue
        for node in ast.walk(ast.parse(open(path).read(), path)):
            if not isinstance(node, ast.Attribute):
                continue
            value = node.value
            if (
                (isinstance(value, ast.Name) and value.id == "modality")
                or (isinstance(value, ast.Attribute) and value.attr == "modality")
                or (
                    isinstance(value, ast.Call)
                    and isinstance(value.func, ast.Attribute)
                    and value.func.attr == "get"
                    and isinstance(value.func.value, ast.Name)
                    and value.func.value.id == "modalities"
                )
            ):
                used.add(node.attr)
    return used


def test_the_modality_contract_is_what_the_shared_code_calls():
    """Every attribute the shared code reads on a modality is declared on `Modality`, and every abstract
    method is one the shared code calls: the contract and its use cannot drift apart."""
    from keras_tl.core.contract.modality import Modality

    used = _modality_uses()
    assert {"dataset", "build_network", "serving_endpoints", "tflite_signature"} <= used  # the walk finds them
    declared = {name for name in dir(Modality) if not name.startswith("_")}
    assert sorted(used - declared) == []
    assert sorted(Modality.__abstractmethods__ - used) == []


def test_a_plugin_missing_a_method_fails_when_it_is_made():
    from keras_tl.core.contract.modality import Modality
    from keras_tl.image.modality import ImageModality

    class Incomplete(ImageModality):
        pass

    Incomplete.serving_request = None  # what a plug-in that never wrote it looks like to the ABC
    Incomplete.__abstractmethods__ = frozenset({"serving_request"})
    with pytest.raises(TypeError, match="serving_request"):
        Incomplete()

    class Bare(Modality):
        name = "bare"

    with pytest.raises(TypeError, match="abstract method"):
        Bare()
    for name in ("image", "text", "audio"):
        from keras_tl.core.contract import modality

        assert not type(modality.get(name)).__abstractmethods__


def test_plug_ins_declare_their_own_config_fields():
    """A modality's fields (`sequence_length`, `clip_seconds`, ...) are declared in its plug-in's
    `config.FIELDS`, not in the core; every field whose help names one modality comes from one."""
    import dataclasses
    import importlib

    from keras_tl.core.contract import config
    from keras_tl.core.contract.choices import MODALITIES

    core_source = open(config.__file__, encoding="utf-8").read()
    from_plug_ins = {}
    for name in MODALITIES:
        for field in getattr(importlib.import_module(f"keras_tl.{name}.config"), "FIELDS", {}):
            from_plug_ins[field] = name
            assert f"    {field}:" not in core_source, f"{field} is declared in the core"
    assert {"sequence_length", "text_column", "label_column", "clip_seconds"} <= set(from_plug_ins)
    fields = {f.name: f for f in dataclasses.fields(config.TrainConfig)}
    assert set(from_plug_ins) <= set(fields)
    for field in fields.values():
        if field.metadata["help"].startswith(("Text:", "Audio:", "Images:")):
            assert field.name in from_plug_ins, f"{field.name} speaks of one modality but the core declares it"


def test_a_plug_in_field_that_clashes_with_another_is_refused(monkeypatch):
    from keras_tl.core.contract import config
    from keras_tl.core.contract.fields import Integer, option
    from keras_tl.text import config as text_config

    monkeypatch.setattr(text_config, "FIELDS", {"seed": (int, option(1, "Text: a clash.", Integer(0), "data"))})

    class Fresh:
        __annotations__ = {"seed": int}

    with pytest.raises(TypeError, match="The text plug-in declares config field 'seed', which exists already"):
        config.with_plugin_fields(Fresh)
