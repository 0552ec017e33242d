"""The run directory, in one place for every modality: what a run writes, and how it is read back.

A run directory holds `config.yaml` (resolved: it records the modality), `classes.json`,
`splits.json` or `splits.npz`, `data_report.json`, `history_*.csv`, `history.json`,
`best.weights.h5`, `model.keras`, `metrics.json`, `report.md` and plots; a modality with host-side
preprocessing adds `preprocessor/` (a text tokenizer).
"""

import json
import os
import shutil
from dataclasses import dataclass

import keras
import numpy as np
import yaml

from keras_tl.core import modality as modalities
from keras_tl.core import optimizers  # noqa: F401  (registers the discriminative optimizers for load_model)
from keras_tl.core import registry
from keras_tl.core import resume as resume_lib
from keras_tl.core.config import TrainConfig
from keras_tl.core.data import Split
from keras_tl.core.errors import RunExistsError
from keras_tl.core.task import Task

MODEL_FILE = "model.keras"
PREPROCESSOR_DIR = "preprocessor"


@dataclass
class RunResult:
    """What `train` returns: the trained model, both phases' histories and the test metrics."""

    run_dir: str
    config: TrainConfig
    model: keras.Model
    histories: dict
    metrics: dict
    class_names: list
    seconds: float
    task: Task = None


