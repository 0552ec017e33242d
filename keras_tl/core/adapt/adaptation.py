"""Domain adaptation building blocks: how far apart two domains are, and ways to close the gap.

The setting: labelled data from a source domain (monocrystalline solar cells), unlabelled data
from a target domain (polycrystalline cells) where the model will run.

- `proxy_a_distance`: the domain-shift diagnostic of Ben-David et al. ("Analysis of
  representations for domain adaptation", NIPS 2007; used by Ganin et al., JMLR 2016, sec. 5.1):
  `2 (1 - 2 err)`, where `err` is the error of a linear classifier that tells source features from
  target features (here its exact leave-one-out error, `transferability.linear_probe`). About 0:
  the domains look alike to a linear probe and adaptation has little to close; near 2: they are
  linearly separable.
- `coral`: CORAL (Sun, Feng, Saenko, "Return of Frustratingly Easy Domain Adaptation", AAAI 2016)
  on features: whiten the source features with their own covariance and re-colour them with the
  target's, so a classifier trained on them applies to target features as they are.
- `adabn`: AdaBN (Li, Wang, Shi, Liu, Hou, "Revisiting Batch Normalization For Practical Domain
  Adaptation", 2016): re-estimate the backbone's BatchNorm moving means and variances on target
  inputs; no weight changes.
- `match_prior`: shift the output layer's biases so the model's mean prediction over target
  inputs equals the class frequencies of the source training data: the output adjustment of
  Saerens, Latinne & Decaestecker ("Adjusting the outputs of a classifier to new a priori
  probabilities", Neural Computation 2002) with the target prior held at the source's instead of
  estimated by EM. It assumes the classes occur about as often in the target domain as in the
  source; it corrects a shift that pushes most target examples to one class.
- `GradientReversal`: the layer of DANN (Ganin et al., "Domain-Adversarial Training of Neural
  Networks", JMLR 2016): the identity forward, gradients times `-scale` backward, so features
  are trained to fool a domain classifier placed behind it.

Training with them (`TrainConfig(domain_adaptation=..., target_data=...)`): `Adapted` is the
objective `keras_tl.core.train.training.fine_tune` takes. "adabn" re-estimates the BatchNorm statistics
on the source training data before training and on the target data after it; "coral" (Deep CORAL,
Sun & Saenko, ECCV 2016 workshops) and "dann" add their loss on the pooled backbone features in
phase 2, where the backbone trains, with a batch of target inputs beside every source batch
(`DomainAdapted`).
"""

import math

import keras
import numpy as np

from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.evaluation.transferability import linear_probe
from keras_tl.core.models import heads
from keras_tl.core.models.layers import GradientReversal
from keras_tl.core.utils import private
from keras_tl.core.utils.log import log

METHODS = ("adabn", "coral", "dann", "prior")  # What `TrainConfig.domain_adaptation` may name besides "none".


def proxy_a_distance(source_features, target_features):
    """Proxy A-distance between two sets of features `(N, D)` and `(M, D)`: `2 (1 - 2 err)`, in [-2, 2].

    `err` is the leave-one-out error of a ridge linear classifier (standardized features, ridge
    chosen by leave-one-out) telling the two sets apart. Balance the sets' sizes: with N != M a
    classifier that always says the larger set already has error `min(N, M) / (N + M)`.

    Example:
    >>> keras_tl.core.adapt.adaptation.proxy_a_distance(mono_features, poly_features)
    1.62
    """
    source, target = np.asarray(source_features, np.float64), np.asarray(target_features, np.float64)
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1] or min(len(source), len(target)) < 2:
        raise ConfigError(
            f"`source_features` and `target_features` must be (N, D) and (M, D) with the same D and "
            f"at least 2 rows each. Received: {source.shape} and {target.shape}"
        )
    accuracy, _ = linear_probe(
        np.concatenate([source, target]), np.r_[np.zeros(len(source), np.int64), np.ones(len(target), np.int64)]
    )
    return float(2.0 * (1.0 - 2.0 * (1.0 - accuracy)))


def _sqrtm(matrix, power):
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.clip(values, 1e-12, None) ** power) @ vectors.T


