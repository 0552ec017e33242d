"""The whole-run functions: `train`, `auto`, `compare_backbones`, `rank`, `domain_shift`, `lr_find`, `show_batch`, and what is
done with a finished run (`evaluate_run`, `predict`, `export_run`, `load_run`). Modality-agnostic.

Names load on first use (`keras_tl.workflow.checks` stays keras-free for the CLI's early checks).
"""

import importlib

_NAMES = {
    "AutoResult": "keras_tl.workflow.auto_run",
    "RunResult": "keras_tl.workflow.rundir",
    "auto": "keras_tl.workflow.auto_run",
    "load_split": "keras_tl.workflow.rundir",
    "compare_backbones": "keras_tl.workflow.compare",
    "lr_find": "keras_tl.workflow.rate_finder",
    "domain_shift": "keras_tl.workflow.ranking",
    "rank": "keras_tl.workflow.ranking",
    "evaluate_run": "keras_tl.workflow.runs",
    "export_run": "keras_tl.workflow.runs",
    "load_run": "keras_tl.workflow.runs",
    "predict": "keras_tl.workflow.runs",
    "labelled_predictions": "keras_tl.workflow.runs",
    "save_backbone_weights": "keras_tl.workflow.runs",
    "build_classifier": "keras_tl.workflow.build",
    "check_config": "keras_tl.workflow.checks",
    "check_export_name": "keras_tl.workflow.checks",
    "resolve_problem": "keras_tl.workflow.checks",
    "show_batch": "keras_tl.workflow.training_run",
    "train": "keras_tl.workflow.training_run",
}
_SUBMODULES = ("auto_run", "build", "checks", "compare", "ranking", "rate_finder", "runs", "training_run")


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_NAMES) + list(_SUBMODULES))
