"""Augmentation policies built from Keras preprocessing layers, applied in tf.data (train only)."""

import keras
import tensorflow as tf

POLICIES = ("none", "light", "standard")


def layers_for(name, seed=None):
    """The Keras preprocessing layers of a named policy.

    Args:
        name: str. "none", "light" (flip, small rotation and zoom) or "standard" (light plus
            translation, contrast and brightness).
        seed: int. Seed of the random layers.
    """
    if name not in POLICIES:
        raise ValueError(f"Unknown augmentation policy {name!r}. Available: {list(POLICIES)}")
    if name == "none":
        return []
    layers = [
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(0.05, seed=seed),
        keras.layers.RandomZoom(0.1, seed=seed),
    ]
    if name == "standard":
        layers += [
            keras.layers.RandomTranslation(0.1, 0.1, seed=seed),
            keras.layers.RandomContrast(0.2, seed=seed),
            keras.layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed),
        ]
    return layers


def policy(name, seed=None):
    """A function `uint8 batch -> augmented uint8 batch` for `tf.data.Dataset.map`."""
    layers = layers_for(name, seed)

    def apply(images):
        x = tf.cast(images, tf.float32)
        for layer in layers:
            x = layer(x, training=True)
        return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)

    return apply
