"""`auto`'s head search: phase 1 on cached backbone features, one KerasTuner trial per set of head values.

A trial builds the head `train` would build for its values and trains it as `train`'s phase 1 does (the
same schedule, early stopping and class weights, on the same cached features), so a value that wins
here is a value `train` reproduces; it costs seconds. The first trial is the config as given.

Why KerasTuner and not Optuna: it is Keras' own tuner, its trials are Keras fits with Keras callbacks,
and its oracle keeps its state as JSON in the project folder, so a killed search resumes by opening
that folder again (Optuna needs a database storage for that). Optuna's pruners matter less here:
a trial on cached features costs seconds.
"""

import contextlib
import dataclasses
import io
import os
import time

import keras
import keras_tuner
import numpy as np

from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.contract.errors import ConfigError, KerasTLError
from keras_tl.core.contract.fields import concrete_autos
from keras_tl.core.data import class_weights, multitask_labels
from keras_tl.core.data.pipelines import feature_dataset, labels_of_targets
from keras_tl.core.models.classifier import Classifier
from keras_tl.core.models.heads import HeadSpec
from keras_tl.core.models.schedules import learning_rate
from keras_tl.core.train import features
from keras_tl.core.train.callbacks import make_callbacks
from keras_tl.core.train.training import Supervised
from keras_tl.core.utils.log import log

# The head's search space; the config's own values are always tried first.
SEARCH = {
    "head_lr": (1e-4, 3e-2),
    "dropout": (0.0, 0.5, 0.1),
    "dense_units": ("", "128", "512"),  # hidden layers, as "256,128" (KerasTuner's choices are scalars)
    "label_smoothing": (0.0, 0.1),
    "balance": ("class_weights", "none"),
    "head_norm": (False, True),
}
METRICS = ("val_score", "val_accuracy", "val_cross_entropy", "epochs", "seconds")


