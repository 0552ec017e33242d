"""Image sources and the image tf.data pipeline.

A source is a directory of class folders, a CSV manifest, a TFDS dataset or numpy arrays; files
are scanned first (hidden, empty, corrupt and non-image files are skipped and reported, never a
crash mid-epoch). Splitting is shared (`keras_tl.core.data`). The pipeline decodes, resizes,
caches, shuffles, batches, augments (training split only) and prefetches; images travel as uint8
and the model does its own preprocessing.
"""

import os

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from keras_tl.core.contract.errors import DataError
from keras_tl.core.data import (
    Source,
    encode_labels,
    predefined_indices,
    read_manifest,
    scan_class_folders,
    shuffled_batches,
    tfds_builder,
)
from keras_tl.image import IMAGE_EXTENSIONS
from keras_tl.image import augment as augment_lib
from keras_tl.image.config import resolve_augment


def _source(class_names, items, labels, predefined, skipped):
    return Source(class_names, items, labels, "image", predefined, skipped)


def from_arrays(images, labels, class_names=None):
    """Wraps numpy arrays as a source.

    Args:
        images: array `(N, H, W)`, `(N, H, W, 1)` or `(N, H, W, 3)`; uint8 in [0, 255] or float
            in [0, 255].
        labels: int array `(N,)` of class indices.
        class_names: list of str. Defaults to "0", "1", ...

    Example:
    >>> source = keras_tl.image.data.from_arrays(np.zeros((4, 32, 32, 3), "uint8"), [0, 1, 0, 1])
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(
            f"`images` must have shape (N, H, W), (N, H, W, 1) or (N, H, W, 3). Received: shape={images.shape}"
        )
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    if images.dtype != np.uint8:
        images = np.clip(np.round(images), 0, 255).astype(np.uint8)
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"`labels` must be {len(images)} integer class indices. "
            f"Received: shape={labels.shape}, dtype={labels.dtype}"
        )
    if class_names is None:
        class_names = [str(i) for i in range(int(labels.max()) + 1)]
    if labels.min() < 0 or labels.max() >= len(class_names):
        raise DataError(
            f"`labels` must lie in [0, {len(class_names)}). Received: min={labels.min()}, max={labels.max()}"
        )
    return Source(list(class_names), images, labels.astype(np.int64), "image")


# The formats TensorFlow's `decode_image` decodes (PIL's names; MPO is a multi-picture JPEG). PIL reads
# more (TIFF, PPM, ...): a file of another format under an image name is skipped at the scan, not a
# crash mid-epoch.
DECODABLE_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP")


def check_image_file(path):
    """Returns None if `path` is an image TensorFlow decodes, else the reason it is not."""
    if os.path.basename(path).startswith("."):
        return "hidden file"
    if not path.lower().endswith(IMAGE_EXTENSIONS):
        return f"not an image extension (expected one of {', '.join(IMAGE_EXTENSIONS)})"
    try:
        if os.path.getsize(path) == 0:
            return "zero-byte file"
        with Image.open(path) as image:
            image.load()  # Decodes the pixels: catches truncated files that verify() lets through.
            found = image.format
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        return f"unreadable image: {error}"
    if found not in DECODABLE_FORMATS:
        return f"{found} data under an image name (expected {', '.join(DECODABLE_FORMATS)} data)"
    return None


def from_directory(path):
    """Scans a directory of class folders (or `train/`, `val/`, `test/` each holding them).

    Hidden, zero-byte, truncated, corrupt and non-image files are skipped and listed in
    `source.skipped` with the reason.

    Args:
        path: str. `path/<class>/<image>` or `path/<split>/<class>/<image>`.

    Returns:
        A `keras_tl.core.data.Source` of image files.
    """
    return _source(*scan_class_folders(path, check_image_file, unit="images"))


def from_manifest(path, *, separator=";"):
    """Reads a CSV manifest: a header with `path` and `label` columns, and optionally `split`.

    Paths are relative to the CSV's folder unless absolute. A label cell holding several labels
    joined by `separator` (e.g. "sky;tree") makes the source multi-label: its labels become a
    multi-hot `(N, C)` array. Unreadable files are skipped and reported, like `from_directory`.

    Example:
    >>> source = keras_tl.image.data.from_manifest("photos/labels.csv")
    """
    return _source(*read_manifest(path, check_image_file, unit="images", separator=separator))


def from_tfds(name, *, split=None, data_dir=None, image_key="image", label_key="label"):
    """Loads a tensorflow-datasets image classification dataset into memory as a source.

    Uses `tfds.load` (downloads on first use and caches in `data_dir`, as TFDS always does).
    Images are decoded to uint8 RGB arrays, so this suits datasets that fit in memory.

    Args:
        name: str. A TFDS name, e.g. "tf_flowers" or "cifar10".
        split: str. A TFDS split ("train", "train[:10%]"); None takes every split and keeps
            TFDS' own "train"/"validation"/"test" as predefined splits.
        data_dir: str. TFDS data directory. Defaults to TFDS' default.

    Example:
    >>> source = keras_tl.image.data.from_tfds("tf_flowers")
    """
    import tensorflow_datasets as tfds
    from tqdm import tqdm

    builder = tfds_builder(name, data_dir)
    label_feature = builder.info.features[label_key]
    class_names = list(getattr(label_feature, "names", None) or range(label_feature.num_classes))
    splits = [split] if split else (list(builder.info.splits) or ["train"])
    images, labels, split_of = [], [], []
    for part in splits:
        ds = tfds.load(name, split=part, data_dir=data_dir)
        for example in tqdm(tfds.as_numpy(ds), desc=f"tfds {name}[{part}]", unit="img", disable=None):
            image = example[image_key]
            if image.ndim == 2 or image.shape[-1] == 1:
                image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=-1)
            images.append(image[..., :3])
            labels.append(int(example[label_key]))
            split_of.append({"validation": "val"}.get(part, part))
    shapes = {i.shape for i in images}
    if len(shapes) != 1:
        side = max(max(s[0], s[1]) for s in shapes)  # Same size for one array; the pipeline resizes again.
        images = [tf.image.resize(i, (side, side)).numpy().round().clip(0, 255).astype(np.uint8) for i in images]
    source = from_arrays(np.stack(images), np.asarray(labels, dtype=np.int64), [str(c) for c in class_names])
    if split is None and {"train"} <= set(split_of) and len(set(split_of)) > 1:
        source.predefined = predefined_indices(split_of)
    return source


def load_source(spec):
    """A source from a config's `data` string: a class-folder directory, a `.csv` manifest, or
    "tfds:NAME[:SPLIT]"."""
    if spec.startswith("tfds:"):
        _, name, *rest = spec.split(":", 2)
        return from_tfds(name, split=rest[0] if rest else None)
    if spec.lower().endswith(".csv"):
        return from_manifest(spec)
    return from_directory(spec)


def _decode_file(path, image_size):
    data = tf.io.read_file(path)
    image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return _resize(image, image_size)


# How keras-tl resizes an image to the model's input, in training, evaluation, `predict` and the
# SavedModel's `serving_default`: what MediaPipe Tasks' ImageClassifier does to a camera frame or a
# photo, so a model meets the pixels on a phone that it met in training. That is bilinear without
# antialiasing and without half-pixel centres (output pixel x samples input x * scale: TensorFlow's
# `ResizeBilinear(half_pixel_centers=False)`); tests/test_tflite_metadata.py shows MediaPipe's scores
# equal Keras' on images three times the model's size. keras-tl resized with antialiasing before, and
# MediaPipe's labels on ELPV's original 300 px cells agreed with Keras on 93.6% of the test cells.
RESIZE = "bilinear, no antialiasing, no half-pixel centres (as MediaPipe Tasks)"


def resize_image(image, image_size):
    """An image `(H, W, 3)` resized to `image_size` square, float32 in 0-255 (`RESIZE`)."""
    return tf.raw_ops.ResizeBilinear(
        images=image[None], size=[image_size, image_size], align_corners=False, half_pixel_centers=False
    )[0]


def _resize(image, image_size):
    if image.shape[0] == image_size and image.shape[1] == image_size:
        return image
    return tf.cast(tf.clip_by_value(tf.round(resize_image(image, image_size)), 0, 255), tf.uint8)


def make_dataset(
    split,
    *,
    image_size,
    batch_size,
    num_classes,
    problem="multiclass",
    training=False,
    augment="none",
    augment_params=None,
    oversample=False,
    cache="memory",
    seed=0,
    augment_on="data",
):
    """Builds the tf.data pipeline of one split: `(uint8 images (B, S, S, 3), float targets)`.

    Decoding and resizing run in parallel (AUTOTUNE); the decoded uint8 images are cached (in
    memory, or in a file when `cache` is a path) before shuffling and augmentation, which happen
    only when `training=True`; batches are prefetched.

    Args:
        split: Split. Arrays or file paths, and labels.
        image_size: int. Side the images are resized to.
        batch_size: int.
        num_classes: int.
        problem: str. "multiclass", "binary" or "multilabel" (labels `(N, C)` multi-hot).
        training: bool. Shuffle and augment. Defaults to False.
        augment: str. An `augment` preset ("none", "light", "standard", "strong").
        augment_params: dict. Overrides of the preset's parameters.
        oversample: bool. Training only: draw every class equally often (single-label tasks).
        cache: str or bool. "memory" (or True), "none" (or False), or a file path prefix.
        seed: int.
        augment_on: str. "data" applies every augmentation here; "model" leaves the per-image
            layers to the model (`keras_tl.image.model.build_model(augmentation=...)`) and applies only
            MixUp/CutMix, which need the targets. Defaults to "data".

    Images stay uint8 up to the model, which casts them on the device: a quarter of the bytes
    of float32 to move per batch.
    """
    targets = encode_labels(split.labels, num_classes, problem)
    autotune = tf.data.AUTOTUNE
    if isinstance(split.items, np.ndarray):
        ds = tf.data.Dataset.from_tensor_slices((split.items, targets))
        ds = ds.map(lambda x, y: (_resize(x, image_size), y), num_parallel_calls=autotune)
    else:
        ds = tf.data.Dataset.from_tensor_slices((list(split.items), targets))
        ds = ds.map(lambda p, y: (_decode_file(p, image_size), y), num_parallel_calls=autotune)
    if cache is True or cache == "memory":
        ds = ds.cache()
    elif cache not in (False, None, "none"):
        ds = ds.cache(str(cache))
    ds = shuffled_batches(ds, split.labels, batch_size=batch_size, training=training, oversample=oversample, seed=seed)
    params = resolve_augment(augment, augment_params)
    if augment_on == "model":
        params = augment_lib.mixing_only(params)
    if training and not augment_lib.is_identity(params):
        ds = ds.map(augment_lib.batch_function(params, image_size, seed), num_parallel_calls=autotune)
    return ds.prefetch(autotune)
