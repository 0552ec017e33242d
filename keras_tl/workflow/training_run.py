"""The whole run in order, for every modality: check config -> data -> classifier -> fine-tune -> evaluate.

Only this package and `cli.py` know the whole order. What differs per modality is asked of the
modality object (`keras_tl.core.contract.modality`); the run directory is `keras_tl.workflow.rundir`'s.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from typing import TYPE_CHECKING

import keras
import numpy as np

from keras_tl.core.adapt import adaptation
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.data import class_weights, multitask_labels
from keras_tl.core.evaluation import operating_point, plots
from keras_tl.core.evaluation.evaluate import evaluate_predictions, format_metrics
from keras_tl.core.evaluation.report import write_report
from keras_tl.core.models.classifier import Classifier
from keras_tl.core.models.heads import probabilities_of
from keras_tl.core.train import distribute, features
from keras_tl.core.train.training import Supervised, fine_tune
from keras_tl.core.utils import quiet
from keras_tl.core.utils.log import log
from keras_tl.workflow import rundir as run
from keras_tl.workflow.checks import (  # noqa: F401
    check_config,
    load_target,
    prepare,
    resolve_config,
    resolve_problem,
    splits_of,
)
from keras_tl.workflow.rate_finder import find_rates

if TYPE_CHECKING:
    from keras_tl.core.data import Source
    from keras_tl.workflow.rundir import RunResult


def train(
    config: TrainConfig,
    source: Source | None = None,
    *,
    target: Source | None = None,
    overwrite: bool = False,
    resume: bool = False,
) -> RunResult:
    """Runs a whole training job (images or text) and writes its run directory.

    Args:
        config: TrainConfig. Checked before any work starts.
        source: a source from Python (`keras_tl.image.data.from_arrays`,
            `keras_tl.datasets.load_digits()`, `keras_tl.text.data.from_texts`); defaults to
            reading `config.data`.
        target: unlabelled target-domain data for `config.domain_adaptation`, a source as `source`
            is (its labels are not used); defaults to reading `config.target_data`.
        overwrite: bool. Replace a previous run in `config.out` (its files are removed first).
            Without it, a run directory holding another config or a finished run is refused with what
            it holds, and an unfinished run of the same config resumes. Defaults to False.
        resume: bool. Require resuming (fail if `config.out` holds nothing to resume). Defaults to False.

    Returns:
        A `keras_tl.workflow.rundir.RunResult`.

    Example:
    >>> config = keras_tl.TrainConfig(backbone="mobilenet_v2", weights="none", image_size=32,
    ...                               head_epochs=1, fine_tune_epochs=1, out="runs/demo")
    >>> result = keras_tl.train(config, keras_tl.datasets.load_digits())
    """
    started = time.perf_counter()
    # A multi-worker strategy must exist before TensorFlow runs any op, device start-up included.
    quiet.start_tensorflow(first=lambda: distribute.start(getattr(config, "distribute", None)))
    modality, spec, source, splits, resolved = prepare(config, source, target)
    if resolved.domain_adaptation != "none":
        target = load_target(resolved, modality, target)
        log.info(
            f"domain adaptation: {resolved.domain_adaptation}, {len(target.labels):,} target-domain "
            f"{modality.unit} (labels unused)"
        )
    if not distribute.writes_run_directory(resolved.distribute):
        return _run_as_worker(resolved, modality, spec, source, splits, target, overwrite, resume, started)
    with run.hold(resolved.out):  # One process writes a run directory at a time.
        resuming = run.check_run_dir(resolved.out, resolved, overwrite=overwrite, resume=resume)
        return _run(resolved, modality, spec, source, splits, target, resuming, started)


def _run_as_worker(resolved, modality, spec, source, splits, target, overwrite, resume, started):
    """A multi-worker cluster's non-chief worker: the same steps as the chief, in step with it, written
    into a private temporary folder that is removed at the end; `config.out` is the chief's alone.

    It resumes when the chief does: it starts from a copy of the chief's unfinished run (the resume
    state is read there, never written), so both continue from the same epoch.
    """
    chief = resolved.out
    with tempfile.TemporaryDirectory(prefix="keras_tl_worker_") as private:
        own = dataclasses.replace(resolved, out=os.path.join(private, "run"))
        chief_resumes = not overwrite and not run.is_finished(chief) and run.resume_lib.load_state(chief) is not None
        if chief_resumes:
            shutil.copytree(chief, own.out, ignore=shutil.ignore_patterns(run.LOCK_FILE))
            own.save(os.path.join(own.out, "config.yaml"))  # The same config, but for `out`.
        resuming = run.check_run_dir(own.out, own, resume=resume)
        result = _run(own, modality, spec, source, splits, target, resuming, started)
    log.info(f"worker done; the chief wrote the run directory {chief}")
    return dataclasses.replace(result, run_dir=chief, config=resolved)


def _run(resolved, modality, spec, source, splits, target, resuming, started):
    """`train` once its run directory is its own: everything it writes, `DONE` last."""
    run_dir = run.start(resolved, source, splits, modality.unit)
    effective, found = find_rates(resolved, source, run_dir)  # head_lr / fine_tune_lr "find" -> numbers
    result, metrics = fit_and_evaluate(
        effective, modality, spec, splits, source.class_names, run_dir, resume=resuming, target=target
    )
    if found:
        metrics["found_rates"] = found
    if resolved.compare_scratch:
        log.info("--compare-scratch: the same architecture from random weights")
        scratch_config = scratch_baseline(effective)
        _, scratch = fit_and_evaluate(scratch_config, modality, spec, splits, source.class_names, scratch_config.out)
        metrics["scratch"] = {k: scratch[k] for k in ("test_accuracy", "macro_f1", "train_seconds")}
        metrics["transfer_minus_scratch"] = metrics["test_accuracy"] - scratch["test_accuracy"]
    if source.licence:
        metrics["data_licence"] = source.licence
    seconds = time.perf_counter() - started
    metrics["total_seconds"] = round(seconds, 1)
    run.write_json(run_dir, "metrics.json", metrics)
    write_report(
        run_dir, resolved, metrics, metrics["plots"], input_size=modality.input_size(resolved), unit=modality.unit
    )
    run.finish(run_dir)  # Last: a run killed before this line is not finished, and resumes.
    log.info(format_metrics(metrics))
    if "scratch" in metrics:
        log.info(
            f"scratch accuracy {metrics['scratch']['test_accuracy']:.4f}; transfer - scratch "
            f"{100 * metrics['transfer_minus_scratch']:+.1f} points"
        )
    task_, histories = result
    return run.RunResult(run_dir, resolved, task_.model, histories, metrics, source.class_names, seconds, task_)


def scratch_baseline(config):
    """The from-scratch twin of a config: random weights, everything trainable, same total epochs."""
    return TrainConfig.from_dict(
        {
            **config.to_dict(),
            "weights": "none",
            "strategy": "full",
            "head_epochs": config.head_epochs + config.fine_tune_epochs,
            "fine_tune_epochs": 0,
            "compare_scratch": False,
            "out": os.path.join(config.out, "scratch"),
            "domain_adaptation": "none",
            "target_data": None,  # The baseline of transfer: no adaptation either.
        }
    )


def fit_and_evaluate(config, modality, spec, splits, class_names, run_dir, resume=False, target=None):
    """Builds, trains and evaluates one classifier; writes its history, model, metrics and plots.

    `target`: the target-domain source of a domain-adapted run (`config.domain_adaptation`).

    Returns:
        `((classifier, histories), metrics)`.
    """
    started = time.perf_counter()
    os.makedirs(run_dir, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    distribute.determinism(config.deterministic)

    def cache(split):
        if config.cache == "disk":
            os.makedirs(os.path.join(run_dir, "cache"), exist_ok=True)
            return os.path.join(run_dir, "cache", split)
        return config.cache

    with distribute.precision(config.mixed_precision), distribute.scope(config.distribute):
        # From every split's labels, so a resumed run builds the same heads.
        kinds = multitask_labels.kinds_for(
            config.problem, class_names, np.concatenate([s.labels for s in splits.values()])
        )
        classifier = Classifier.build(modality, spec, config, len(class_names), class_names, kinds)

        def train_dataset(seed=config.seed):
            return modality.dataset(classifier, splits["train"], config, training=True, seed=seed, cache=cache("train"))

        val = modality.dataset(classifier, splits["val"], config, cache=cache("val"))
        test = modality.dataset(classifier, splits["test"], config, cache=cache("test"))
        weights = None
        if config.balance == "class_weights" and config.problem == "multitask":
            weights = multitask_labels.class_weights(splits["train"].labels, class_names, kinds)
        elif config.balance == "class_weights" and config.problem != "multilabel":
            # Counted on the rows `fit` sees (an audio file is one row per window), not on the items.
            weights = class_weights(modality.row_labels(classifier, splits["train"]), len(class_names))
        objective = None
        if config.domain_adaptation != "none":
            objective = adapted_objective(classifier, config, target, cache("target"), splits["train"].labels)
            plain_train = modality.dataset(classifier, splits["train"], config, cache=cache("train"))
            objective.before(classifier.model, plain_train.map(lambda x, y: x))
        cached = features.cached_phase(classifier, config, splits, train_dataset)
        timings = {}
        histories = fine_tune(
            classifier,
            train_dataset(),
            val,
            config,
            run_dir=run_dir,
            class_weight=weights,
            cached=cached,
            timings=timings,
            resume=resume,
            objective=objective,
            train_phase2=train_dataset() if config.strategy == "two_phase" else None,
        )
        if objective is not None:
            objective.after(classifier.model)
    run.write_json(run_dir, "history.json", histories)
    run.save_classifier(run_dir, classifier)
    log.info("evaluating on the test split")
    probabilities = modality.predict_split(classifier, splits["test"], config, dataset=test)
    evaluation = evaluate_predictions(splits["test"].labels, probabilities, class_names, config.problem, kinds)
    metrics = {
        "test_accuracy": evaluation["test_accuracy"],
        "macro_f1": evaluation["macro_f1"],
        "train_seconds": round(time.perf_counter() - started, 1),
        "train_examples": len(splits["train"]),
        "phase_seconds": {k: round(v, 2) for k, v in timings.items()},
        **evaluation,
    }
    if weights and config.problem != "multitask":  # (A multi-task run's are per head: sample weights by head.)
        metrics["class_weights"] = {class_names[i]: w for i, w in weights.items()}
    if config.domain_adaptation != "none":
        metrics["domain_adaptation"] = {"method": config.domain_adaptation, "target_examples": len(target.labels)}
        if objective.shifts:
            metrics["domain_adaptation"]["bias_shifts"] = {
                k: np.round(v, 4).tolist() for k, v in objective.shifts.items()
            }
    if operating_point.requested(config):
        metrics["operating_point"] = choose_operating_point(classifier, config, splits, val, probabilities, run_dir)
    metrics["plots"] = plot_run(run_dir, classifier, histories, metrics, splits["test"], probabilities)
    run.write_json(run_dir, "metrics.json", metrics)
    return (classifier, histories), metrics


def choose_operating_point(classifier, config, splits, val, test_probabilities, run_dir):
    """A binary run's decision threshold for `config.target_recall` / `target_precision`, chosen on the
    validation split and measured on the test split; kept in the run (`operating_point.json`) for
    `predict` and every export. Returns it."""
    val_probabilities = probabilities_of(
        classifier.modality.predict_split(classifier, splits["val"], config, dataset=val)
    )
    point = operating_point.choose(
        splits["val"].labels,
        val_probabilities,
        classifier.class_names,
        target_recall=config.target_recall,
        target_precision=config.target_precision,
        positive_class=config.positive_class,
    )
    point["test"] = operating_point.measure(
        point, splits["test"].labels, probabilities_of(test_probabilities), classifier.class_names
    )
    classifier.operating_point = point
    run.write_json(run_dir, operating_point.FILE, point)
    ((name, goal),) = point["target"].items()
    log.info(
        f"operating point for {name} {goal} of {point['positive_class']!r}: threshold {point['threshold']:.4f}"
        f"{'' if point['reached'] else ' (target not reached on validation)'}; test "
        + operating_point.describe(point["test"])
    )
    return point


def adapted_objective(classifier, config, target, cache, source_labels=None):
    """The `keras_tl.core.adapt.adaptation.Adapted` objective of `config.domain_adaptation` on `target`'s inputs.

    The target pipeline is the training pipeline (shuffled, augmented as the source) for the methods
    that train on it, the plain one for AdaBN's statistics; its labels are placeholders, never read.
    """
    split = target.as_split()
    shape = (len(split),) + (
        (len(classifier.class_names),) if classifier.problem in ("multilabel", "multitask") else ()
    )
    split = dataclasses.replace(split, labels=np.zeros(shape, np.int64))
    plain = TrainConfig.from_dict({**config.to_dict(), "balance": "none"})
    training = config.domain_adaptation not in ("adabn", "prior")
    inputs = classifier.modality.dataset(
        classifier, split, plain, training=training, seed=config.seed + 1, cache=cache
    ).map(lambda x, y: x)
    prior = (
        adaptation.class_prior(source_labels, classifier.class_names, classifier.problem, classifier.head_kinds)
        if config.domain_adaptation == "prior"
        else None
    )
    return adaptation.Adapted(Supervised(), config.domain_adaptation, inputs, config.adaptation_weight, prior)


def plot_run(run_dir, classifier, histories, metrics, test, probabilities):
    """Learning curves, per-class F1, and (single-label) the confusion matrix and the most confidently
    wrong test examples (the modality draws them). Returns `{title: file name}`."""
    files = {"Learning curves": "learning_curves.png", "Per-class F1": "per_class_f1.png"}
    plots.learning_curves(histories, os.path.join(run_dir, files["Learning curves"]))
    plots.per_class_f1(metrics["per_class"], os.path.join(run_dir, files["Per-class F1"]))
    if classifier.problem == "multitask":
        for head, row in metrics["heads"].items():
            if "confusion_matrix" not in row:  # A multi-label head.
                continue
            files[f"Confusion matrix: {head}"] = f"confusion_matrix_{head}.png"
            plots.confusion_matrix(
                row["confusion_matrix"],
                list(row["per_class"]),
                os.path.join(run_dir, files[f"Confusion matrix: {head}"]),
            )
    elif classifier.problem != "multilabel":
        files["Confusion matrix"] = "confusion_matrix.png"
        plots.confusion_matrix(
            metrics["confusion_matrix"], classifier.class_names, os.path.join(run_dir, files["Confusion matrix"])
        )
        files[f"Most confidently wrong test {classifier.modality.unit}"] = confident_errors(
            classifier, test, probabilities_of(probabilities), os.path.join(run_dir, "confident_errors")
        )
    return files


def confident_errors(classifier, test, probabilities, path_stem):
    """The most confidently wrong test examples: a PNG grid of the modality's `pictures`, or what a
    modality without pictures writes itself. Returns the file name."""
    worst = plots.most_confident_errors(test.labels, probabilities, 16)
    pictures = classifier.modality.pictures(classifier, test.subset(worst).items)
    if pictures is None:
        return classifier.modality.confident_errors(classifier, test, probabilities, path_stem)
    path = f"{path_stem}.png"
    plots.confident_errors(pictures, test.labels[worst], probabilities[worst], classifier.class_names, path)
    return os.path.basename(path)


@quiet.tensorflow_started
def show_batch(config: TrainConfig, path: str, source: Source | None = None, count: int = 16) -> str:
    """Writes a PNG grid of augmented training samples with their (possibly mixed) labels.

    Args:
        config: TrainConfig. Its data, image size, augmentation and seed are used.
        path: str. The PNG to write.
        source: a source from Python. Defaults to loading `config.data`.
        count: int. How many samples. Defaults to 16.
    """
    config = dataclasses.replace(config, weights="none")  # Samples are drawn before any backbone: no weights needed.
    modality, spec = check_config(config, source)
    if not modality.batch_preview:
        raise ConfigError(
            f"`show-batch` draws augmented training samples (images, audio spectrograms); a {modality.name} run has none to show. "
            f"Received: backbone={config.backbone!r} ({modality.name})."
        )
    source = source if source is not None else modality.load_source(config)
    splits = splits_of(source, config)
    classifier = resolve_problem(config, len(source.class_names), multilabel=source.labels.ndim == 2)
    shown = TrainConfig.from_dict(
        {
            **resolve_config(config, modality, spec, classifier).to_dict(),
            "weights": "none",
            "augment_on": "data",
            "batch_size": count,
        }
    )
    built = Classifier.build(modality, spec, shown, len(source.class_names), source.class_names)
    dataset = modality.dataset(built, splits["train"], shown, training=True, cache="none")
    return modality.show_batch(built, dataset, path)