def write_json(run_dir, name, value):
    with open(os.path.join(run_dir, name), "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)


def read_json(run_dir, name, default=None):
    path = os.path.join(run_dir, name)
    if not os.path.isfile(path):
        return default
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def check_run_dir(run_dir, resolved, *, overwrite=False, resume=False):
    """Decides what a run may do with its directory; called before any file of the run is written.

    An empty or missing directory is fine. A keras-tl run directory (it has config.yaml) is
    replaced only with `overwrite=True` (its files are removed first). An unfinished run of the
    same config resumes from its last finished epoch (`keras_tl.core.resume`). A different config,
    a finished run and a run stopped by a NaN loss each raise `RunExistsError` saying so. A
    non-empty folder that is not a run directory is never written into or deleted.

    Returns:
        True if the run resumes, False if it starts from the beginning.
    """
    if not os.path.exists(run_dir) or (os.path.isdir(run_dir) and not os.listdir(run_dir)):
        if resume:
            raise ValueError(f"Nothing to resume: {run_dir!r} holds no run.")
        return False
    if not os.path.isdir(run_dir):
        raise RunExistsError(f"`out` must be a directory. Received: out={run_dir!r}, which is a file.")
    config_path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(config_path):
        raise RunExistsError(
            f"{run_dir!r} is not empty and is not a keras-tl run directory (no config.yaml; it holds "
            f"{sorted(os.listdir(run_dir))[:5]}). keras-tl never writes into or deletes a folder it did not "
            "create: choose another `out`.")
    if overwrite:
        shutil.rmtree(run_dir)
        print(f"[keras-tl] overwrite: removed the previous run in {run_dir}")
        return False
    with open(config_path, encoding="utf-8") as f:
        previous = yaml.safe_load(f) or {}
    current = json.loads(json.dumps(resolved.to_dict()))  # Tuples as lists, as YAML has them.
    changed = [f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in sorted(set(previous) | set(current))
               if previous.get(k) != current.get(k)]
    again = "pass overwrite=True (--overwrite) to replace it, its files removed first, or choose another `out`."
    if changed:
        raise RunExistsError(f"{run_dir!r} already holds a run with another config ({'; '.join(changed[:6])}"
                             f"{'; ...' if len(changed) > 6 else ''}). Two runs are never mixed in one directory: "
                             + again)
    metrics = read_json(run_dir, "metrics.json")
    if metrics is not None:
        raise RunExistsError(f"{run_dir!r} holds a finished run of this same config (test_accuracy "
                             f"{metrics.get('test_accuracy', float('nan')):.4f}; see report.md). To train it "
                             "again, " + again, finished=True)
    failure = read_json(run_dir, "failure.json")
    if failure:
        raise RunExistsError(f"{run_dir!r} holds an unfinished run of this same config (it stopped: loss "
                             f"{failure['loss']} in {failure['phase']} epoch {failure['epoch']}; resuming would "
                             "diverge again). Change the learning rate and use another `out`, or " + again)
    state = resume_lib.load_state(run_dir)
    if state is None:
        if resume:
            raise ValueError(f"Nothing to resume in {run_dir!r}: it was interrupted before its first epoch ended.")
        print(f"[keras-tl] {run_dir} holds this config's run, interrupted before its first epoch ended: "
              "starting it again")
        return False
    print(f"[keras-tl] resuming the unfinished run in {run_dir} after {state['phase']} epoch {state['epoch']}")
    return True


def start(resolved, source, splits, unit):
    """Writes what a run knows before training (config, classes, splits, data report); returns the
    run directory. `unit` names the examples in messages ("images", "texts")."""
    run_dir = resolved.out
    os.makedirs(run_dir, exist_ok=True)
    resolved.save(os.path.join(run_dir, "config.yaml"))
    write_json(run_dir, "classes.json", source.class_names)
    save_splits(run_dir, splits)
    write_json(run_dir, "data_report.json", {
        "counts": {s: class_counts(splits[s], source.class_names) for s in splits},
        "imbalance": _imbalance(resolved, splits["train"], source.class_names),
        "skipped": [{"path": p, "reason": r} for p, r in source.skipped],
        "licence": source.licence,
    })
    if source.licence:
        print(f"[keras-tl] data licence: {source.licence}")
    print(f"[keras-tl] {len(source.class_names)} classes; train/val/test = "
          f"{len(splits['train'])}/{len(splits['val'])}/{len(splits['test'])} {unit}; "
          f"imbalance handled by: {resolved.class_weight}")
    if source.skipped:
        print(f"[keras-tl] skipped {len(source.skipped)} unusable inputs; see data_report.json "
              f"(first: {source.skipped[0][0]}: {source.skipped[0][1]})")
    return run_dir


def save_task(run_dir, task):
    """Writes `model.keras` and the task's host-side preprocessor, if any."""
    task.model.save(os.path.join(run_dir, MODEL_FILE))
    task.modality.save_preprocessor(task, os.path.join(run_dir, PREPROCESSOR_DIR))


def save_splits(run_dir, splits):
    """Arrays go to `splits.npz`; lists (file paths, texts) to `splits.json`."""
    if isinstance(splits["train"].items, np.ndarray):
        np.savez_compressed(os.path.join(run_dir, "splits.npz"),
                            **{f"{s}_images": splits[s].items for s in splits},
                            **{f"{s}_labels": splits[s].labels for s in splits})
    else:
        write_json(run_dir, "splits.json",
                   {s: {"items": list(splits[s].items), "labels": splits[s].labels.tolist()} for s in splits})


def load_split(run_dir, name):
    """The saved "train", "val" or "test" split of a run, as a `Split`."""
    json_path = os.path.join(run_dir, "splits.json")
    if os.path.isfile(json_path):
        with open(json_path, encoding="utf-8") as f:
            entry = json.load(f)[name]
        # "files" (image runs) and "texts" (text runs) are the keys of earlier versions.
        items = entry.get("items", entry.get("files", entry.get("texts")))
        return Split(items, np.asarray(entry["labels"], dtype=np.int64))
    with np.load(os.path.join(run_dir, "splits.npz")) as arrays:
        return Split(arrays[f"{name}_images"], arrays[f"{name}_labels"])


def load_config(run_dir):
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        raise ValueError(f"{run_dir!r} is not a keras-tl run directory: config.yaml is missing.")
    return TrainConfig.from_yaml(path)


def load_task(run_dir):
    """Loads a finished run: a `Task` with its model, preprocessor, class names and config."""
    model_path = os.path.join(run_dir, MODEL_FILE)
    if not os.path.isfile(model_path):
        raise ValueError(f"{run_dir!r} is not a finished keras-tl run directory: {MODEL_FILE} is missing.")
    config = load_config(run_dir)
    name = config.modality
    if name == "auto":  # Runs of earlier versions recorded "auto" for images.
        name = "text" if os.path.isdir(os.path.join(run_dir, PREPROCESSOR_DIR)) else "image"
    modality = modalities.get(name)
    try:
        spec = registry.get(config.backbone, modality=name)
    except ValueError:  # A handle or directory that does not resolve here; the model is complete without it.
        spec = None
    model = keras.saving.load_model(model_path)
    preprocessor = modality.load_preprocessor(os.path.join(run_dir, PREPROCESSOR_DIR))
    return Task(model, modality, spec, preprocessor, read_json(run_dir, "classes.json"), config)


def class_counts(split, class_names):
    counts = split.labels.sum(axis=0) if split.labels.ndim == 2 else np.bincount(split.labels, minlength=len(class_names))
    return {name: int(c) for name, c in zip(class_names, counts)}


def _imbalance(config, train, class_names):
    """How the run handles class imbalance, for the data report."""
    from keras_tl.core.data import class_weights

    counts = class_counts(train, class_names)
    report = {"method": config.class_weight,
              "largest_to_smallest": max(counts.values()) / max(1, min(counts.values()))}
    if config.class_weight == "balanced" and config.task not in ("multilabel", "multitask"):
        weights = class_weights(train.labels, len(class_names))
        report["class_weights"] = {name: weights[i] for i, name in enumerate(class_names)}
    return report


def append_export_record(run_dir, record):
    write_json(run_dir, "exports.json", read_json(run_dir, "exports.json", []) + [record])
