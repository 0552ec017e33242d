"""Two-phase fine-tuning: freeze, train the head, unfreeze by policy, recompile, train at a low rate.

Choosing which layers to unfreeze (`set_trainable`) and recompiling (`compile_model`) are separate
steps; `fine_tune` calls them in order, so every `trainable` change is followed by a recompile.
BatchNorm layers stay frozen when the backbone is pretrained. One `fine_tune` serves every
modality: it takes a `Classifier` (its spec says where the blocks are, its modality what "auto" means)
and an objective (supervised cross-entropy unless given another).
"""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING, Any

import keras

from keras_tl.core.contract import modality as modalities
from keras_tl.core.contract import registry
from keras_tl.core.contract.choices import FIND
from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.contract.fields import concrete_autos, parse_unfreeze
from keras_tl.core.models import multitask, optimizers
from keras_tl.core.models.classifier import Classifier
from keras_tl.core.models.heads import get_backbone, is_pretrained, problem_of
from keras_tl.core.models.schedules import learning_rate
from keras_tl.core.train import resume as resume_lib
from keras_tl.core.train.callbacks import BestWeights, DivergenceGuard, diverged, make_callbacks
from keras_tl.core.utils import quiet
from keras_tl.core.utils.log import log

if TYPE_CHECKING:
    from keras_tl.core.contract.config import TrainConfig
    from keras_tl.core.contract.registry import BackboneSpec


def set_trainable(
    model: keras.Model, policy: str, *, spec: BackboneSpec | None = None, freeze_batchnorm: bool = True
) -> list[str]:
    """Sets which backbone layers train; the head always trains.

    Args:
        model: keras.Model. A keras-tl model (its backbone is the layer "backbone").
        policy: str or None. None freezes the whole backbone; otherwise an unfreeze policy:
            "all", "top:N" (the last N layers), "fraction:F" (the last F of the layers),
            "blocks:K" (the last K blocks of the spec's block pattern) or "from:NAME" (from the
            layer called NAME, or the first layer of block NAME, to the end).
        spec: BackboneSpec. Needed for "blocks:K" and block names in "from:".
        freeze_batchnorm: bool. Keep BatchNormalization layers frozen. Defaults to True.

    Returns:
        The names of the backbone layers left trainable (those with weights).

    Call `compile_model` afterwards: Keras only picks up a `trainable` change on compile.
    """
    backbone = get_backbone(model)
    if policy is None:
        backbone.trainable = False
        return []
    start = unfreeze_start(backbone, policy, spec)
    layers = backbone.layers
    backbone.trainable = True
    unfrozen = []
    for index, layer in enumerate(layers):
        trainable = index >= start
        if freeze_batchnorm and isinstance(layer, keras.layers.BatchNormalization):
            trainable = False
        layer.trainable = trainable
        if trainable and layer.weights:
            unfrozen.append(layer.name)
    return unfrozen


def unfreeze_start(backbone, policy, spec=None):
    """The index of the first backbone layer `policy` unfreezes; raises `ValueError` naming the blocks
    and layers when the policy names none (callable on an untrained skeleton, before any work)."""
    kind, value = parse_unfreeze(policy)
    layers = backbone.layers
    if kind == "all":
        return 0
    if kind == "top":
        return max(0, len(layers) - value)
    if kind == "fraction":
        return len(layers) - max(1, math.ceil(value * len(layers)))
    blocks = registry.block_starts(backbone, spec)
    if kind == "blocks":
        if not blocks:
            raise ConfigError("unfreeze='blocks:K' needs a backbone spec with a block pattern.")
        if value > len(blocks):
            raise ConfigError(
                f"unfreeze='blocks:{value}' but the backbone has {len(blocks)} blocks: {[b for b, _ in blocks]}"
            )
        return blocks[-value][1]
    for block, index in blocks:
        if block == value:
            return index
    for index, layer in enumerate(layers):
        if layer.name == value or layer.name.startswith(value + "_"):
            return index
    raise ConfigError(
        f"unfreeze='from:{value}' names no layer or block of the backbone. "
        f"Blocks: {[b for b, _ in blocks]}; layers: {[l.name for l in layers][:10]}..."
    )


