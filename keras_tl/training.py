"""Two-phase fine-tuning: freeze, train the head, unfreeze by policy, recompile, train at a low rate.

Choosing which layers to unfreeze (`set_trainable`) and recompiling (`compile_model`) are separate
steps; `fine_tune` calls them in order, so every `trainable` change is followed by a recompile.
BatchNorm layers stay frozen when the backbone is pretrained.
"""

import math
import os
import time

import keras

from keras_tl import backbones
from keras_tl.config import parse_unfreeze
from keras_tl.model import get_backbone, is_pretrained, task_of


def set_trainable(model, policy, *, spec=None, freeze_batchnorm=True):
    """Sets which backbone layers train; the head always trains.

    Args:
        model: keras.Model. Built by `keras_tl.model.build_model`.
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
    kind, value = parse_unfreeze(policy)
    layers = backbone.layers
    start = _start_index(kind, value, layers, backbone, spec)
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


def _start_index(kind, value, layers, backbone, spec):
    if kind == "all":
        return 0
    if kind == "top":
        return max(0, len(layers) - value)
    if kind == "fraction":
        return len(layers) - max(1, math.ceil(value * len(layers)))
    blocks = backbones.block_starts(backbone, spec) if spec is not None else []
    if kind == "blocks":
        if not blocks:
            raise ValueError("unfreeze='blocks:K' needs a backbone spec with a block pattern.")
        if value > len(blocks):
            raise ValueError(
                f"unfreeze='blocks:{value}' but the backbone has {len(blocks)} blocks: "
                f"{[b for b, _ in blocks]}"
            )
        return blocks[-value][1]
    for block, index in blocks:
        if block == value:
            return index
    for index, layer in enumerate(layers):
        if layer.name == value or layer.name.startswith(value + "_"):
            return index
    raise ValueError(
        f"unfreeze='from:{value}' names no layer or block of the backbone. "
        f"Blocks: {[b for b, _ in blocks]}; layers: {[l.name for l in layers][:10]}..."
    )


def compile_model(model, *, learning_rate, task="multiclass", label_smoothing=0.0, jit_compile="auto",
                  steps_per_execution=1, optimizer="adam", weight_decay=0.01):
    """Compiles with Adam (or AdamW), cross-entropy (optionally smoothed) and accuracy.

    Args:
        learning_rate: float or a `keras.optimizers.schedules.LearningRateSchedule`.
        optimizer: str. "adam" or "adamw" (decoupled weight decay, as transformer encoders are
            fine-tuned; biases, LayerNorm and BatchNorm parameters are not decayed).
        weight_decay: float. AdamW only. Defaults to 0.01.
        task: str. "multiclass" (one-hot targets), "binary" (targets `(N, 1)`) or "multilabel"
            (multi-hot targets; accuracy is label-wise).
        label_smoothing: float. Defaults to 0.
        jit_compile: bool or "auto". XLA. "auto" (Keras' default) compiles on JAX and on
            TensorFlow GPUs, not on TensorFlow CPUs, where compiling costs more than it saves.
        steps_per_execution: int. Batches per compiled call. Defaults to 1.
    """
    if task in ("binary", "multilabel"):
        loss = keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
        metrics = [keras.metrics.BinaryAccuracy(name="accuracy")]
    else:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    if optimizer == "adamw":
        opt = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
        opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    elif optimizer == "adam":
        opt = keras.optimizers.Adam(learning_rate)
    else:
        raise ValueError(f"`optimizer` must be 'adam' or 'adamw'. Received: optimizer={optimizer!r}")
    model.compile(
        optimizer=opt,
        loss=loss,
        metrics=metrics,
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


def learning_rate(config, peak, total_steps, schedule=None):
    """The learning rate of one phase: warmup + cosine or linear decay, or a constant.

    Args:
        schedule: str. Overrides `config.schedule`; "auto" (unresolved) means "cosine".
    """
    schedule = schedule or config.schedule
    schedule = "cosine" if schedule == "auto" else schedule
    if schedule not in ("cosine", "linear") or total_steps < 2:
        return peak
    warmup = int(config.warmup_fraction * total_steps)
    if schedule == "linear":
        return WarmupLinearDecay(peak, warmup_steps=warmup, total_steps=total_steps)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 10 if warmup else peak,
        decay_steps=total_steps - warmup,
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )


@keras.saving.register_keras_serializable(package="keras_tl")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak` over `warmup_steps`, then linear decay to 0 at `total_steps`.

    The schedule BERT and its descendants were fine-tuned with.

    Example:
    >>> rate = keras_tl.training.WarmupLinearDecay(2e-5, warmup_steps=10, total_steps=100)
    >>> float(rate(5)), float(rate(10)), float(rate(55))
    (1e-05, 2e-05, 1e-05)
    """

    def __init__(self, peak, warmup_steps, total_steps):
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warmup = keras.ops.maximum(float(self.warmup_steps), 1.0)
        rising = self.peak * step / warmup
        falling = self.peak * (self.total_steps - step) / max(self.total_steps - self.warmup_steps, 1)
        rate = keras.ops.where(step < self.warmup_steps, rising, falling)
        return keras.ops.maximum(rate, 0.0)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


def make_callbacks(config, run_dir, phase, checkpoint=None):
    """Early stopping (restores best), best checkpoint, CSV log, optional plateau and TensorBoard."""
    callbacks = []
    if config.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True
            )
        )
    if config.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=2))
    if run_dir:
        if checkpoint is not None:
            callbacks.append(checkpoint)
        callbacks.append(keras.callbacks.CSVLogger(os.path.join(run_dir, f"history_{phase}.csv")))
        if config.tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard", phase)))
    return callbacks


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of `target` from its best epoch (lowest validation loss) over all phases.

    One instance spans all phases, whichever model is being fit (in a feature-cached phase 1 it
    is the head alone, but `target` is the whole model). The best weights are held in memory and
    written to `filepath` at the end of each phase in which they improved, not every epoch
    (a 2M-parameter model's file costs ~0.3 s to write, more than a cached-features epoch).

    Args:
        filepath: str. A `.weights.h5` file.
        target: keras.Model. The model whose weights are kept.
    """

    def __init__(self, filepath, target):
        super().__init__()
        self.filepath = filepath
        self.target = target
        self.best = float("inf")
        self._weights = None
        self._dirty = False

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get("val_loss")
        if value is not None and value < self.best:
            self.best = float(value)
            self._weights = self.target.get_weights()
            self._dirty = True

    def on_train_end(self, logs=None):
        if self._dirty:
            current = self.target.get_weights()
            self.target.set_weights(self._weights)
            self.target.save_weights(self.filepath)
            self.target.set_weights(current)
            self._dirty = False

    def restore(self):
        """Sets the target to its best weights, if any epoch was validated."""
        if self._weights is not None:
            self.target.set_weights(self._weights)


def fine_tune(model, train, val, config, *, steps_per_epoch, run_dir=None, class_weight=None, cached=None,
              timings=None, train_phase2=None, spec=None):
    """Trains a model built by `build_model` with the config's strategy.

    "two_phase": frozen backbone at `head_lr` for `head_epochs`, then the `unfreeze` policy at
    `fine_tune_lr` for `epochs`. "feature_extraction": phase 1 only. "full": everything trainable
    from the start for `head_epochs + epochs` at `head_lr`.

    Args:
        model: keras.Model. From `keras_tl.model.build_model`.
        train, val: tf.data.Dataset. Batches of `(images, targets)`.
        config: TrainConfig.
        steps_per_epoch: int. Batches in one pass over `train` (sizes the LR schedule).
        run_dir: str. Where the CSV logs and `best.weights.h5` go. Defaults to None (no files).
        class_weight: dict. From `keras_tl.data.class_weights`. Defaults to None.
        cached: `keras_tl.features.CachedPhase`. If given, phase 1 trains `cached.head` on cached
            backbone features instead of the model on images (same head, much faster).
        timings: dict. If given, receives each phase's wall-clock seconds (fit with its validation;
            phase 1 on cached features includes computing them).
        train_phase2: tf.data.Dataset. The training batches of phase 2, built like `train` but not
            yet iterated (a seeded shuffle's order depends on how often a dataset was iterated), so
            phase 2 sees the same order whether phase 1 ran on images or on cached features.
            Defaults to `train`.
        spec: BackboneSpec or TextBackboneSpec. Where "blocks:K" and "from:BLOCK" find the
            backbone's blocks. Defaults to the image registry's spec of `config.backbone`.

    Returns:
        dict phase name -> `History.history` ("phase1", "phase2" or "full").
    """
    spec = spec if spec is not None else backbones.get(config.backbone)
    task = task_of(model)
    optimizer = "adam" if config.optimizer == "auto" else config.optimizer
    pretrained = is_pretrained(config.weights)
    checkpoint = BestWeights(os.path.join(run_dir, "best.weights.h5"), model) if run_dir else None
    if config.strategy == "full":
        phases = [("full", "all", config.head_lr, config.head_epochs + config.epochs)]
    else:
        phases = [("phase1", None, config.head_lr, config.head_epochs)]
        if config.strategy == "two_phase":
            phases.append(("phase2", config.unfreeze, config.fine_tune_lr, config.epochs))

    histories = {}
    epoch = 0
    for phase, policy, peak_lr, epochs in phases:
        if epochs == 0:
            continue
        set_trainable(model, policy, spec=spec, freeze_batchnorm=pretrained)
        fit_model, fit_train, fit_val, steps = model, train, val, steps_per_epoch
        if phase == "phase2" and train_phase2 is not None:
            fit_train = train_phase2
        if phase == "phase1" and cached is not None:
            fit_model, fit_train, fit_val, steps = cached.head, cached.train, cached.val, cached.steps_per_epoch
        rate = learning_rate(config, peak_lr, steps * epochs)
        compile_model(fit_model, learning_rate=rate, task=task, label_smoothing=config.label_smoothing,
                      jit_compile=config.jit_compile, steps_per_execution=config.steps_per_execution,
                      optimizer=optimizer, weight_decay=config.weight_decay)
        print(f"[keras-tl] {phase}: {_count_trainable(model):,} trainable parameters, "
              f"lr={peak_lr:g}, epochs {epoch + 1}-{epoch + epochs}"
              + (" (on cached backbone features)" if fit_model is not model else ""))
        started = time.perf_counter()
        history = fit_model.fit(
            fit_train,
            validation_data=fit_val,
            epochs=epoch + epochs,
            initial_epoch=epoch,
            steps_per_epoch=steps if fit_model is not model and cached.repeated else None,
            class_weight=class_weight,
            shuffle=False,  # The datasets shuffle themselves (seeded, reshuffled every epoch).
            callbacks=make_callbacks(config, run_dir, phase, checkpoint),
        )
        histories[phase] = {k: [float(v) for v in vs] for k, vs in history.history.items()}
        if timings is not None:
            timings[phase] = time.perf_counter() - started + (cached.seconds if fit_model is not model else 0.0)
        epoch += len(history.epoch)
    if checkpoint is not None:
        checkpoint.restore()  # Best validation loss over all phases.
    return histories


def _count_trainable(model):
    return sum(math.prod(w.shape) for w in model.trainable_weights)
