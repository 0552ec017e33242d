"""Augmentation policies built from Keras preprocessing layers, applied in tf.data (train only).

A policy is a dict of parameters (`keras_tl.image.config.resolve_augment`); `none`, `light`, `standard`
and `strong` are presets and any parameter can be overridden from the config (`augment_params`).
Images stay uint8 on both sides.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_tl.image.config import AUGMENT_PRESETS


def is_identity(params):
    return params == AUGMENT_PRESETS["none"]


_MIXING = ("mixup_alpha", "cutmix")


def mixing_only(params):
    """The MixUp/CutMix part of a policy (they mix targets, so they stay in tf.data)."""
    return {k: (v if k in _MIXING else AUGMENT_PRESETS["none"][k]) for k, v in params.items()}


def layer_seeds(seed, count=16):
    """`count` distinct seeds drawn from one run seed (None: unseeded), one per random layer, so two
    layers never make the same draws."""
    if seed is None:
        return iter([None] * count)
    return iter(int(s) for s in np.random.SeedSequence(int(seed)).generate_state(count))


def image_layers(params, image_size, seed=None, seeds=None):
    """The per-image Keras layers of a parameter dict, in order, each seeded with its own seed."""
    seeds = seeds or layer_seeds(seed)
    layers = []
    if params["crop"] < 1:
        side = max(1, int(round(image_size * params["crop"])))
        layers += [keras.layers.RandomCrop(side, side, seed=next(seeds)), keras.layers.Resizing(image_size, image_size)]
    if params["flip"] != "none":
        layers.append(keras.layers.RandomFlip(params["flip"], seed=next(seeds)))
    if params["rotation"]:
        layers.append(keras.layers.RandomRotation(params["rotation"], seed=next(seeds)))
    if params["zoom"]:
        layers.append(keras.layers.RandomZoom(params["zoom"], seed=next(seeds)))
    if params["translation"]:
        layers.append(keras.layers.RandomTranslation(params["translation"], params["translation"], seed=next(seeds)))
    if params["contrast"]:
        layers.append(keras.layers.RandomContrast(params["contrast"], value_range=(0, 255), seed=next(seeds)))
    if params["brightness"]:
        layers.append(keras.layers.RandomBrightness(params["brightness"], value_range=(0, 255), seed=next(seeds)))
    if params["randaugment"]:
        layers.append(keras.layers.RandAugment(value_range=(0, 255), seed=next(seeds)))
    return layers


def batch_function(params, image_size, seed=None):
    """`(uint8 images, float targets) -> (uint8 images, float targets)` for `Dataset.map` on batches.

    MixUp and CutMix mix targets too, so they need float (one-hot or multi-hot) targets.
    """
    seeds = layer_seeds(seed)
    layers = image_layers(params, image_size, seeds=seeds)
    mixer = None
    if params["cutmix"]:
        mixer = keras.layers.CutMix(seed=next(seeds))
    elif params["mixup_alpha"]:
        mixer = keras.layers.MixUp(alpha=params["mixup_alpha"], seed=next(seeds))

    def apply(images, targets):
        x = tf.cast(images, tf.float32)
        for layer in layers:
            x = layer(x, training=True)
        if mixer is not None:
            mixed = mixer({"images": x, "labels": targets}, training=True)
            x, targets = mixed["images"], mixed["labels"]
        return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8), targets

    return apply