def compile_model(
    model: keras.Model,
    *,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule,
    problem: str = "multiclass",
    label_smoothing: float = 0.0,
    jit_compile: bool | str = "auto",
    steps_per_execution: int = 1,
    optimizer: str = "adam",
    weight_decay: float = 0.01,
    lr_multipliers: dict[str, float] | None = None,
    head_weights: dict[str, float] | None = None,
    heads_model: keras.Model | None = None,
) -> keras.Model:
    """Compiles with Adam (or AdamW), cross-entropy (optionally smoothed) and accuracy.

    Args:
        learning_rate: float or a `keras.optimizers.schedules.LearningRateSchedule`.
        optimizer: str. "adam" or "adamw" (decoupled weight decay, as transformer encoders are
            fine-tuned; biases, LayerNorm and BatchNorm parameters are not decayed).
        weight_decay: float. AdamW only. Defaults to 0.01.
        problem: str. "multiclass" (one-hot targets), "binary" (targets `(N, 1)`), "multilabel"
            (multi-hot targets; accuracy is label-wise) or "multitask".
        label_smoothing: float. Defaults to 0.
        jit_compile: bool or "auto". XLA. "auto" (Keras' default) compiles on JAX and on
            TensorFlow GPUs, not on TensorFlow CPUs, where compiling costs more than it saves.
        steps_per_execution: int. Batches per compiled call. Defaults to 1.
        lr_multipliers: dict. `{variable path: multiplier}` of the learning rate (discriminative
            rates, `keras_tl.core.models.optimizers.layer_rate_multipliers`). Defaults to one rate.
        head_weights: dict. "multitask": `{head: loss weight}` (Keras' `loss_weights`; default 1 each):
            a cross-entropy and an accuracy per head (`keras_tl.core.models.multitask.loss_and_metrics`),
            on targets and sample weights by head (`multitask.targets_by_head`).
        heads_model: keras.Model. The keras-tl model whose heads the loss follows, when `model` wraps
            it (a domain-adaptation wrapper, which gives the same outputs). Defaults to `model`.
    """
    loss_weights = weighted_metrics = None
    if problem == "multitask":  # Weighted metrics: a row without a head's label counts not for that head.
        loss, loss_weights, weighted_metrics = multitask.loss_and_metrics(
            heads_model or model, head_weights, label_smoothing
        )
        metrics = None
    elif problem in ("binary", "multilabel"):
        loss = keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
        metrics = [keras.metrics.BinaryAccuracy(name="accuracy")]
    else:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    opt = optimizers.make(optimizer, learning_rate, weight_decay=weight_decay, lr_multipliers=lr_multipliers)
    model.compile(
        optimizer=opt,
        loss=loss,
        loss_weights=loss_weights,
        metrics=metrics,
        weighted_metrics=weighted_metrics,
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


class Supervised:
    """The default objective: cross-entropy on the labelled targets, accuracy as the metric.

    An objective decides how a phase is compiled (loss, metrics, optimizer); the domain-adaptation
    objectives replace it without new arguments to `fine_tune`.
    """

    # The config's fields that `compile_model` takes as they are.
    COMPILE_FIELDS = ("label_smoothing", "jit_compile", "steps_per_execution", "weight_decay", "head_weights")

    def compile(self, model, *, learning_rate, problem, optimizer, config, lr_multipliers=None, heads_model=None):
        return compile_model(
            model,
            learning_rate=learning_rate,
            problem=problem,
            optimizer=optimizer,
            lr_multipliers=lr_multipliers,
            heads_model=heads_model,
            **{name: getattr(config, name) for name in self.COMPILE_FIELDS},
        )

    def for_phase(self, phase, model, train, total_steps, done_steps=0):
        """What one phase fits: `(model, training dataset, extra callbacks)`; unchanged here."""
        return model, train, []


def as_classifier(model, config):
    """A `Classifier` for a bare keras-tl model, its modality and spec taken from the config."""
    if isinstance(model, Classifier):
        return model
    if config.modality != "auto":
        modality = modalities.get(config.modality)
        spec = registry.get(config.backbone, modality=config.modality)
    else:
        spec = registry.get(config.backbone)
        modality = modalities.get(spec.modality)
    return Classifier(model, modality, spec)


@quiet.tensorflow_started
def fine_tune(
    classifier: Classifier,
    train: Any,
    val: Any,
    config: TrainConfig,
    *,
    run_dir: str | None = None,
    class_weight: dict[int, float] | None = None,
    cached: Any = None,
    train_phase2: Any = None,
    objective: Any = None,
    steps_per_epoch: int | None = None,
    timings: dict[str, float] | None = None,
    resume: bool = False,
) -> dict[str, dict[str, list[float]]]:
    """Trains a classifier with the config's strategy, whatever its modality.

    "two_phase": frozen backbone at `head_lr` for `head_epochs`, then the `unfreeze` policy at
    `fine_tune_lr` for `epochs`. "feature_extraction": phase 1 only. "full": everything trainable
    from the start for `head_epochs + epochs` at `head_lr`. "auto" optimizer and schedule resolve
    to the classifier's modality defaults (Adam + cosine for images, AdamW + linear for text).

    Args:
        classifier: Classifier, or a keras-tl `keras.Model` (its spec is then looked up from `config.backbone`).
        train, val: tf.data.Dataset. Batches of `(inputs, targets)`.
        config: TrainConfig.
        run_dir: str. Where the CSV logs and `best.weights.h5` go. Defaults to None (no files).
        class_weight: dict. From `keras_tl.core.data.class_weights`; for a multi-task model
            `{head: [weight of each class]}` (`keras_tl.core.data.multitask_labels.class_weights`), applied
            as the training batches' sample weights by head. Defaults to None.
        cached: `keras_tl.core.train.features.CachedPhase`. If given, phase 1 trains `cached.head` on
            cached backbone features instead of the model on raw inputs (same head, much faster).
        train_phase2: tf.data.Dataset. The training batches of phase 2, built like `train` but not
            yet iterated (a seeded shuffle's order depends on how often a dataset was iterated), so
            phase 2 sees the same order whether phase 1 ran on inputs or on cached features.
            Defaults to `train`.
        objective: an objective (`Supervised()` by default): how each phase is compiled.
        steps_per_epoch: int. Batches in one pass over `train` (sizes the LR schedule). Defaults to
            the dataset's cardinality.
        timings: dict. If given, receives each phase's wall-clock seconds.
        resume: bool. Continue from the state `run_dir` holds (see `keras_tl.core.train.resume`), which
            every epoch of a run with a `run_dir` saves. Defaults to False.

    Returns:
        dict phase name -> `History.history` ("phase1", "phase2" or "full").

    Example:
    >>> histories = keras_tl.fine_tune(model, train_ds, val_ds, keras_tl.TrainConfig(weights="pretrained"))
    """
    for name in ("head_lr", "fine_tune_lr"):
        if getattr(config, name) == FIND and (name == "head_lr" or config.strategy == "two_phase"):
            raise ConfigError(
                f"`fine_tune` needs a number for {name}; 'find' is resolved by `keras_tl.train` (or run "
                f"`keras_tl.lr_find` and pass its suggestion). Received: {name}='find'"
            )
    classifier = as_classifier(classifier, config)
    model = classifier.model
    problem = problem_of(model)
    head_class_weights = None
    if problem == "multitask":  # `{head: [weight per class]}`: sample weights by head, not `fit(class_weight=)`.
        head_class_weights, class_weight = class_weight, None
    objective = objective or Supervised()
    optimizer = classifier.modality.default_optimizer if config.optimizer == "auto" else config.optimizer
    schedule = classifier.modality.default_schedule if config.schedule == "auto" else config.schedule
    steps_per_epoch = steps_per_epoch or _cardinality(train)
    config = _concrete(config, classifier.modality, steps_per_epoch)
    pretrained = is_pretrained(config.weights)
    checkpoint = BestWeights(os.path.join(run_dir, "best.weights.h5"), model, config.monitor) if run_dir else None
    if config.strategy == "full":
        phases = [("full", "all", config.head_lr, config.head_epochs + config.fine_tune_epochs)]
    else:
        phases = [("phase1", None, config.head_lr, config.head_epochs)]
        if config.strategy == "two_phase":
            phases.append(("phase2", config.unfreeze, config.fine_tune_lr, config.fine_tune_epochs))

    state = resume_lib.load_state(run_dir) if resume and run_dir else None
    if resume and run_dir and state is None:
        raise ConfigError(f"Nothing to resume in {run_dir!r}: it holds no {resume_lib.STATE_DIR}/state.json.")
    run_state = state or {"phase_epochs": {}, "finished_phases": []}
    if state is not None:
        resume_lib.restore_best(run_dir, checkpoint, state)
    iterated = {}  # id(dataset) -> epochs it has served (its seeded shuffle's position)
    histories = {}
    epoch = 0
    wrapped = False  # Some phase fit a wrapper of the model (domain adaptation), not the model.
    for phase, policy, peak_lr, epochs in phases:
        if epochs == 0:
            continue
        set_trainable(model, policy, spec=classifier.spec, freeze_batchnorm=pretrained)
        fit_model, fit_train, fit_val, steps = model, train, val, steps_per_epoch
        if phase == "phase2" and train_phase2 is not None:
            fit_train = train_phase2
        on_features = phase == "phase1" and cached is not None
        if on_features:
            fit_model, fit_train, fit_val, steps = cached.head, cached.train, cached.val, cached.steps_per_epoch
        repeated = on_features and cached.repeated
        done = run_state["phase_epochs"].get(phase, 0)
        source_train = fit_train
        served = iterated.get(id(source_train), 0)
        if phase in run_state["finished_phases"]:
            iterated[id(source_train)] = served + done
            if state["phase"] == phase:  # Killed between phases: this phase's end is the model's state.
                resume_lib.restore_variables(run_dir, fit_model, optimizer=False)
            histories[phase] = resume_lib.phase_history(run_dir, phase)
            log.info(f"{phase}: finished before the interruption ({done} epochs); resuming after it")
            epoch += done
            continue
        rate = learning_rate(config, peak_lr, steps * epochs, schedule=schedule)
        multipliers = None
        if phase == "phase2" and config.layer_lr_decay != 1.0:
            multipliers, blocks = optimizers.layer_rate_multipliers(model, classifier.spec, config.layer_lr_decay)
            log.info(
                f"phase2: discriminative rates over {len(blocks)} blocks: {peak_lr:g} for the top "
                f"block ({blocks[-1]}) and the head, x{config.layer_lr_decay:g} per block below, "
                f"{peak_lr * min(multipliers.values()):.2g} for the lowest layers"
            )
        unwrapped = fit_model
        fit_model, fit_train, extra_callbacks = objective.for_phase(
            phase, fit_model, fit_train, steps * epochs, steps * done
        )
        if fit_model is not unwrapped:
            wrapped = True
            if checkpoint is not None and not done:
                checkpoint.start_over()  # The run keeps an adapted epoch, the best of this phase.
        objective.compile(
            fit_model,
            learning_rate=rate,
            problem=problem,
            optimizer=optimizer,
            config=config,
            lr_multipliers=multipliers,
            heads_model=unwrapped,  # A wrapper (domain adaptation) gives the outputs of the model it wraps.
        )
        if done:
            resume_lib.restore_variables(run_dir, fit_model)
            resume_lib.truncate_history(run_dir, phase, epoch + done)
        if served + done:
            fit_train = _skip_epochs(fit_train, served + done, steps if repeated else None)
        # A multi-task model's targets and sample weights by head (Keras' multi-output `fit`).
        fit_train = multitask.targets_by_head(fit_train, model, head_class_weights)
        fit_val = multitask.targets_by_head(fit_val, model)
        log.info(
            f"{phase}: {_count_trainable(model):,} trainable parameters, "
            f"lr={peak_lr:g}, epochs {epoch + 1}-{epoch + epochs}"
            + (" (on cached backbone features)" if on_features else "")
            + (f"; resumed after epoch {epoch + done}" if done else "")
        )
        started = time.perf_counter()
        guard = DivergenceGuard(fit_model, phase, peak_lr)
        callbacks = (
            multitask.callbacks_for(model)
            + [guard]
            + extra_callbacks
            + make_callbacks(config, run_dir, phase, checkpoint, append=bool(done), steps_per_epoch=steps)
        )
        if run_dir:
            stopper = next((c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)), None)
            callbacks.append(
                resume_lib.SaveState(
                    run_dir,
                    phase,
                    fit_model,
                    run_state,
                    checkpoint,
                    stopper,
                    restore_early_stopping=run_state.get("early_stopping") if done else None,
                )
            )
        history = fit_model.fit(
            fit_train,
            validation_data=fit_val,
            epochs=epoch + epochs,
            initial_epoch=epoch + done,
            steps_per_epoch=steps if repeated else None,
            class_weight=class_weight,
            shuffle=False,  # The datasets shuffle themselves (seeded, reshuffled every epoch).
            callbacks=callbacks,
            verbose=quiet.fit_verbose(),
        )
        if guard.failure is not None:
            diverged(model, guard.failure, run_dir)
        histories[phase] = (
            resume_lib.phase_history(run_dir, phase)
            if run_dir
            else {k: [float(v) for v in vs] for k, vs in history.history.items()}
        )
        if timings is not None:
            timings[phase] = time.perf_counter() - started + (cached.seconds if on_features else 0.0)
        iterated[id(source_train)] = served + done + len(history.epoch)
        epoch += done + len(history.epoch)
    if isinstance(getattr(model, "optimizer", None), optimizers.Discriminative) or wrapped:
        # The discriminative optimizer is keras-tl's class (and a domain-adapted phase compiled its
        # wrapper, not the model): recompile with the plain one, so the saved model.keras (and every
        # .keras export) loads wherever Keras does, keras-tl installed or not.
        objective.compile(model, learning_rate=config.fine_tune_lr, problem=problem, optimizer=optimizer, config=config)
        model.optimizer.build(model.trainable_variables)  # Its slots match what load_model builds.
    if checkpoint is not None:
        checkpoint.restore()  # Best validation loss (or accuracy: `config.monitor`) over all phases.
    return histories


