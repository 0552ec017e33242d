"""Feature cache for the frozen phase: run the frozen backbone once, train the head on its output.

While a pretrained backbone is frozen and in inference mode, its output for an example never
changes, yet a plain `fit` recomputes it for every example in every epoch (and every validation
pass). Here the model is cut at its pooled features ("head_pool") into an extractor and a head that
is the model's own subgraph from there on: the features are computed once (with a progress bar),
the head trains on them, and the model already holds the trained head for phase 2.

Modality-agnostic: the extractor takes whatever the model takes (images, token dicts); the
pipelines come from the modality; the feature datasets from `keras_tl.core.data`.
"""

import math
import time
from dataclasses import dataclass

import keras
import numpy as np

from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.models.heads import BACKBONE_LAYER, NORM_LAYER, POOL_LAYER, is_pretrained
from keras_tl.core.utils import quiet
from keras_tl.core.utils.log import log


def split_model(model):
    """Cuts a keras-tl model into `(extractor, head)` at its pooled features.

    Args:
        model: keras.Model. With a layer named "head_pool" (or "backbone").

    Returns:
        `extractor`: model inputs -> features `(N, D)`; `head`: features -> the model's outputs.
        The head is the model's own graph from the cut on (every head, if there are several), so
        training `head` trains `model`.

    Example:
    >>> extractor, head = keras_tl.core.train.features.split_model(model)
    """
    names = [layer.name for layer in model.layers]
    cut = model.get_layer(POOL_LAYER if POOL_LAYER in names else BACKBONE_LAYER).output
    extractor = keras.Model(
        model.inputs if isinstance(model.input, list) else model.input, cut, name="feature_extractor"
    )
    outputs = model.outputs[0] if len(model.outputs) == 1 else model.output
    return extractor, keras.Model(cut, outputs, name="head")


def extract(extractor, datasets, *, augmented=False, descriptions=None, open_shapes=False):
    """Runs `extractor` once over each dataset, with Keras' progress bar, keeping each target.

    The targets ride through `predict` beside the inputs, so they stay paired with their features
    even when a dataset is shuffled or augmented (MixUp changes targets) and under a distribution
    strategy. One compiled predict function serves all the datasets.

    Args:
        extractor: keras.Model. From `split_model`.
        datasets: list of datasets of `((inputs, targets),)` batches (`data.targets_as_inputs`).
        augmented: bool. Run the extractor in training mode, so in-model augmentation layers
            apply (the backbone of a keras-tl model stays in inference mode regardless).
        descriptions: list of str. Printed before each bar.
        open_shapes: bool. A dimension the extractor fixes but a dataset yields otherwise (text
            batches trimmed to their longest row: `Modality.feature_pass`) is left open, and the
            extractor takes it. Defaults to False.

    Returns:
        A list of `(features, targets)` float32 array pairs, in each dataset's order.
    """
    yielded = [keras.tree.flatten(d.element_spec[0][0]) for d in datasets] if open_shapes else []

    def open_input(t, index):
        shape = [None if any(s[index].shape[i + 1] != n for s in yielded) else n for i, n in enumerate(t.shape[1:])]
        return keras.Input(tuple(shape), dtype=t.dtype, name=t.name)

    flat = keras.tree.flatten(extractor.input)
    opened = [open_input(t, i) for i, t in enumerate(flat)]
    inputs = keras.tree.pack_sequence_as(extractor.input, opened)
    if any(a.shape != b.shape for a, b in zip(opened, flat)):  # The extractor checks its inputs: let it take them.
        shapes = {t.name: t.shape for t in opened}
        extractor.input_spec = [
            keras.InputSpec(
                shape=shapes.get(s.name, s.shape), name=s.name, allow_last_axis_squeeze=True, optional=s.optional
            )
            for s in extractor.input_spec
        ]
    targets = keras.Input((None,), name="targets")
    outputs = extractor(inputs, training=True) if augmented else extractor(inputs)
    paired = keras.Model([inputs, targets], [outputs, keras.layers.Identity()(targets)])
    results = []
    for i, dataset in enumerate(datasets):
        description = descriptions[i] if descriptions else f"backbone features {i + 1}/{len(datasets)}"
        log.info(f"computing {description} once")
        x, y = paired.predict(dataset, verbose=quiet.predict_verbose())
        results.append((np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32)))
    return results


def in_split_order(order, features, targets):
    """Rows a feature pass read as `split.subset(order)`, put back in the split's own order."""
    if order is None or np.array_equal(order, np.arange(len(order))):
        return features, targets
    if len(order) != len(features):
        raise ConfigError(
            f"A reordered feature pass must give one row per item: {len(order)} items in the order, "
            f"received {len(features)} rows."
        )
    inverse = np.argsort(order)
    return features[inverse], targets[inverse]