def search(config, spec, modality, splits, class_names, folder, *, deadline, max_trials):
    """Searches the head of one backbone until `deadline` (`time.perf_counter()`) or `max_trials`; trial 0
    always runs. KerasTuner keeps its trials in `folder`/tuner, so a killed search resumes there.

    Returns:
        dict: "backbone", "values" (the best trial's TrainConfig fields), "score", "val_accuracy",
        "first_val_accuracy" (trial 0's), "trials" (a row per finished trial, in order).
    """
    os.makedirs(folder, exist_ok=True)
    cached = cached_features(config, spec, modality, splits, class_names, folder)
    hypermodel = HeadSearch(config, cached, class_names, modality)
    oracle = Oracle(
        first=hypermodel.first_values(),
        deadline=deadline,
        objective=keras_tuner.Objective("val_score", "max"),
        max_trials=max_trials,
        seed=config.seed,
    )
    _drop_torn(os.path.join(folder, "tuner"))
    with contextlib.redirect_stdout(io.StringIO()):  # KerasTuner prints "Reloading Tuner from ..." itself.
        tuner = Tuner(oracle=oracle, hypermodel=hypermodel, directory=folder, project_name="tuner", overwrite=False)
    tuner.oracle.deadline = deadline  # (A reloaded oracle keeps its own state, not this call's deadline.)
    finished = sum(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
    log.info(
        f"auto: {config.backbone}: head search on {len(cached[0]):,} cached training features, "
        f"{max(0.0, deadline - time.perf_counter()):.0f} s"
        + (f"; resuming after {finished} finished trials ({folder})" if finished else "")
    )
    try:
        tuner.search(verbose=0)
    except keras_tuner.errors.FatalError as error:
        if isinstance(error.__cause__, KerasTLError):
            raise error.__cause__ from None
        raise
    done = sorted((t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"), key=lambda t: int(t.trial_id))
    if not done:
        raise ConfigError(f"The head search of {config.backbone} finished no trial (every trial failed: {folder}).")
    best = max(done, key=lambda t: t.score)
    rows = [
        {
            "backbone": config.backbone,
            "trial": int(t.trial_id),
            **{k: t.hyperparameters.values[k] for k in SEARCH if k in t.hyperparameters.values},
            **{k: float(t.metrics.get_last_value(k)) for k in METRICS},
        }
        for t in done
    ]
    return {
        "backbone": config.backbone,
        "values": hypermodel.config_values(best.hyperparameters.values),
        "score": float(best.score),
        "val_accuracy": float(best.metrics.get_last_value("val_accuracy")),
        "first_val_accuracy": rows[0]["val_accuracy"],
        "trials": rows,
    }


def _drop_torn(project):
    """KerasTuner writes its JSON files in place: a kill mid-write leaves one its reload cannot parse, and
    its oracle refers to every trial. Then the search starts over (on the cached features), not a crash."""
    import glob
    import json
    import shutil

    for path in glob.glob(os.path.join(project, "*.json")) + glob.glob(os.path.join(project, "trial_*", "*.json")):
        try:
            with open(path, encoding="utf-8") as f:
                json.load(f)
        except (OSError, ValueError):
            log.info(f"auto: {path} was cut short by a kill; the head search starts over")
            shutil.rmtree(project)
            return


def cached_features(config, spec, modality, splits, class_names, folder):
    """The frozen backbone's training and validation features, as `train` caches them (`cached_phase`);
    kept in `folder`/features.npz (read back without pickle) for a resumed search."""
    path = os.path.join(folder, "features.npz")
    if os.path.isfile(path):
        with np.load(path, allow_pickle=False) as saved:
            return (*(saved[k] for k in ("x", "y", "val_x", "val_y")), int(saved["steps"]), bool(saved["repeated"]))
    keras.utils.set_random_seed(config.seed)
    classifier = Classifier.build(modality, spec, config, len(class_names), class_names)

    def train_dataset(seed=config.seed):
        return modality.dataset(classifier, splits["train"], config, training=True, seed=seed)

    cached = features.cached_phase(classifier, config, splits, train_dataset)
    if cached is None:
        raise ConfigError(
            "`auto` searches the head on cached features: it needs feature_cache=True and, with "
            f"augmentation, augmented_views >= 1. Received: feature_cache={config.feature_cache!r}, "
            f"augment={config.augment!r}, augmented_views={config.augmented_views!r}"
        )
    x, y, val_x, val_y = cached.arrays
    tmp = path + ".tmp.npz"
    np.savez(tmp, x=x, y=y, val_x=val_x, val_y=val_y, steps=cached.steps_per_epoch, repeated=cached.repeated)
    os.replace(tmp, path)
    keras.backend.clear_session()
    return x, y, val_x, val_y, cached.steps_per_epoch, cached.repeated


def describe(values):
    return ", ".join(f"{k}={v}" for k, v in values.items())


def table(trials):
    """The trials as Markdown lines."""
    lines = [
        "| backbone | trial | " + " | ".join(SEARCH) + " | val accuracy | val cross-entropy | epochs | seconds |",
        "|---" * (len(SEARCH) + 6) + "|",
    ]
    for t in trials:
        values = " | ".join(f"{t[k]:.3g}" if isinstance(t.get(k), float) else str(t.get(k)) for k in SEARCH)
        lines.append(
            f"| {t['backbone']} | {t['trial']} | {values} | {100 * t['val_accuracy']:.1f}% | "
            f"{t['val_cross_entropy']:.4f} | {t['epochs']:.0f} | {t['seconds']:.1f} |"
        )
    return lines


def val_scores(targets, probabilities, problem):
    """(accuracy, cross-entropy) of `probabilities` on one-hot / binary / multi-hot `targets`, unsmoothed."""
    p = np.clip(np.asarray(probabilities, np.float64), 1e-7, 1 - 1e-7)
    t = np.asarray(targets, np.float64).reshape(p.shape)
    if problem == "multiclass":
        return float(np.mean(p.argmax(-1) == t.argmax(-1))), float(-np.mean(np.sum(t * np.log(p), axis=-1)))
    accuracy = float(np.mean((p > 0.5) == (t > 0.5)))
    return accuracy, float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))


class HeadSearch(keras_tuner.HyperModel):
    """A KerasTuner hypermodel whose trial is phase 1 on cached features: the head `train` would build
    for those values, trained as `train` trains it (same schedule, early stopping, class weights, batches),
    from its own initialization (`train` draws the head's after the backbone's)."""

    def __init__(self, config, cached, class_names, modality):
        super().__init__(name="head")
        self.config, self.class_names, self.modality = config, list(class_names), modality
        self.x, self.y, self.val_x, self.val_y, self.steps, self.repeated = cached
        self.labels = labels_of_targets(self.y, config.problem)
        self.single_label = config.problem in ("multiclass", "binary")
        self.hp = keras_tuner.HyperParameters()
        self.declare_hyperparameters(self.hp)

    def declare_hyperparameters(self, hp):
        """The search space, widened where needed so that the config's own values are in it (trial 0)."""
        config = self.config
        low, high = SEARCH["head_lr"]
        hp.Float("head_lr", min(low, config.head_lr), max(high, config.head_lr), sampling="log", default=config.head_lr)
        low, high, _ = SEARCH["dropout"]
        hp.Float("dropout", low, max(high, config.dropout), default=config.dropout)
        units = ",".join(str(u) for u in config.dense_units)
        hp.Choice("dense_units", list(dict.fromkeys((units,) + SEARCH["dense_units"])), default=units)
        hp.Choice(
            "label_smoothing",
            sorted(set(SEARCH["label_smoothing"]) | {self.config.label_smoothing}),
            default=self.config.label_smoothing,
        )
        if self.single_label:
            hp.Choice(
                "balance", list(dict.fromkeys((self.config.balance,) + SEARCH["balance"])), default=self.config.balance
            )
        hp.Boolean("head_norm", default=self.config.head_norm)

    def build(self, hp):  # (KerasTuner builds once at start-up; a trial builds its head in `trial`.)
        return None

    def first_values(self):
        """The config as given, as the search's values: its first trial."""
        return {hp.name: hp.default for hp in self.hp.space}

    def config_values(self, values):
        """TrainConfig fields for a trial's values."""
        fields = {k: v for k, v in values.items() if k in SEARCH}
        fields["dense_units"] = [int(u) for u in str(values["dense_units"]).split(",") if u]
        fields["head_lr"] = float(values["head_lr"])
        fields["dropout"] = round(float(values["dropout"]), 3)
        fields["head_norm"] = bool(values["head_norm"])
        return fields

    def trial(self, values):
        """Trains one head; returns its validation figures. A keras-tl error (a value the config refuses)
        ends the search with its one-line message, not as a failed trial."""
        try:
            return self._trial(values)
        except KerasTLError as error:
            raise keras_tuner.errors.FatalError(str(error)) from error

    def _trial(self, values):
        started = time.perf_counter()
        config = TrainConfig.from_dict({**self.config.to_dict(), **self.config_values(values)})
        steps = self.steps  # One training set's worth an epoch, as `train`'s cached phase (views repeat).
        config = dataclasses.replace(config, **concrete_autos(config, steps, self.modality.default_fine_tune_lr))
        keras.backend.clear_session()
        keras.utils.set_random_seed(config.seed)
        kinds = multitask_labels.kinds_for(config.problem, self.class_names, self.labels)
        inputs = keras.Input((self.x.shape[1],))
        head = keras.Model(inputs, HeadSpec.from_config(config, len(self.class_names), self.class_names, kinds)(inputs))
        if config.head_norm:
            features.standardize_from(head, self.x)
        rate = learning_rate(config, config.head_lr, steps * config.head_epochs)
        Supervised().compile(
            head, learning_rate=rate, problem=config.problem, optimizer=config.optimizer, config=config
        )
        train = feature_dataset(  # As `features.cached_phase` batches them.
            self.x,
            self.y,
            np.zeros(len(self.x), np.int32) if self.repeated else self.labels,
            batch_size=config.batch_size,
            training=True,
            oversample=config.balance == "oversample" and not self.repeated,  # (Views come oversampled.)
            seed=config.seed,
            repeat=self.repeated,
        )
        val = feature_dataset(
            self.val_x, self.val_y, labels_of_targets(self.val_y, config.problem), batch_size=config.batch_size
        )
        weights = (
            class_weights(self.labels, len(self.class_names))
            if config.balance == "class_weights" and self.single_label
            else None
        )
        callbacks = [keras.callbacks.TerminateOnNaN()] + make_callbacks(config, None, "phase1", steps_per_epoch=steps)
        history = head.fit(
            train,
            validation_data=val,
            epochs=config.head_epochs,
            steps_per_epoch=steps if self.repeated else None,
            class_weight=weights,
            callbacks=callbacks,
            verbose=0,
            shuffle=False,
        )
        probabilities = head.predict(self.val_x, batch_size=256, verbose=0)
        if not np.all(np.isfinite(probabilities)):
            accuracy, entropy = 0.0, float("inf")
        else:
            accuracy, entropy = val_scores(self.val_y, probabilities, config.problem)
        entropy = min(entropy, 10.0)
        return {
            # Accuracy first: the cross-entropy term is below one validation label's worth of accuracy, so it
            # only orders ties (common on small validation splits), the better-calibrated head first.
            "val_score": accuracy - entropy / (10.0 * self.val_y.size + 10.0),
            "val_accuracy": accuracy,
            "val_cross_entropy": entropy,
            "epochs": float(len(history.epoch)),
            "seconds": time.perf_counter() - started,
        }


class Oracle(keras_tuner.oracles.BayesianOptimizationOracle):
    """Bayesian optimization whose first trial is the config as given, stopped at a deadline."""

    def __init__(self, first, deadline, **kwargs):
        super().__init__(**kwargs)
        self.first, self.deadline = first, deadline

    def populate_space(self, trial_id):
        if not self.trials:  # Always tried, whatever the time: what the search must beat.
            return {"status": "RUNNING", "values": dict(self.first)}
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            return {"status": "STOPPED", "values": None}
        return super().populate_space(trial_id)


class Tuner(keras_tuner.Tuner):
    """Trials are `HeadSearch.trial`; nothing is saved per trial but KerasTuner's own JSON."""

    def run_trial(self, trial, *args, **kwargs):
        return self.hypermodel.trial(trial.hyperparameters.values)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        done = [t for t in self.oracle.trials.values() if t.status == "COMPLETED"]
        if trial.status != "COMPLETED" or not done:
            log.info(
                f"auto: trial {int(trial.trial_id)} {trial.status.lower()}: {(trial.message or '').strip()[-300:]}"
            )
            return
        metrics = trial.metrics
        best = max(t.metrics.get_last_value("val_accuracy") for t in done)
        log.info(
            f"auto: trial {int(trial.trial_id)}: validation accuracy {100 * metrics.get_last_value('val_accuracy'):.1f}% "
            f"(best {100 * best:.1f}%), {metrics.get_last_value('epochs'):.0f} epochs, "
            f"{metrics.get_last_value('seconds'):.1f} s; {describe(self.hypermodel.config_values(trial.hyperparameters.values))}"
        )

    def save_model(self, trial_id, model, step=0):
        return None

    def load_model(self, trial):
        raise NotImplementedError("`auto` keeps the chosen values, not the trial's weights")