def coral(source_features, target_features, *, regularization=1.0):
    """CORAL: source features re-coloured to the target's mean and covariance.

    `(x - mean_s) C_s^{-1/2} C_t^{1/2} + mean_t`, with `C = cov + regularization * I` (the paper's
    `+ I`, which keeps whitening stable for features with more dimensions than rows). Train the
    classifier on the returned features and apply it to target features unchanged.

    Args:
        source_features: float array `(N, D)`.
        target_features: float array `(M, D)`. Unlabelled target-domain features.
        regularization: float > 0. Added to both covariances' diagonals. Defaults to 1.0.

    Returns:
        float32 array `(N, D)`.
    """
    source, target = np.asarray(source_features, np.float64), np.asarray(target_features, np.float64)
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise ConfigError(
            f"`source_features` and `target_features` must be (N, D) and (M, D) with the same D. "
            f"Received: {source.shape} and {target.shape}"
        )
    if not regularization > 0:
        raise ConfigError(f"`regularization` must be > 0. Received: {regularization!r}")
    eye = regularization * np.eye(source.shape[1])
    whiten = _sqrtm(np.cov(source, rowvar=False) + eye, -0.5)
    recolour = _sqrtm(np.cov(target, rowvar=False) + eye, 0.5)
    return ((source - source.mean(0)) @ whiten @ recolour + target.mean(0)).astype(np.float32)


