"""The run directory, in one place for every modality: what a run writes, and how it is read back.

A run directory holds `config.yaml` (resolved: it records the modality), `classes.json`,
`splits.json` or `splits.npz`, `data_report.json`, `history_*.csv`, `history.json`,
`best.weights.h5`, `model.keras`, `metrics.json`, `report.md` and plots; a modality with host-side
preprocessing adds `preprocessor/` (a text tokenizer).
"""

import contextlib
import fcntl
import json
import os
import shutil
import time
from dataclasses import dataclass

import keras
import numpy as np
import yaml

from keras_tl.core.contract import modality as modalities
from keras_tl.core.contract import registry
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.contract.errors import ConfigError, RunExistsError
from keras_tl.core.contract.files import check_own_folder
from keras_tl.core.data import Split
from keras_tl.core.evaluation import operating_point
from keras_tl.core.models import optimizers  # noqa: F401  (registers the discriminative optimizers for load_model)
from keras_tl.core.models.classifier import Classifier
from keras_tl.core.train import resume as resume_lib
from keras_tl.core.utils.log import log

MODEL_FILE = "model.keras"
DONE_FILE = "DONE"
LOCK_FILE = ".lock"
AGAIN = "pass overwrite=True (--overwrite) to replace it, its files removed first, or choose another `out`."
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
    classifier: Classifier = None


def write_json(run_dir, name, value):
    """Writes `run_dir/name` atomically: a temporary file beside it, then a rename (a kill or a full disk
    leaves the previous file, never half of one)."""
    write_atomic(os.path.join(run_dir, name), json.dumps(value, indent=2))


