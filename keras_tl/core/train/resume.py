"""A killed run resumes: what continuing needs is saved at every epoch end, atomically.

`<run_dir>/resume/` holds, after each finished epoch of each phase (feature-cached phase included):
`state.json` (phase, epochs done in every phase, whether a phase is over, best validation loss, the
early-stopping counters) and `variables.npz` (every variable of the model being fit, the dropout
seed states included, and every optimizer variable, its step counter and so the learning-rate
schedule's position included); `best.npz` and `early_stopping.npz` hold the best weights so far
when they change. Files are written beside their final name and moved into place with
`os.replace`, so a kill at any instant leaves the previous epoch's state whole.

Resuming rebuilds the classifier exactly as the first start did (same seed), skips the finished phases,
restores the variables, and re-creates the training dataset's iterators it had used (a seeded
tf.data shuffle draws a new order for each iterator), so the finished run is the same as an
uninterrupted one. `fine_tune(..., resume=True)` does it; `keras_tl.train` chooses it when its
run directory holds an unfinished run of the same config.
"""

import csv
import json
import os

import keras
import numpy as np

from keras_tl.core.contract.errors import ConfigError

STATE_DIR = "resume"


def _write_atomic(path, write):
    tmp = path + ".tmp"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:  # A failed write (a full disk) leaves no half file behind.
        if os.path.exists(tmp):
            os.remove(tmp)


def _save_npz(path, arrays):
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, *arrays)

    _write_atomic(path, write)


def _load_npz(path):
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def load_state(run_dir):
    """The saved state of an unfinished run, or None if there is none."""
    path = os.path.join(run_dir, STATE_DIR, "state.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def phase_history(run_dir, phase):
    """A phase's history (metric -> list) from its CSV log, one row per finished epoch."""
    path = os.path.join(run_dir, f"history_{phase}.csv")
    if not os.path.isfile(path):
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in (rows[0] if rows else {}) if k != "epoch"}


def truncate_history(run_dir, phase, epochs):
    """Keeps the CSV rows of the first `epochs` epochs (global index < epochs): an epoch logged but
    not saved before a kill runs again and must not be logged twice."""
    path = os.path.join(run_dir, f"history_{phase}.csv")
    if not os.path.isfile(path):
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) < epochs]

    def write(tmp):
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(kept)

    _write_atomic(path, write)


def restore_variables(run_dir, fit_model, optimizer=True):
    """Puts back the fit model's variables and (building it first) its optimizer's."""
    values = _load_npz(os.path.join(run_dir, STATE_DIR, "variables.npz"))
    targets = list(fit_model.variables)
    if optimizer:
        if not fit_model.optimizer.built:
            fit_model.optimizer.build(fit_model.trainable_variables)
        targets += list(fit_model.optimizer.variables)
    else:
        values = values[: len(targets)]
    if len(values) != len(targets):
        raise ConfigError(
            f"The resume state in {run_dir!r} holds {len(values)} variables but the model and "
            f"optimizer have {len(targets)}: it was written by another model. Pass "
            "overwrite=True (--overwrite) to start the run again."
        )
    for variable, value in zip(targets, values):
        variable.assign(value)


def restore_best(run_dir, checkpoint, state):
    path = os.path.join(run_dir, STATE_DIR, "best.npz")
    if checkpoint is not None and os.path.isfile(path):
        best = state.get("best", state.get("best_val_loss"))  # "best_val_loss": written before `monitor` existed.
        checkpoint.load([best] if isinstance(best, float) else best, _load_npz(path))


class SaveState(keras.callbacks.Callback):
    """Saves the resume state at every epoch end and when a phase ends; restores early stopping.

    Placed after the CSV logger, the best-weights keeper and early stopping in the callback list,
    so what it saves includes their view of the finished epoch.

    Args:
        run_dir: str.
        phase: str. The phase being fit.
        fit_model: keras.Model. The model `fit` runs (the head alone in a feature-cached phase).
        state: dict. The run's state so far (updated and written here).
        checkpoint: `BestWeights` or None.
        early_stopping: `keras.callbacks.EarlyStopping` or None.
        restore_early_stopping: dict. Saved counters to put back when this phase resumes.
    """

    def __init__(
        self, run_dir, phase, fit_model, state, checkpoint=None, early_stopping=None, restore_early_stopping=None
    ):
        super().__init__()
        self.directory = os.path.join(run_dir, STATE_DIR)
        self.phase = phase
        self.fit_model = fit_model
        self.state = state
        self.checkpoint = checkpoint
        self.early_stopping = early_stopping
        self.restore_early_stopping = restore_early_stopping
        # The weight lists last written: a list replaced since (a new best) is written again. Not
        # compared by score: a new phase's first best can tie the last phase's score (accuracy
        # ties are common) while being other weights, of another model (a domain-adapted wrapper).
        self._written = {}
        os.makedirs(self.directory, exist_ok=True)

    def on_train_begin(self, logs=None):
        saved, stopper = self.restore_early_stopping, self.early_stopping
        if saved and stopper is not None:  # EarlyStopping.on_train_begin has just reset these.
            stopper.wait, stopper.best, stopper.best_epoch = saved["wait"], saved["best"], saved["best_epoch"]
            path = os.path.join(self.directory, "early_stopping.npz")
            stopper.best_weights = _load_npz(path) if os.path.isfile(path) else None

    def on_epoch_end(self, epoch, logs=None):
        self.state["phase"] = self.phase
        self.state["epoch"] = epoch + 1
        self.state.setdefault("phase_epochs", {})[self.phase] = self.state["phase_epochs"].get(self.phase, 0) + 1
        self._save()

    def on_train_end(self, logs=None):
        # The phase is over (all epochs, or early stopping, whose best weights are now restored). A
        # NaN stop ends here too; its failure.json keeps the run from being resumed.
        self.state.setdefault("finished_phases", []).append(self.phase)
        self._save()

    def _save(self):
        if (
            self.checkpoint is not None
            and self.checkpoint.best_weights is not None
            and (self.checkpoint.best_weights is not self._written.get("best"))
        ):
            _save_npz(os.path.join(self.directory, "best.npz"), self.checkpoint.best_weights)
            self.state["best"] = self.checkpoint.best
            self._written["best"] = self.checkpoint.best_weights
        stopper = self.early_stopping
        if stopper is not None:
            if stopper.best_weights is not None and stopper.best_weights is not self._written.get("early_stopping"):
                _save_npz(os.path.join(self.directory, "early_stopping.npz"), stopper.best_weights)
                self._written["early_stopping"] = stopper.best_weights
            self.state["early_stopping"] = {
                "wait": int(stopper.wait),
                "best": float(stopper.best),
                "best_epoch": int(stopper.best_epoch),
            }
        variables = list(self.fit_model.variables) + list(self.fit_model.optimizer.variables)
        _save_npz(os.path.join(self.directory, "variables.npz"), [np.asarray(v.numpy()) for v in variables])

        def write(tmp):
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.state, f, indent=2)

        _write_atomic(os.path.join(self.directory, "state.json"), write)