def adabn(model, target_inputs, *, batch_size=64, verbose=0):
    """AdaBN: re-estimates the backbone's BatchNorm moving statistics on target-domain inputs, in place.

    Each BatchNorm layer's moving mean and variance become the mean over the target batches of its
    batch statistics (momentum `i / (i + 1)` at batch `i`); weights, gamma and beta are untouched.
    Dropout and stochastic depth are off while the statistics are gathered, and every layer's
    `trainable` flag, momentum and rate are restored afterwards: compile again before training on.

    Args:
        model: keras.Model. A keras-tl model (its backbone is the layer "backbone").
        target_inputs: array or list of arrays, or an iterable of batches (a `tf.data.Dataset` of
            inputs). Raw model inputs from the target domain (images as the model takes them).
        batch_size: int. Larger batches give better per-batch statistics. Defaults to 64.
        verbose: int. 1: a progress bar.

    Returns:
        int. The number of BatchNorm layers re-estimated (0: the backbone has none; nothing changed).
    """
    backbone = heads.get_backbone(model)
    norms = [layer for layer in private.nested_layers(backbone) if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        return 0
    if isinstance(target_inputs, (np.ndarray, list, tuple)):
        arrays = list(target_inputs) if isinstance(target_inputs, (list, tuple)) else [target_inputs]
        count = len(arrays[0])
        if count < 2:
            raise ConfigError(f"AdaBN needs at least 2 target inputs to estimate statistics. Received: {count}")
        chunks = [[a[start : start + batch_size] for a in arrays] for start in range(0, count, batch_size)]
        batches = [c if isinstance(target_inputs, (list, tuple)) else c[0] for c in chunks]
    else:
        batches = target_inputs
    # What the backbone is fed: the model's in-graph preprocessing up to the "backbone" layer.
    # (the tensor the outer model passes it: a nested functional backbone's own `.input` is its Input).
    feed = keras.Model(model.input, model.get_layer(heads.BACKBONE_LAYER).input)
    noisy = [layer for layer in private.nested_layers(backbone) if hasattr(layer, "rate")]
    # Parents come before their layers, so restoring in this order puts every layer's own flag back.
    trainable = [(layer, layer.trainable) for layer in private.nested_layers(backbone, include_self=True)]
    momentums, rates = [layer.momentum for layer in norms], [layer.rate for layer in noisy]
    try:
        for layer, _ in trainable:
            layer.trainable = True  # BatchNorm updates its statistics only when trainable (Keras 3).
        for layer in noisy:
            layer.rate = 0.0
        bar = (
            keras.utils.Progbar(len(batches) if hasattr(batches, "__len__") else None, unit_name="batch")
            if verbose
            else None
        )
        seen = 0
        for chunk in batches:
            if len(keras.tree.flatten(chunk)[0]) < 2:
                continue  # A batch of one has no variance; the statistics so far stand.
            for layer in norms:
                layer.momentum = seen / (seen + 1)
            backbone(feed(chunk, training=False), training=True)
            seen += 1
            if bar is not None:
                bar.update(seen)
        if seen == 0:
            raise ConfigError("AdaBN needs at least one batch of 2 or more target inputs to estimate statistics.")
    finally:
        for layer, flag in trainable:
            layer.trainable = flag
        for layer, momentum in zip(norms, momentums):
            layer.momentum = momentum
        for layer, rate in zip(noisy, rates):
            layer.rate = rate
    return len(norms)


def coral_loss(source_features, target_features):
    """Deep CORAL's loss: `||C_s - C_t||_F^2 / (4 d^2)` between two batches' feature covariances.

    Sun & Saenko, "Deep CORAL: Correlation Alignment for Deep Domain Adaptation" (ECCV 2016
    workshops), eq. 1, with the unbiased covariances of `(n, d)` and `(m, d)` feature batches.
    """

    def covariance(x):
        x = keras.ops.cast(x, "float32")
        centred = x - keras.ops.mean(x, axis=0, keepdims=True)
        rows = keras.ops.cast(keras.ops.shape(x)[0], "float32")
        return keras.ops.matmul(keras.ops.transpose(centred), centred) / keras.ops.maximum(rows - 1.0, 1.0)

    dim = keras.ops.cast(keras.ops.shape(source_features)[-1], "float32")
    difference = covariance(source_features) - covariance(target_features)
    return keras.ops.sum(keras.ops.square(difference)) / (4.0 * dim * dim)


def class_prior(labels, class_names, kind, head_kinds=None):
    """The source training data's class frequencies, in the model's output order: per class for
    "multiclass"; the share of the second class for "binary" (the model's one sigmoid); the share
    of positives of each class for "multilabel"; per head block, over the rows that label the
    head, for "multitask" (a head `head_kinds` calls "multilabel": each class's share of positives)."""
    labels = np.asarray(labels)
    if kind == "multiclass":
        return np.bincount(labels, minlength=len(class_names)) / len(labels)
    if kind == "multilabel":
        return labels.mean(axis=0)
    if kind == "binary":
        return np.array([np.mean(labels == 1)])
    from keras_tl.core.data import multitask_labels

    def block(head, a, b):
        if (head_kinds or {}).get(head) == "multilabel":
            labelled = labels[:, a:b].sum(axis=1) > 0
            return labels[labelled, a:b].mean(axis=0) if labelled.any() else np.zeros(b - a)
        return labels[:, a:b].sum(axis=0) / max(1, labels[:, a:b].sum())

    return np.concatenate([block(head, a, b) for head, _, a, b in multitask_labels.heads_of(class_names)])


def match_prior(model, target_inputs, prior, *, iterations=200, tolerance=1e-5):
    """Adds to the output layer's biases the shift that makes the mean prediction over `target_inputs` `prior`.

    Softmax outputs (one per head of a multi-task model): the fixed point `b += log(prior / q)`, q the
    mean of the renormalized `p * exp(b)` (Saerens et al. 2002's adjustment with a fixed prior);
    sigmoid outputs (binary, multi-label, or a multi-label head): each class's bias by bisection. The
    model's probabilities are computed once; only the biases of the output Dense layer(s) change.

    Args:
        model: keras.Model. A keras-tl model (an output layer "predictions", or "predictions_<head>" layers).
        target_inputs: tf.data.Dataset of target-domain model inputs.
        prior: float array `(C,)`: `class_prior` of the source training labels.

    Returns:
        dict `{layer name: bias shift}`.
    """
    from keras_tl.core.models import multitask

    p = np.clip(np.asarray(multitask.joined(model.predict(target_inputs, verbose=0)), np.float64), 1e-7, 1.0)
    prior = np.clip(np.asarray(prior, np.float64), 1e-6, 1.0)
    if multitask.is_multitask(model):
        kinds = multitask.kinds_of(model)
        layers = [
            (model.get_layer(f"{multitask.OUTPUT_PREFIX}{h}"), a, b, kinds[h] == "multilabel")
            for h, a, b in multitask.blocks_of(model)
        ]
    else:
        output = model.get_layer(heads.OUTPUT_LAYER)
        layers = [(output, 0, p.shape[1], heads.problem_of(model) in ("multilabel", "binary"))]
    shifts = {}
    for layer, a, b, sigmoid in layers:
        block, target = p[:, a:b], prior[a:b]
        if sigmoid:
            shift = np.array(
                [
                    _bisect(np.log(block[:, k]) - np.log1p(-np.minimum(block[:, k], 1 - 1e-7)), target[k])
                    for k in range(block.shape[1])
                ]
            )
        else:
            target = target / target.sum()
            shift = np.zeros(b - a)
            for _ in range(iterations):
                adjusted = block * np.exp(shift - shift.max())
                q = (adjusted / adjusted.sum(axis=1, keepdims=True)).mean(axis=0)
                if np.max(np.abs(q - target)) < tolerance:
                    break
                shift += np.log(target / q)
            shift -= shift.mean()  # Softmax is invariant to a common shift: keep the biases centred.
        layer.bias.assign(layer.bias.numpy() + shift.astype(layer.bias.dtype))
        shifts[layer.name] = shift
    return shifts


def _bisect(logits, target, steps=100):
    """The shift b with mean(sigmoid(logits + b)) = target."""
    low, high = -40.0, 40.0
    for _ in range(steps):
        middle = (low + high) / 2
        low, high = (low, middle) if np.mean(1 / (1 + np.exp(-(logits + middle)))) > target else (middle, high)
    return (low + high) / 2


class DomainAdapted(keras.Model):
    """A keras-tl model trained with a domain-alignment loss on its pooled backbone features.

    Called on `{"source": x_s, "target": x_t}` in training it runs the feature extractor once on
    both batches, returns the head's predictions for the source batch (the supervised loss is
    compiled as usual) and adds `weight * alignment` with `add_loss`: "coral" (`coral_loss`) or
    "dann" (binary cross-entropy of a domain classifier behind a `GradientReversal` layer, whose
    scale `ReversalRamp` raises from 0 to `weight`; the domain loss itself has weight 1, as in
    Ganin et al.). Called on plain inputs (validation, prediction) it is the model itself, so
    `val_loss` is the supervised loss alone. It shares every layer with `model`: training it
    trains `model`; the domain classifier is dropped with it after training.

    Args:
        model: keras.Model. A keras-tl model (a "head_pool" or "backbone" layer).
        method: str. "coral" or "dann".
        weight: float > 0. CORAL's loss weight, or DANN's largest reversal scale (lambda).
        hidden: int. Units of DANN's domain classifier's hidden layer. Defaults to 256.
    """

    def __init__(self, model, method, weight=1.0, hidden=256, **kwargs):
        super().__init__(**kwargs)
        from keras_tl.core.train.features import split_model

        if method not in ("coral", "dann"):
            raise ConfigError(f"`method` must be 'coral' or 'dann'. Received: method={method!r}")
        self.method, self.weight = method, float(weight)
        self.extractor, self.head = split_model(model)
        if method == "dann":
            self.reversal = GradientReversal(0.0, name="gradient_reversal")
            self.domain = keras.Sequential(
                [keras.layers.Dense(hidden, activation="relu"), keras.layers.Dense(1)], name="domain_classifier"
            )
            # Built now, not at the first batch: a resumed phase restores its weights (and their
            # optimizer slots) before any batch runs.
            self.domain.build((None, self.extractor.output.shape[-1]))
        self.alignment = keras.metrics.Mean(name="alignment_loss")

    def call(self, inputs, training=False):
        if not (isinstance(inputs, dict) and set(inputs) == {"source", "target"}):
            return self.head(self.extractor(inputs, training=training), training=training)
        source, target = inputs["source"], inputs["target"]
        count = keras.ops.shape(keras.tree.flatten(source)[0])[0]
        both = keras.tree.map_structure(
            lambda s, t: keras.ops.concatenate([s, keras.ops.cast(t, s.dtype)], 0), source, target
        )
        features = self.extractor(both, training=training)
        source_features, target_features = features[:count], features[count:]
        if self.method == "coral":
            loss = self.weight * coral_loss(source_features, target_features)
        else:
            logits = self.domain(self.reversal(features), training=training)
            domains = keras.ops.concatenate(
                [keras.ops.zeros_like(source_features[:, :1]), keras.ops.ones_like(target_features[:, :1])], 0
            )
            loss = keras.ops.mean(keras.losses.binary_crossentropy(domains, logits, from_logits=True))
        self.add_loss(loss)
        self.alignment.update_state(loss)
        return self.head(source_features, training=training)


class ReversalRamp(keras.callbacks.Callback):
    """DANN's schedule of the reversal scale: `weight * (2 / (1 + exp(-10 p)) - 1)` at progress p in [0, 1].

    Args:
        layer: GradientReversal.
        weight: float. The scale reached at the end of training.
        total_steps: int. Batches over the whole phase.
        initial_step: int. Batches already trained (a resumed phase). Defaults to 0.
    """

    def __init__(self, layer, weight, total_steps, initial_step=0):
        super().__init__()
        self.layer, self.weight, self.total, self.step = layer, float(weight), max(1, int(total_steps)), initial_step

    def on_train_batch_begin(self, batch, logs=None):
        progress = min(1.0, self.step / self.total)
        self.layer.scale.assign(self.weight * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0))
        self.step += 1


