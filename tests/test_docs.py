"""Every code block of README.md and docs/guides/ runs, offline, as written.

The blocks run in order, one document after another, in one working folder that holds small real
data under the names the docs use (`photos/`, `mono/`, `poly/`, `texts.csv`, `sounds/`: see
`docs_workspace`), with epochs and sizes shrunk by the substitutions in `SHRINK` (CONTRIBUTING.md
documents both). Python blocks of a document share one namespace; each `keras-tl` line of a bash
block runs through the CLI's `main` and must exit 0; a YAML block must be a valid config. A block
after `<!-- docs-test: skip (why) -->` is not run, but checked up to the network edge: its Python
compiles and its `keras-tl` lines parse.
"""

import glob
import os
import re
import shlex
import shutil

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENTS = ["README.md"] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "guides", "*.md"))
)
BLOCK = re.compile(r"(?:<!-- docs-test: (?P<note>.*?) -->\n)?```(?P<lang>[\w-]*)\n(?P<code>.*?)^```", re.S | re.M)

# What the tests change in a block so that it runs in seconds: fewer epochs, smaller inputs.
SHRINK = [
    (r"\bhead_epochs=\d+", "head_epochs=1"),
    (r"\bfine_tune_epochs=\d+", "fine_tune_epochs=1"),
    (r"--head-epochs \d+", "--head-epochs 1"),
    (r"--fine-tune-epochs \d+", "--fine-tune-epochs 1"),
    (r"\bimage_size=\d+", "image_size=32"),
    (r"--image-size \d+", "--image-size 32"),
    (r"\bsequence_length=\d+", "sequence_length=16"),
    (r"--steps \d+", "--steps 12"),
    (r"\baugmented_views=\d+", "augmented_views=1"),
    (r"--budget \w+", "--budget 30s"),
    (r'\bbudget="\w+"', 'budget="30s"'),
]


def blocks(document):
    with open(os.path.join(ROOT, document), encoding="utf-8") as f:
        text = f.read()
    return [(m.group("note") or "", m.group("lang"), m.group("code")) for m in BLOCK.finditer(text)]


def shrink(code):
    for pattern, replacement in SHRINK:
        code = re.sub(pattern, replacement, code)
    return code


def commands(code):
    """The commands of a bash block: continuation lines joined, comments dropped, split as the shell would
    (at `&&`, `;` and `|` too)."""
    found = []
    for line in code.replace("\\\n", " ").splitlines():
        words = []
        for word in shlex.split(line, comments=True) + ["&&"]:
            if word in ("&&", "||", ";", "|"):
                found += [words] if words else []
                words = []
            elif word in (">", ">>") or (words and words[-1] is None):
                words.append(None)  # A redirection: the shell's, not the command's.
            else:
                words.append(word)
    found = [[w for w in words if w is not None] for words in found]
    return found


