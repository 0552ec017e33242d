"""The callbacks of a phase: early stopping, best weights over all phases, CSV logs, TensorBoard."""

import json
import math
import os

import keras

from keras_tl.core.contract.choices import MONITORS
from keras_tl.core.contract.errors import ConfigError, TrainingDivergedError

# Early stopping waits at least this many optimizer steps: on a few labels an epoch is one or two
# steps, and 3 epochs without a better validation figure say nothing yet.
PATIENCE_STEPS = 40


def patience_epochs(config, steps_per_epoch=None):
    """`config.early_stopping_patience` epochs, and at least `PATIENCE_STEPS` steps' worth."""
    if not steps_per_epoch:
        return config.early_stopping_patience
    return max(config.early_stopping_patience, math.ceil(PATIENCE_STEPS / steps_per_epoch))


def make_callbacks(config, run_dir, phase, checkpoint=None, append=False, steps_per_epoch=None):
    """Early stopping (restores best), best checkpoint, CSV log, optional plateau and TensorBoard."""
    callbacks = []
    if config.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=config.monitor,
                mode=_mode(config.monitor),
                patience=patience_epochs(config, steps_per_epoch),
                restore_best_weights=True,
            )
        )
    if config.schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=config.monitor, mode=_mode(config.monitor), factor=0.3, patience=2
            )
        )
    if run_dir:
        if checkpoint is not None:
            callbacks.append(checkpoint)
        callbacks.append(keras.callbacks.CSVLogger(os.path.join(run_dir, f"history_{phase}.csv"), append=append))
        if config.tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard", phase)))
    return callbacks


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of `target` from its best epoch over all phases.

    "Best" is the lowest validation loss, or with `monitor="val_accuracy"` the highest validation
    accuracy (ties: the lower validation loss). Accuracy suits a network trained from scratch on
    few labels: its first epochs predict near-uniform probabilities, whose loss is lower than that
    of a later model that classifies well but is confidently wrong on a few files.

    One instance spans all phases, whichever model is being fit (in a feature-cached phase 1 it
    is the head alone, but `target` is the whole model). The best weights are held in memory and
    written to `filepath` at the end of each phase in which they improved, not every epoch
    (a 2M-parameter model's file costs ~0.3 s to write, more than a cached-features epoch).

    Args:
        filepath: str. A `.weights.h5` file.
        target: keras.Model. The model whose weights are kept.
        monitor: str. "val_loss" or "val_accuracy" (`keras_tl.core.contract.config.MONITORS`). Defaults to
            "val_loss".
    """

    def __init__(self, filepath, target, monitor="val_loss"):
        super().__init__()
        if monitor not in MONITORS:
            raise ConfigError(f"`monitor` must be one of {list(MONITORS)}. Received: monitor={monitor!r}")
        self.filepath = filepath
        self.target = target
        self.monitor = monitor
        self.best = None  # A score, lower is better: [val_loss] or [-val_accuracy, val_loss].
        self.best_weights = None
        self._dirty = False

    def on_epoch_end(self, epoch, logs=None):
        score = self.score(logs or {})
        if score is not None and (self.best is None or score < self.best):
            self.best = score
            self.best_weights = self.target.get_weights()
            self._dirty = True

    def on_train_end(self, logs=None):
        if self._dirty:
            current = self.target.get_weights()
            self.target.set_weights(self.best_weights)
            self.target.save_weights(self.filepath)
            self.target.set_weights(current)
            self._dirty = False

    def score(self, logs):
        """The epoch's score (a list, lower is better), or None if it was not validated."""
        loss = logs.get("val_loss")
        if loss is None:
            return None
        if self.monitor == "val_loss":
            return [float(loss)]
        accuracy = logs.get("val_accuracy")
        return None if accuracy is None else [-float(accuracy), float(loss)]

    def load(self, best, weights):
        """Puts back a best saved earlier (a resumed run); best.weights.h5 is rewritten at the phase end."""
        self.best, self.best_weights, self._dirty = best, weights, True

    def start_over(self):
        """Forgets the best so far: only the epochs to come compete (a domain-adapted phase, whose
        alignment costs some source validation loss that an unadapted epoch would always win)."""
        self.best, self.best_weights, self._dirty = None, None, False

    def restore(self):
        """Sets the target to its best weights, if any epoch was validated."""
        if self.best_weights is not None:
            self.target.set_weights(self.best_weights)


class DivergenceGuard(keras.callbacks.Callback):
    """Stops at the first batch whose loss is NaN, infinite or exploded, and puts back the last good weights.

    "Exploded": more than `EXPLOSION` times the phase's first batch loss (at least 0.1 counted for
    it), i.e. orders of magnitude above where the phase started; a loss that only rises a little is
    left to early stopping. Unlike `keras.callbacks.TerminateOnNaN`, the weights a diverged step wrote
    never stay in the model: those of the last finished epoch (or of the phase's start) are restored,
    and `failure` says where it happened, for `fine_tune` to report and raise.

    Args:
        target: keras.Model. The model being fit (the head alone in a feature-cached phase).
        phase: str. "phase1", "phase2" or "full", for the report.
        learning_rate: float. The phase's peak rate, for the report.
    """

    EXPLOSION = 100.0

    def __init__(self, target, phase, learning_rate):
        super().__init__()
        self.target, self.phase, self.learning_rate = target, phase, learning_rate
        # What stopped it; the first epoch's loss; the last good weights.
        self.failure = self.reference = self._good = None
        self._epoch = 0

    def on_train_begin(self, logs=None):
        self._good = self.target.get_weights()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.failure is None:
            self._good = self.target.get_weights()

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if self.failure is not None or loss is None:
            return
        loss = float(loss)
        if math.isfinite(loss) and self.reference is None:
            self.reference = loss
        limit = self.EXPLOSION * max(self.reference or 0.0, 0.1)
        if math.isfinite(loss) and loss <= limit:
            return
        self.failure = {
            "phase": self.phase,
            "epoch": self._epoch + 1,
            "batch": batch + 1,
            "loss": str(loss),
            "learning_rate": float(self.learning_rate),
        }
        if math.isfinite(loss):
            self.failure["exploded_from"] = self.reference
        self.target.set_weights(self._good)
        self.model.stop_training = True


def _mode(monitor):
    """ "min" for a loss, "max" for an accuracy: named, since Keras cannot tell for a custom metric
    (the multi-task heads' pooled accuracy)."""
    return "min" if monitor.endswith("loss") else "max"


def diverged(model, failure, run_dir):
    """Keeps the last good weights and the failure in the run directory, then raises."""
    rate = "head_lr" if failure["phase"] in ("phase1", "full") else "fine_tune_lr"
    kept = ""
    if run_dir:
        model.save_weights(os.path.join(run_dir, "last_good.weights.h5"))
        with open(os.path.join(run_dir, "failure.json"), "w", encoding="utf-8") as f:
            json.dump({**failure, "rate_setting": rate, "kept": "last_good.weights.h5"}, f, indent=2)
        kept = (
            f" The weights of the last good epoch are in {os.path.join(run_dir, 'last_good.weights.h5')} "
            "and no model was saved; failure.json records this."
        )
    became = (
        f"exploded to {float(failure['loss']):.3g} (from {failure['exploded_from']:.3g} at the phase's start)"
        if "exploded_from" in failure
        else f"became {failure['loss']}"
    )
    raise TrainingDivergedError(
        f"Training diverged: the loss {became} in {failure['phase']}, epoch {failure['epoch']}, "
        f"batch {failure['batch']}, at learning rate {failure['learning_rate']:g}.{kept} "
        f"Try a lower rate, e.g. {rate}={failure['learning_rate'] / 10:g}."
    )
