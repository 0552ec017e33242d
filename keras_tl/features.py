"""Feature cache for the frozen phase: run the frozen backbone once, train the head on its output.

While a pretrained backbone is frozen and in inference mode, its output for an image never
changes, yet a plain `fit` recomputes it for every image in every epoch (and every validation
pass). Here the model is cut after the pooling layer into an extractor and a head that shares the
model's own head layers: the features are computed once (with a progress bar), the head trains
on them, and the model already holds the trained head for phase 2 — nothing to copy back.

Backend-agnostic (Keras 3 APIs only); the feature datasets are built by `keras_tl.data`.
"""

from dataclasses import dataclass

import keras
import numpy as np

from keras_tl.model import BACKBONE_LAYER, POOL_LAYER


def split_model(model):
    """Cuts a `build_model` model into `(extractor, head)` at its pooled features.

    Args:
        model: keras.Model. From `keras_tl.model.build_model`.

    Returns:
        `extractor`: images -> features `(N, D)`; `head`: features -> predictions. The head's
        layers are the model's own, so training `head` trains `model`.

    Example:
    >>> extractor, head = keras_tl.features.split_model(model)
    """
    names = [layer.name for layer in model.layers]
    cut = POOL_LAYER if POOL_LAYER in names else BACKBONE_LAYER
    index = names.index(cut)
    extractor = keras.Model(model.input, model.layers[index].output, name="feature_extractor")
    inputs = keras.Input(tuple(model.layers[index].output.shape[1:]), name="features")
    x = inputs
    for layer in model.layers[index + 1:]:
        x = layer(x)
    return extractor, keras.Model(inputs, x, name="head")


def extract(extractor, datasets, *, augmented=False, descriptions=None):
    """Runs `extractor` once over each dataset, with Keras' progress bar, keeping each target.

    The targets ride through `predict` beside the images, so they stay paired with their features
    even when a dataset is shuffled or augmented (MixUp changes targets) and under a distribution
    strategy. One compiled predict function serves all the datasets.

    Args:
        extractor: keras.Model. From `split_model`.
        datasets: list of datasets of `((images, targets),)` batches
            (`keras_tl.data.targets_as_inputs`).
        augmented: bool. Run the extractor in training mode, so in-model augmentation layers
            apply (the backbone of a `build_model` model stays in inference mode regardless).
        descriptions: list of str. Printed before each bar.

    Returns:
        A list of `(features, targets)` float32 array pairs, in each dataset's order.
    """
    images = keras.Input(tuple(extractor.input_shape[1:]), name="images")
    targets = keras.Input((None,), name="targets")
    outputs = extractor(images, training=True) if augmented else extractor(images)
    paired = keras.Model([images, targets], [outputs, keras.layers.Identity()(targets)])
    results = []
    for i, dataset in enumerate(datasets):
        description = descriptions[i] if descriptions else f"backbone features {i + 1}/{len(datasets)}"
        print(f"[keras-tl] computing {description} once")
        x, y = paired.predict(dataset, verbose=1)
        results.append((np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32)))
    return results


@dataclass
class CachedPhase:
    """What the frozen phase trains on when features are cached (see `keras_tl.workflow`).

    Attributes:
        head: keras.Model. From `split_model`; shares its layers with the full model.
        train, val: datasets of `(features, targets)` batches.
        steps_per_epoch: int. Batches per epoch of `train`.
        seconds: float. Time spent computing the features.
        repeated: bool. `train` repeats forever (several augmented views), so `fit` is given
            `steps_per_epoch`; otherwise one epoch is one pass.
    """

    head: keras.Model
    train: object
    val: object
    steps_per_epoch: int
    seconds: float
    repeated: bool = False
