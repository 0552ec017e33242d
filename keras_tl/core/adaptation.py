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
- `GradientReversal`: the layer of DANN (Ganin et al., "Domain-Adversarial Training of Neural
  Networks", JMLR 2016): the identity forward, gradients times `-scale` backward, so features
  are trained to fool a domain classifier placed behind it.
"""

import keras
import numpy as np

from keras_tl.core import heads
from keras_tl.core.transferability import linear_probe


def proxy_a_distance(source_features, target_features):
    """Proxy A-distance between two sets of features `(N, D)` and `(M, D)`: `2 (1 - 2 err)`, in [-2, 2].

    `err` is the leave-one-out error of a ridge linear classifier (standardized features, ridge
    chosen by leave-one-out) telling the two sets apart. Balance the sets' sizes: with N != M a
    classifier that always says the larger set already has error `min(N, M) / (N + M)`.

    Example:
    >>> keras_tl.core.adaptation.proxy_a_distance(mono_features, poly_features)
    1.62
    """
    source, target = np.asarray(source_features, np.float64), np.asarray(target_features, np.float64)
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1] or min(len(source), len(target)) < 2:
        raise ValueError(f"`source_features` and `target_features` must be (N, D) and (M, D) with the same D and "
                         f"at least 2 rows each. Received: {source.shape} and {target.shape}")
    accuracy, _ = linear_probe(np.concatenate([source, target]),
                               np.r_[np.zeros(len(source), np.int64), np.ones(len(target), np.int64)])
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
        raise ValueError(f"`source_features` and `target_features` must be (N, D) and (M, D) with the same D. "
                         f"Received: {source.shape} and {target.shape}")
    if not regularization > 0:
        raise ValueError(f"`regularization` must be > 0. Received: {regularization!r}")
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
        target_inputs: array or list of arrays. Raw model inputs from the target domain (images as
            the model takes them), at least one batch.
        batch_size: int. Larger batches give better per-batch statistics. Defaults to 64.
        verbose: int. 1: a progress bar.

    Returns:
        int. The number of BatchNorm layers re-estimated (0: the backbone has none; nothing changed).
    """
    backbone = heads.get_backbone(model)
    norms = [layer for layer in backbone._flatten_layers(include_self=False)
             if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        return 0
    count = len(target_inputs[0] if isinstance(target_inputs, (list, tuple)) else target_inputs)
    if count < 2:
        raise ValueError(f"AdaBN needs at least 2 target inputs to estimate statistics. Received: {count}")
    # What the backbone is fed: the model's in-graph preprocessing up to the "backbone" layer.
    feed = keras.Model(model.input, model.get_layer(heads.BACKBONE_LAYER).input)
    noisy = [layer for layer in backbone._flatten_layers(include_self=False) if hasattr(layer, "rate")]
    # Parents come before their layers, so restoring in this order puts every layer's own flag back.
    trainable = [(layer, layer.trainable) for layer in backbone._flatten_layers(include_self=True)]
    momentums, rates = [layer.momentum for layer in norms], [layer.rate for layer in noisy]
    try:
        for layer, _ in trainable:
            layer.trainable = True  # BatchNorm updates its statistics only when trainable (Keras 3).
        for layer in noisy:
            layer.rate = 0.0
        batches = range(0, count, batch_size)
        bar = keras.utils.Progbar(len(batches), unit_name="batch") if verbose else None
        for i, start in enumerate(batches):
            if count - start < 2 and i > 0:
                break  # A batch of one has no variance; the statistics so far stand.
            for layer in norms:
                layer.momentum = i / (i + 1)
            chunk = ([x[start:start + batch_size] for x in target_inputs] if isinstance(target_inputs, (list, tuple))
                     else target_inputs[start:start + batch_size])
            backbone(feed(chunk, training=False), training=True)
            if bar is not None:
                bar.update(i + 1)
    finally:
        for layer, flag in trainable:
            layer.trainable = flag
        for layer, momentum in zip(norms, momentums):
            layer.momentum = momentum
        for layer, rate in zip(noisy, rates):
            layer.rate = rate
    return len(norms)


@keras.saving.register_keras_serializable(package="keras_tl")
class GradientReversal(keras.layers.Layer):
    """The identity forward; gradients times `-scale` backward (DANN's gradient-reversal layer).

    Written as `stop_gradient((1 + scale) x) - scale x`, so it works on every Keras backend.

    Args:
        scale: float >= 0. DANN's lambda. Change it during training with `layer.scale.assign(v)`
            (Ganin et al. ramp it from 0 to 1: `2 / (1 + exp(-10 p)) - 1` at training progress p).

    Example:
    >>> reversed_features = keras_tl.core.adaptation.GradientReversal(scale=0.3)(features)
    >>> domain = keras.layers.Dense(1, activation="sigmoid", name="domain")(reversed_features)
    """

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        if not scale >= 0:
            raise ValueError(f"`scale` must be >= 0. Received: scale={scale!r}")
        self._initial_scale = float(scale)
        self.scale = self.add_weight(shape=(), initializer=keras.initializers.Constant(float(scale)),
                                     trainable=False, name="scale")

    def call(self, inputs):
        scale = keras.ops.cast(self.scale, inputs.dtype)
        return keras.ops.stop_gradient((1.0 + scale) * inputs) - scale * inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self._initial_scale}