@dataclass
class CachedPhase:
    """What the frozen phase trains on when features are cached.

    Attributes:
        head: keras.Model. From `split_model`; shares its layers with the full model.
        train, val: datasets of `(features, targets)` batches.
        steps_per_epoch: int. Batches per epoch of `train`.
        seconds: float. Time spent computing the features.
        repeated: bool. `train` repeats forever (several augmented views), so `fit` is given
            `steps_per_epoch`; otherwise one epoch is one pass.
        arrays: `(x, y, val_x, val_y)`: the cached features and targets themselves, which `train` and
            `val` batch (a head search batches them its own way: `keras_tl.workflow.head_search`).
    """

    head: keras.Model
    train: object
    val: object
    steps_per_epoch: int
    seconds: float
    repeated: bool = False
    arrays: tuple = ()


def standardize_from(head, x):
    """A head's standardizing layer (`HeadSpec(normalize=True)`) starts from the mean and variance of
    the cached training features `x`, exactly, as a linear probe's scaler would: evaluation, prediction
    and every export then standardize as training did, however few steps the head trains."""
    for layer in head.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.name.endswith(NORM_LAYER):
            layer.moving_mean.assign(x.mean(axis=0))
            layer.moving_variance.assign(x.var(axis=0))


def cached_phase(classifier, config, splits, train_dataset):
    """The frozen phase on cached backbone features, or None where it must run on raw inputs.

    Unaugmented splits are read through the modality's feature pass (`Modality.feature_pass`: texts
    by length, each batch trimmed to its longest row), and their features are put back in the
    split's order, so the head trains on the rows a padded pass would give, at less cost.

    Args:
        classifier: Classifier. Its model is cut at the pooled features.
        config: TrainConfig.
        splits: dict of `Split`s ("train", "val").
        train_dataset: callable `seed -> dataset`: the (augmented) training pipeline.
    """
    from keras_tl.core import data  # tf.data: the model side above runs without TensorFlow (JAX).

    frozen_phase = config.strategy != "full" and config.head_epochs > 0
    if not (config.feature_cache and frozen_phase and is_pretrained(config.weights)):
        return None
    augmenting = classifier.modality.augmenting(config)
    if augmenting and config.augmented_views == 0:
        log.info(
            "phase 1 runs on raw inputs: augmentation is on and augmented_views=0 "
            "(set augmented_views=N to cache the features of N augmented views instead)"
        )
        return None
    started = time.perf_counter()
    extractor, head = split_model(classifier.model)
    if augmenting:
        passes = [(None, train_dataset(config.seed + n)) for n in range(config.augmented_views)]
        names = [f"features of augmented view {n + 1}/{config.augmented_views}" for n in range(len(passes))]
    else:
        passes, names = (
            [classifier.modality.feature_pass(classifier, splits["train"], config)],
            ["training-set features"],
        )
    passes.append(classifier.modality.feature_pass(classifier, splits["val"], config))
    extracted = extract(
        extractor,
        [data.targets_as_inputs(ds) for _, ds in passes],
        open_shapes=True,
        augmented=augmenting and config.augment_on == "model",
        descriptions=names + ["validation-set features"],
    )
    *views, (val_x, val_y) = [in_split_order(order, *pair) for (order, _), pair in zip(passes, extracted)]
    x = np.concatenate([v[0] for v in views])
    y = np.concatenate([v[1] for v in views])
    if augmenting:  # Views are already shuffled/oversampled; one epoch = one training set's worth.
        train_features = data.feature_dataset(
            x, y, np.zeros(len(x), np.int32), batch_size=config.batch_size, training=True, seed=config.seed, repeat=True
        )
    else:
        # Rows, not items: a modality may cut an item into several rows (audio windows).
        train_features = data.feature_dataset(
            x,
            y,
            data.labels_of_targets(y, classifier.problem),
            batch_size=config.batch_size,
            training=True,
            oversample=config.balance == "oversample",
            seed=config.seed,
        )
    val_features = data.feature_dataset(
        val_x, val_y, data.labels_of_targets(val_y, classifier.problem), batch_size=config.batch_size
    )
    standardize_from(head, x)
    seconds = time.perf_counter() - started
    log.info(
        f"features cached in {seconds:.1f} s: {x.shape[0]:,} x {x.shape[1]:,} training, {val_x.shape[0]:,} validation"
    )
    return CachedPhase(
        head,
        train_features,
        val_features,
        steps_per_epoch=max(1, math.ceil(len(views[0][0]) / config.batch_size)),
        seconds=seconds,
        repeated=augmenting,
        arrays=(x, y, val_x, val_y),
    )