def paired_batches(train, target):
    """`(x, y)` source batches zipped with target input batches (repeated): `({"source", "target"}, y)`.

    The source dataset's length and shuffle order are unchanged; the target repeats as often as needed.
    """
    import tensorflow as tf  # tf.data only here: the layers above run on any Keras backend.

    return tf.data.Dataset.zip((train, target.repeat())).map(lambda xy, t: ({"source": xy[0], "target": t}, xy[1]))


class Adapted:
    """The objective of a domain-adapted run (`keras_tl.core.train.training.fine_tune(objective=...)`).

    Supervised cross-entropy on the labelled source data as always, plus the method:
    "coral" / "dann": in each phase where the backbone trains ("phase2", "full"), the model is
    fit as a `DomainAdapted` on source batches paired with target batches; "adabn": `before` sets
    the BatchNorm statistics to the source training data's (the statistics the head is trained
    with) and `after` to the target data's; "prior": `after` shifts the output biases
    (`match_prior`) so the mean target prediction is the source training data's class prior.

    Args:
        supervised: `keras_tl.core.train.training.Supervised`. How each phase is compiled.
        method: str. One of `METHODS`.
        target: tf.data.Dataset. Batches of target-domain model inputs (no labels), shuffled.
        weight: float. CORAL's loss weight or DANN's largest reversal scale.
        prior: float array `(C,)`. The source training data's `class_prior` ("prior" only).
    """

    def __init__(self, supervised, method, target, weight=1.0, prior=None):
        if method not in METHODS:
            raise ConfigError(f"`method` must be one of {list(METHODS)}. Received: method={method!r}")
        if method == "prior" and prior is None:
            raise ConfigError("`method='prior'` needs the source training data's class `prior`.")
        self.supervised, self.method, self.target, self.weight = supervised, method, target, float(weight)
        self.prior, self.wrapper, self.shifts = prior, None, None

    def compile(self, model, **kwargs):
        return self.supervised.compile(model, **kwargs)

    def for_phase(self, phase, model, train, total_steps, done_steps=0):
        """`(fit_model, train, callbacks)` for one phase: the `DomainAdapted` wrapper where it applies."""
        if self.method in ("adabn", "prior") or phase not in ("phase2", "full"):
            return model, train, []
        if self.wrapper is None:
            self.wrapper = DomainAdapted(model, self.method, self.weight)
        callbacks = []
        if self.method == "dann":
            callbacks.append(ReversalRamp(self.wrapper.reversal, self.weight, total_steps, done_steps))
        log.info(
            f"{phase}: domain adaptation '{self.method}' (weight {self.weight:g}): every source batch "
            f"trains beside a batch of target-domain inputs"
        )
        return self.wrapper, paired_batches(train, self.target), callbacks

    def before(self, model, source_inputs):
        """AdaBN: the BatchNorm statistics of the source training inputs, before any training."""
        if self.method == "adabn":
            count = adabn(model, source_inputs)
            log.info(f"AdaBN: {count} BatchNorm layers now hold the source training data's statistics")

    def after(self, model):
        """AdaBN: the BatchNorm statistics of the target inputs; prior: the output biases; after training."""
        if self.method == "prior":
            self.shifts = match_prior(model, self.target, self.prior)
            largest = max(float(np.max(np.abs(s))) for s in self.shifts.values())
            log.info(
                f"prior: output biases shifted (at most {largest:.2f}) so the mean target prediction "
                f"is the source training data's class frequencies"
            )
        if self.method == "adabn":
            count = adabn(model, self.target)
            log.info(f"AdaBN: {count} BatchNorm layers re-estimated on the target-domain data")