def write_atomic(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def finish(run_dir):
    """Marks a run finished: `DONE`, written last (after metrics, model, plots and report) and atomically."""
    write_atomic(os.path.join(run_dir, DONE_FILE), time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n")


def is_finished(run_dir):
    return os.path.isfile(os.path.join(run_dir, DONE_FILE))


@contextlib.contextmanager
def hold(run_dir, marker="config.yaml"):
    """Holds the run directory's lock while the block writes it: a second process that would write the
    same run is refused with the holder's pid, not let in. The lock is the file `.lock` in the run
    directory (removing a run keeps it), held with `fcntl.flock`, which the kernel releases when the
    holder dies: a lock file left by a killed process is stale and taken over. A folder that is not a
    run directory gets no lock file: `check_run_dir` refuses it first. `marker`: the file that makes a
    non-empty folder one of keras-tl's (an `auto` run's is auto.json)."""
    _check_is_run_dir(run_dir, marker)
    os.makedirs(run_dir, exist_ok=True)
    fd = os.open(os.path.join(run_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise RunExistsError(
                f"{run_dir!r} is being written by another keras-tl process (pid {holder}). Wait for it "
                "to finish, or choose another `out`."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # Releases the lock.


def read_json(run_dir, name, default=None):
    path = os.path.join(run_dir, name)
    if not os.path.isfile(path):
        return default
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def check_run_dir(run_dir, resolved, *, overwrite=False, resume=False):
    """Decides what a run may do with its directory; called, with the directory's lock held (`hold`),
    before any file of the run is written.

    An empty or missing directory is fine. A keras-tl run directory (it has config.yaml) is
    replaced with `overwrite=True` (its files are removed first), or when it never finished an epoch
    (it stopped before training: unavailable weights, bad data; nothing of it is worth keeping). An
    unfinished run of the same config resumes from its last finished epoch (`keras_tl.core.train.resume`).
    A different config, a finished run (`DONE`) and a run stopped by divergence each raise
    `RunExistsError` saying so. A non-empty folder that is not a run directory is never written
    into or deleted.

    Returns:
        True if the run resumes, False if it starts from the beginning.
    """
    if not _entries(run_dir):
        if resume:
            raise ConfigError(f"Nothing to resume: {run_dir!r} holds no run.")
        return False
    _check_is_run_dir(run_dir)
    config_path = os.path.join(run_dir, "config.yaml")
    if overwrite:
        _empty(run_dir)
        log.info(f"overwrite: removed the previous run in {run_dir}")
        return False
    state = resume_lib.load_state(run_dir)
    if state is None and not is_finished(run_dir):
        if resume:
            raise ConfigError(f"Nothing to resume in {run_dir!r}: it stopped before its first epoch ended.")
        _empty(run_dir)
        log.info(f"{run_dir} held a run that never finished an epoch: replaced")
        return False
    with open(config_path, encoding="utf-8") as f:
        previous = yaml.safe_load(f) or {}
    current = json.loads(json.dumps(resolved.to_dict()))  # Tuples as lists, as YAML has them.
    # A field added since the run was written counts at its default: the same config, not another.
    previous = {**json.loads(json.dumps(type(resolved)().to_dict())), **previous}
    changed = [
        f"{k}: {previous.get(k)!r} -> {current.get(k)!r}"
        for k in sorted(set(previous) | set(current))
        if previous.get(k) != current.get(k)
    ]
    if changed:
        raise RunExistsError(
            f"{run_dir!r} already holds a run with another config ({'; '.join(changed[:6])}"
            f"{'; ...' if len(changed) > 6 else ''}). Two runs are never mixed in one directory: " + AGAIN
        )
    if is_finished(run_dir):
        metrics = read_json(run_dir, "metrics.json", {})
        raise RunExistsError(
            f"{run_dir!r} holds a finished run of this same config (test_accuracy "
            f"{metrics.get('test_accuracy', float('nan')):.4f}; see report.md). To train it "
            "again, " + AGAIN,
            finished=True,
        )
    failure = read_json(run_dir, "failure.json")
    if failure:
        raise RunExistsError(
            f"{run_dir!r} holds an unfinished run of this same config (it stopped: loss "
            f"{failure['loss']} in {failure['phase']} epoch {failure['epoch']}; resuming would "
            "diverge again). Change the learning rate and use another `out`, or " + AGAIN
        )
    log.info(f"resuming the unfinished run in {run_dir} after {state['phase']} epoch {state['epoch']}")
    return True


def _entries(run_dir):
    """What a run directory holds besides its lock file ([] when it does not exist)."""
    return sorted(e for e in os.listdir(run_dir) if e != LOCK_FILE) if os.path.isdir(run_dir) else []


def _check_is_run_dir(run_dir, marker="config.yaml"):
    """Raises unless `run_dir` is missing, empty, or a keras-tl run directory (it holds `marker`)."""
    check_own_folder(run_dir, marker, LOCK_FILE)


def _empty(run_dir):
    """Removes a run's files, keeping the lock file the caller holds."""
    for entry in _entries(run_dir):
        path = os.path.join(run_dir, entry)
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)


def start(resolved, source, splits, unit):
    """Writes what a run knows before training (config, classes, splits, data report); returns the
    run directory. `unit` names the examples in messages ("images", "texts")."""
    run_dir = resolved.out
    os.makedirs(run_dir, exist_ok=True)
    resolved.save(os.path.join(run_dir, "config.yaml"))
    write_json(run_dir, "classes.json", source.class_names)
    save_splits(run_dir, splits)
    write_json(
        run_dir,
        "data_report.json",
        {
            "counts": {s: class_counts(splits[s], source.class_names) for s in splits},
            "imbalance": _imbalance(resolved, splits["train"], source.class_names),
            "skipped": [{"path": p, "reason": r} for p, r in source.skipped],
            "licence": source.licence,
        },
    )
    if source.licence:
        log.info(f"data licence: {source.licence}")
    log.info(
        f"{len(source.class_names)} classes; train/val/test = "
        f"{len(splits['train'])}/{len(splits['val'])}/{len(splits['test'])} {unit}; "
        f"imbalance handled by: {resolved.balance}"
    )
    if source.skipped:  # Each one named, one line each (the first 10; every one in data_report.json).
        log.info(f"skipped {len(source.skipped)} unusable inputs (all in data_report.json):")
        for path, why in source.skipped[:SKIPPED_SHOWN]:
            log.info(f"  skipped {path}: {why}")
        if len(source.skipped) > SKIPPED_SHOWN:
            log.info(f"  ... and {len(source.skipped) - SKIPPED_SHOWN} more in data_report.json")
    return run_dir


SKIPPED_SHOWN = 10  # Skipped inputs named on the terminal; data_report.json names every one.


def save_classifier(run_dir, classifier):
    """Writes `model.keras` and the classifier's host-side preprocessor, if any."""
    classifier.model.save(os.path.join(run_dir, MODEL_FILE))
    classifier.modality.save_preprocessor(classifier, os.path.join(run_dir, PREPROCESSOR_DIR))


def save_splits(run_dir, splits):
    """Arrays go to `splits.npz`; lists (file paths, texts) to `splits.json`."""
    if isinstance(splits["train"].items, np.ndarray):
        np.savez_compressed(
            os.path.join(run_dir, "splits.npz"),
            **{f"{s}_images": splits[s].items for s in splits},
            **{f"{s}_labels": splits[s].labels for s in splits},
        )
    else:
        write_json(
            run_dir,
            "splits.json",
            {s: {"items": list(splits[s].items), "labels": splits[s].labels.tolist()} for s in splits},
        )


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
        raise ConfigError(f"{run_dir!r} is not a keras-tl run directory: config.yaml is missing.")
    return TrainConfig.from_yaml(path)


def load_classifier(run_dir):
    """Loads a finished run: a `Classifier` with its model, preprocessor, class names and config."""
    model_path = os.path.join(run_dir, MODEL_FILE)
    if not os.path.isfile(model_path) or not is_finished(run_dir):
        raise ConfigError(
            f"{run_dir!r} is not a finished keras-tl run directory ({MODEL_FILE if not os.path.isfile(model_path) else DONE_FILE} "
            "is missing): train it to the end first (re-running its `train` command resumes it)."
        )
    config = load_config(run_dir)
    modality = modalities.of(config)  # Runs of earlier versions may record "auto": the backbone's modality.
    try:
        spec = registry.get(config.backbone, modality=modality.name)
    except ValueError:  # A handle or directory that does not resolve here; the model is complete without it.
        spec = None
    # For inference, evaluation and export: no optimizer (its state belongs to the resume files, and
    # restoring it into an unbuilt optimizer only warned).
    try:
        model = keras.saving.load_model(model_path, compile=False)
    except (TypeError, ValueError) as error:
        if "HeadConcat" not in str(error):
            raise
        raise ConfigError(
            f"{run_dir!r} is a multi-task run saved by keras-tl 0.2 (one concatenated output); keras-tl 0.3 "
            "builds multi-task models with one output per head. Train it again (`--overwrite`)."
        ) from None
    preprocessor = modality.load_preprocessor(os.path.join(run_dir, PREPROCESSOR_DIR))
    point = read_json(run_dir, operating_point.FILE, None)  # A binary run trained for a target recall/precision.
    return Classifier(model, modality, spec, preprocessor, read_json(run_dir, "classes.json"), config, point)


def class_counts(split, class_names):
    counts = (
        split.labels.sum(axis=0) if split.labels.ndim == 2 else np.bincount(split.labels, minlength=len(class_names))
    )
    return {name: int(c) for name, c in zip(class_names, counts)}


def _imbalance(config, train, class_names):
    """How the run handles class imbalance, for the data report (the weights themselves, counted on
    the rows the model trains on, go to metrics.json)."""
    counts = class_counts(train, class_names)
    return {"method": config.balance, "largest_to_smallest": max(counts.values()) / max(1, min(counts.values()))}


def append_export_record(run_dir, record):
    with hold(run_dir):
        write_json(run_dir, "exports.json", read_json(run_dir, "exports.json", []) + [record])


def open_stages(run_dir, state_file, request, *, overwrite, last, report):
    """The state of a run made of stages (`auto`), kept in `run_dir`/`state_file` as
    `{"request", "stages", "spent"}`: a new one, or the unfinished one of this same `request`, which
    resumes after its last finished stage. Another request is refused, and so is a finished run (its
    `last` stage done: `RunExistsError(finished=True)`); `overwrite` empties the folder first. Called
    with the folder's lock held (`hold(run_dir, marker=state_file)`)."""
    if overwrite and _entries(run_dir):
        _empty(run_dir)
        log.info(f"overwrite: removed the previous run in {run_dir}")
    try:
        state = read_json(run_dir, state_file)
    except ValueError as error:
        state = error
    if state is not None and not (isinstance(state, dict) and isinstance(state.get("stages"), dict)):
        raise RunExistsError(
            f"{os.path.join(run_dir, state_file)!r} is not a state keras-tl wrote ({str(state)[:80]}). Pass "
            "overwrite=True (--overwrite) to start this run over, its files removed first, or choose another `out`."
        )
    if state is None:  # Written at once: the folder is this run's from now on, a kill or not.
        state = {"request": request, "stages": {}, "spent": 0.0}
        write_json(run_dir, state_file, state)
        return state
    current, previous = json.loads(json.dumps(request)), state.get("request", {})
    changed = sorted(k for k in set(current) | set(previous) if current.get(k) != previous.get(k))
    if changed:
        raise RunExistsError(
            f"{run_dir!r} holds a run of another request (it differs in {', '.join(changed)}): " + AGAIN
        )
    if last in state["stages"]:
        raise RunExistsError(
            f"{run_dir!r} holds a finished run of this same request (see {report}). To run it again, " + AGAIN,
            finished=True,
        )
    log.info(f"resuming {run_dir} after {', '.join(state['stages']) or 'no finished stage'}")
    return state