# Keras' EpochIterator makes one iterator at each epoch's start and one more when a finite dataset
# runs out; each draws the next order of a seeded reshuffling `shuffle`. tests/test_faults.py checks
# that a resumed run equals an uninterrupted one, so a change here in Keras fails there.
ITERATORS_PER_EPOCH = 2


def _skip_epochs(dataset, epochs, steps=None):
    """`dataset` as it stands after `fit` has run `epochs` epochs on it (a resumed run's shuffle order)."""
    if steps is not None:  # Repeated forever: one iterator spans the whole fit.
        return dataset.skip(epochs * steps)
    for _ in range(ITERATORS_PER_EPOCH * epochs):
        iter(dataset)
    return dataset


def _concrete(config, modality, steps_per_epoch):
    """`config` with `head_epochs: auto` and `fine_tune_lr: auto` made concrete (what `keras_tl.train`
    resolves before it writes config.yaml), for a config passed to `fine_tune` from Python."""
    import dataclasses

    return dataclasses.replace(config, **concrete_autos(config, steps_per_epoch, modality.default_fine_tune_lr))


def _cardinality(dataset):
    count = int(dataset.cardinality()) if hasattr(dataset, "cardinality") else -1
    if count <= 0:
        raise ConfigError(
            "`steps_per_epoch` is needed: the training dataset's length is unknown "
            f"(cardinality {count}). Pass steps_per_epoch=N."
        )
    return count


def _count_trainable(model):
    return sum(math.prod(w.shape) for w in model.trainable_weights)
