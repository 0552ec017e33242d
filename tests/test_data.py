import os

import numpy as np
import pytest

from keras_tl import data, datasets
from conftest import write_image_folder


def test_split_is_stratified_and_reproducible():
    labels = np.repeat(np.arange(4), [40, 20, 10, 5])
    a = data.stratified_split(labels, 0.2, 0.2, seed=7)
    b = data.stratified_split(labels, 0.2, 0.2, seed=7)
    c = data.stratified_split(labels, 0.2, 0.2, seed=8)
    for s in data.SPLITS:
        np.testing.assert_array_equal(a[s], b[s])
    assert any(not np.array_equal(a[s], c[s]) for s in data.SPLITS)
    all_idx = np.concatenate([a[s] for s in data.SPLITS])
    assert sorted(all_idx.tolist()) == list(range(len(labels)))  # A partition.
    for s in ("val", "test"):
        counts = np.bincount(labels[a[s]], minlength=4)
        assert counts.tolist() == [8, 4, 2, 1]  # Every class present, in proportion.


def test_class_with_too_few_images_is_named():
    with pytest.raises(ValueError, match="Class 1 has 2 image"):
        data.stratified_split(np.array([0, 0, 0, 1, 1]), 0.2, 0.2, seed=0)


def test_labels_per_class_limits_training_split_only():
    source = datasets.load_digits([0, 1, 2])
    splits = data.split_source(source, val_split=0.1, test_split=0.2, seed=0, labels_per_class=5)
    assert np.bincount(splits["train"].labels).tolist() == [5, 5, 5]
    assert len(splits["test"]) > 100


def test_balanced_class_weights_on_known_imbalance():
    weights = data.class_weights(np.array([0] * 6 + [1] * 2), 2)
    assert weights == pytest.approx({0: 8 / (2 * 6), 1: 8 / (2 * 2)})


def test_digits_loader_counts_and_classes():
    source = datasets.load_digits([5, 6, 7, 8, 9])
    assert source.class_names == ["5", "6", "7", "8", "9"]
    assert source.images.shape == (len(source.labels), 8, 8, 3) and source.images.dtype == np.uint8
    assert np.bincount(source.labels).tolist() == [182, 181, 179, 174, 180]  # scikit-learn digits 5-9.
    assert source.images.max() == 255


def test_directory_scan_skips_and_reports_bad_files(tmp_path):
    root = write_image_folder(tmp_path / "data", num_classes=2, per_class=5)
    bad = {
        "class_0/empty.png": b"",
        "class_0/notes.txt": b"hello",
        "class_1/corrupt.jpg": b"\xff\xd8\xff\xe0 definitely not a jpeg",
        "class_1/.DS_Store": b"\x00\x01",
    }
    for rel, content in bad.items():
        with open(os.path.join(root, rel), "wb") as f:
            f.write(content)
    good = os.path.join(root, "class_1", "img_5.png")
    with open(good, "rb") as f:
        payload = f.read()
    with open(os.path.join(root, "class_1", "truncated.png"), "wb") as f:
        f.write(payload[: len(payload) // 2])
    os.makedirs(os.path.join(root, "empty_class"))
    source = data.from_directory(root)
    assert source.class_names == ["class_0", "class_1"]
    assert len(source.images) == 10
    reasons = {os.path.relpath(p, root): r for p, r in source.skipped}
    assert reasons["class_0/empty.png"] == "zero-byte file"
    assert reasons["class_0/notes.txt"].startswith("not an image extension")
    assert reasons["class_1/corrupt.jpg"].startswith("unreadable image")
    assert reasons["class_1/truncated.png"].startswith("unreadable image")
    assert reasons["class_1/.DS_Store"] == "hidden file"
    assert reasons["empty_class"] == "class folder holds no readable image"


def test_pipeline_yields_uint8_at_size_and_augments_training_only():
    images = np.tile(np.arange(32, dtype=np.uint8)[None, None, :, None], (8, 32, 1, 3))
    split = data.Split(images, np.arange(8) % 2)
    kwargs = dict(image_size=32, batch_size=8, num_classes=2, augment="light", seed=1)
    train = next(iter(data.make_dataset(split, training=True, **kwargs)))[0].numpy()
    evaluation = next(iter(data.make_dataset(split, training=False, **kwargs)))[0].numpy()
    assert train.dtype == np.uint8 and train.shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(evaluation, images)  # Not augmented, not shuffled.
    assert not np.array_equal(np.sort(train, axis=0), np.sort(images, axis=0))  # Augmented.


def test_from_arrays_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"Received: shape=\(4, 8\)"):
        data.from_arrays(np.zeros((4, 8)), [0, 1, 0, 1])
