"""Every tutorial notebook runs top to bottom (its own assert cells included), and the committed
notebooks are what `notebooks/make_notebooks.py` writes, with the outputs a reader on GitHub sees."""

import glob
import os
import sys

import nbformat
import pytest
from nbclient import NotebookClient

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "notebooks")
NOTEBOOKS = sorted(glob.glob(os.path.join(HERE, "*.ipynb")))
sys.path.insert(0, HERE)
import make_notebooks  # noqa: E402  (notebooks/make_notebooks.py)

NATIVE_LOG = ("I0000", "W0000", "E0000", "WARNING: All log messages before absl")  # TensorFlow's C++ lines


def test_there_are_notebooks():
    assert any(p.endswith("01_quickstart.ipynb") for p in NOTEBOOKS)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_executes(path, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_TL_NOTEBOOK_OUT", str(tmp_path / "runs"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors


def test_the_generator_writes_every_committed_notebook():
    assert sorted(make_notebooks.NOTEBOOKS) == sorted(os.path.basename(p) for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_committed_notebook_is_what_the_generator_writes(path):
    """Cell for cell (type, id, source): a change to make_notebooks.py is regenerated, not forgotten."""
    committed = nbformat.read(path, as_version=4)
    assert make_notebooks.sources(committed) == make_notebooks.sources(make_notebooks.build(os.path.basename(path)))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_committed_notebook_has_its_outputs(path):
    """Executed top to bottom in one kernel (counts 1, 2, ...), no error, and every cell that shows a
    plot carries its PNG."""
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1))
    outputs = [o for c in cells for o in c.outputs]
    assert outputs and not [o for o in outputs if o.output_type == "error"]
    streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert not [line for line in streams.splitlines() if line.startswith(NATIVE_LOG)]
    for cell in cells:
        if "plt.show()" in cell.source:
            assert any("image/png" in o.get("data", {}) for o in cell.outputs), cell.source[:80]


def test_the_output_check_can_fail():
    notebook = make_notebooks.build("01_quickstart.ipynb")  # as generated: no outputs yet
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert [c.execution_count for c in cells] != list(range(1, len(cells) + 1))


def _requirement_names(requirements):
    import re

    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].strip().lower().replace("_", "-") for r in requirements}


def test_the_notebooks_extra_brings_what_the_notebooks_import():
    """`pip install "keras-tl[notebooks]"` gives every module a notebook imports: each comes from a
    dependency of keras-tl or of the extra, or from one of theirs (IPython from ipykernel)."""
    import ast
    import importlib.metadata as metadata

    import tomllib

    with open(os.path.join(HERE, "..", "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    declared = _requirement_names(project["dependencies"] + project["optional-dependencies"]["notebooks"])
    reachable = set(declared)
    for name in declared:
        try:
            reachable |= _requirement_names(r for r in (metadata.requires(name) or []) if "extra ==" not in r)
        except metadata.PackageNotFoundError:  # not installed here (jupyterlab): its own name is declared
            pass
    owners = metadata.packages_distributions()
    missing = {}
    for name, cells in make_notebooks.NOTEBOOKS.items():
        for kind, source in cells:
            if kind != "code":
                continue
            for node in ast.walk(ast.parse(source)):
                modules = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module]
                    if isinstance(node, ast.ImportFrom) and node.module
                    else []
                )
                for module in modules:
                    top = module.split(".")[0]
                    if top in sys.stdlib_module_names or top == "keras_tl":
                        continue
                    dists = {d.lower().replace("_", "-") for d in owners.get(top, [])}
                    if not dists & reachable:
                        missing.setdefault(name, []).append(top)
    assert missing == {}


def test_a_notebook_shows_no_tensorflow_start_up_lines(tmp_path, monkeypatch):
    """A Jupyter kernel reads file descriptor 2 into the cells' output; the quiet import used to
    silence another descriptor, so every notebook showed TensorFlow's start-up lines."""
    # As a user's kernel starts: conftest sets TF_CPP_MIN_LOG_LEVEL, and ipykernel does not read
    # descriptor 2 into the output while PYTEST_CURRENT_TEST is set.
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    cells = [
        "import matplotlib.pyplot as plt\nimport keras_tl",
        "source = keras_tl.datasets.load_digits([0, 1])\nprint(len(source.items))",
        "classifier = keras_tl.build_classifier('mobilenet_v2', 2, weights='none', image_size=32)\n"
        "print(classifier.model.name)",
        # Descriptor 2 reaches the kernel through a pipe read by a thread: late lines land in a later cell.
        "import time\ntime.sleep(3)\nprint('done')",
    ]
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [o for cell in notebook.cells for o in cell.outputs if o.output_type == "stream"]
    text = "".join(o.text for o in outputs)
    assert "done" in text
    assert not [line for line in text.splitlines() if line.startswith(NATIVE_LOG)], text
