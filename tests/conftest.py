"""Shared test helpers: tiny data and tiny models, in one place."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from keras_tl import backbones, datasets  # noqa: E402
from keras_tl.config import TrainConfig  # noqa: E402
from keras_tl.model import build_model  # noqa: E402

TINY_SIZE = 32


def tiny_config(tmp_path, **overrides):
    """A config that trains in seconds: MobileNetV2 at 32px, one epoch a phase."""
    values = dict(
        out=str(tmp_path / "run"),
        backbone="mobilenet_v2",
        weights="none",
        image_size=TINY_SIZE,
        head_epochs=1,
        epochs=1,
        batch_size=16,
        early_stopping_patience=None,
    )
    values.update(overrides)
    return TrainConfig(**values)


def local_pretrained_weights(tmp_path, backbone="mobilenet_v2", size=TINY_SIZE):
    """A weights file a test made itself, with real (non-default) BatchNorm statistics.

    It stands in for downloaded ImageNet weights: models built from it count as pretrained. The
    moving statistics are those of real digit images (one training-mode pass with momentum 0),
    so activations are normalized as in a trained network.
    """
    spec = backbones.get(backbone)
    preprocess, base = backbones.build(spec, "none", size)
    norms = [l for l in base.layers if isinstance(l, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    images, _ = tiny_arrays(3, 12)
    images = keras.ops.image.resize(images.astype("float32"), (size, size))
    base(preprocess(images), training=True)
    path = str(tmp_path / f"{backbone}.weights.h5")
    base.save_weights(path)
    return path


def tiny_arrays(num_classes=3, per_class=12, size=TINY_SIZE, seed=0):
    """Real digit scans (scikit-learn) as uint8 RGB arrays: (images, labels)."""
    source = datasets.load_digits(list(range(num_classes)))
    rng = np.random.default_rng(seed)
    keep = np.concatenate(
        [rng.choice(np.flatnonzero(source.labels == c), per_class, replace=False) for c in range(num_classes)]
    )
    return source.images[keep], source.labels[keep]


def write_image_folder(root, num_classes=3, per_class=8, size=40, fmt="png"):
    """Writes real digit scans as image files in class folders; returns the root."""
    images, labels = tiny_arrays(num_classes, per_class)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = os.path.join(root, f"class_{label}")
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(image).resize((size, size)).save(os.path.join(folder, f"img_{i}.{fmt}"))
    return str(root)


def tiny_model(tmp_path, num_classes=3, weights=None, **kwargs):
    weights = weights or local_pretrained_weights(tmp_path)
    return build_model("mobilenet_v2", num_classes=num_classes, weights=weights,
                       image_size=TINY_SIZE, **kwargs)


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    keras.backend.clear_session()
    keras.config.set_dtype_policy("float32")
    yield