@pytest.fixture(scope="module")
def docs_workspace(tmp_path_factory):
    """The data the docs name, made from real data that the test set-up installs:

    - `photos/{functional,defective}/cell_NN.png`: 12 ELPV solar cells of each class;
    - `mono/`, `poly/`: 10 + 10 ELPV cells of each cell type, in the same class folders;
    - `texts.csv`: 12 WordNet noun glosses of each of 3 supersenses (`text,label`);
    - `sounds/{kick,snare,tom}/`: Sonic Pi's drum one-shots of those classes (their own file names).
    """
    from PIL import Image

    from keras_tl import datasets

    root = tmp_path_factory.mktemp("docs")
    for folder, cell_type, per_class in (("photos", None, 12), ("mono", "mono", 10), ("poly", "poly", 10)):
        source = datasets.load_elpv(cell_type=cell_type) if cell_type else datasets.load_elpv()
        for label, name in enumerate(source.class_names):
            os.makedirs(root / folder / name)
            picked = [p for p, l in zip(source.items, source.labels) if l == label][:per_class]
            for i, path in enumerate(picked):
                Image.open(path).convert("L").save(root / folder / name / f"cell_{i:02d}.png")
    glosses = datasets.load_wordnet_glosses()
    rows = ["text,label"]
    for label, name in enumerate(glosses.class_names[:3]):
        texts = [t for t, l in zip(glosses.items, glosses.labels) if l == label][:12]
        rows += ['"' + t.replace('"', "'") + f'",{name}' for t in texts]
    (root / "texts.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    drums = datasets.load_sonic_pi_drums(classes=["kick", "snare", "tom"])
    for path, label in zip(drums.items, drums.labels):
        os.makedirs(root / "sounds" / drums.class_names[label], exist_ok=True)
        shutil.copy(path, root / "sounds" / drums.class_names[label])
    return root


def test_documents_have_blocks_and_the_workspace_has_what_they_name(docs_workspace):
    assert len(DOCUMENTS) >= 9 and all(blocks(d) for d in DOCUMENTS)
    for name in (
        "photos/defective/cell_00.png",
        "photos/functional/cell_00.png",
        "texts.csv",
        "sounds/kick/bd_haus.flac",
        "sounds/snare/sn_dolf.flac",
        "mono/functional",
        "poly/defective",
    ):
        assert os.path.exists(docs_workspace / name), name


@pytest.mark.slow
@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_block_runs_as_written(document, docs_workspace, monkeypatch, capsys):
    from keras_tl.cli import main
    from keras_tl.cli import parser as cli_parser
    from keras_tl.core.contract.config import TrainConfig

    monkeypatch.chdir(docs_workspace)
    namespace = {"__name__": "__docs__"}
    for number, (note, lang, code) in enumerate(blocks(document), 1):
        where = f"{document}, block {number} ({lang})"
        if note.startswith("skip"):
            if lang == "python":
                compile(code, where, "exec")
            elif lang == "bash":
                for words in commands(code):
                    if "keras-tl" in words:
                        cli_parser.build().parse_args(words[words.index("keras-tl") + 1 :])
            continue
        code = shrink(code)
        if lang == "python":
            exec(compile(code, where, "exec"), namespace)
        elif lang == "bash":
            for words in commands(code):
                assert words[0] == "keras-tl", f"{where}: only keras-tl commands run in a docs block: {words}"
                code_ = main(words[1:])
                assert code_ == 0, f"{where}: `{' '.join(words)}` exited {code_}: {capsys.readouterr().err[-800:]}"
        elif lang == "yaml":
            path = docs_workspace / "block.yaml"
            path.write_text(code, encoding="utf-8")
            TrainConfig.from_yaml(str(path)).validate()
        else:
            pytest.fail(f"{where}: a `{lang}` block runs nowhere; mark it `<!-- docs-test: skip (why) -->`")


def test_the_configuration_reference_is_the_one_the_config_declares():
    from keras_tl.core.contract.config import reference

    with open(os.path.join(ROOT, "docs", "guides", "configuration.md"), encoding="utf-8") as f:
        committed = f.read()
    assert committed == reference() + "\n", (
        "docs/guides/configuration.md is stale: regenerate it with "
        'python -c "from keras_tl.core.contract.config import reference; print(reference())"'
    )


DOTTED = re.compile(r"\bkeras_tl(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def resolves(name):
    """True if `keras_tl.a.b.c` names a module, or an attribute (or dataclass field) of one."""
    import dataclasses
    import importlib

    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:end]))
        except ImportError:
            continue
        for attribute in parts[end:]:
            fields = {f.name for f in dataclasses.fields(found)} if dataclasses.is_dataclass(found) else set()
            if not hasattr(found, attribute) and attribute not in fields:
                return False
            found = getattr(found, attribute, None)
        return True
    return False


def cited_names():
    """`{file: dotted keras_tl names}` the prose and code cite: README, guides, ARCHITECTURE,
    CONTRIBUTING, the notebooks' generator, bench scripts and the package's own docstrings and
    comments (CHANGELOG names the old names on purpose)."""
    files = [
        "README.md",
        "CONTRIBUTING.md",
        "docs/ARCHITECTURE.md",
        "docs/benchmarks.md",
        "notebooks/make_notebooks.py",
    ]
    files += [os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "guides", "*.md"))]
    files += [os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "bench", "*.py"))]
    files += [
        os.path.relpath(p, ROOT)
        for p in glob.glob(os.path.join(ROOT, "keras_tl", "**", "*.py"), recursive=True)
        if "_vendor" not in p
    ]
    cited = {}
    for path in files:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            cited[path] = sorted({m.rstrip(".") for m in DOTTED.findall(f.read())})
    return cited


def test_every_keras_tl_name_the_docs_and_code_cite_exists():
    """A rename leaves no stale `keras_tl.x.y` behind in a guide, a notebook, a bench or a docstring."""
    cited = cited_names()
    assert sum(len(names) for names in cited.values()) > 100  # the scan found the citations
    stale = {path: [n for n in names if not resolves(n)] for path, names in cited.items()}
    assert {path: names for path, names in stale.items() if names} == {}


def test_the_name_check_can_fail():
    assert resolves("keras_tl.core.data.Source.modality") and resolves("keras_tl.workflow.train")
    assert not resolves("keras_tl.imports") and not resolves("keras_tl.core.data.TextSource")
