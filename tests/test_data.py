import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import write_image_folder
from PIL import Image

import keras_tl
from keras_tl import datasets
from keras_tl.core import data as core_data
from keras_tl.image import data


def test_split_is_stratified_and_reproducible():
    labels = np.repeat(np.arange(4), [40, 20, 10, 5])
    a = core_data.stratified_split(labels, 0.2, 0.2, seed=7)
    b = core_data.stratified_split(labels, 0.2, 0.2, seed=7)
    c = core_data.stratified_split(labels, 0.2, 0.2, seed=8)
    for s in core_data.SPLITS:
        np.testing.assert_array_equal(a[s], b[s])
    assert any(not np.array_equal(a[s], c[s]) for s in core_data.SPLITS)
    all_idx = np.concatenate([a[s] for s in core_data.SPLITS])
    assert sorted(all_idx.tolist()) == list(range(len(labels)))  # A partition.
    for s in ("val", "test"):
        counts = np.bincount(labels[a[s]], minlength=4)
        assert counts.tolist() == [8, 4, 2, 1]  # Every class present, in proportion.


def test_class_with_too_few_images_is_named():
    with pytest.raises(ValueError, match="Class 1 has 2 image"):
        core_data.stratified_split(np.array([0, 0, 0, 1, 1]), 0.2, 0.2, seed=0)


def test_labels_per_class_limits_training_split_only():
    source = datasets.load_digits([0, 1, 2])
    splits = core_data.split_source(source, val_split=0.1, test_split=0.2, seed=0, labels_per_class=5)
    assert np.bincount(splits["train"].labels).tolist() == [5, 5, 5]
    assert len(splits["test"]) > 100


def test_balanced_class_weights_on_known_imbalance():
    weights = core_data.class_weights(np.array([0] * 6 + [1] * 2), 2)
    assert weights == pytest.approx({0: 8 / (2 * 6), 1: 8 / (2 * 2)})


def test_digits_loader_counts_and_classes():
    source = datasets.load_digits([5, 6, 7, 8, 9])
    assert source.class_names == ["5", "6", "7", "8", "9"]
    assert source.items.shape == (len(source.labels), 8, 8, 3) and source.items.dtype == np.uint8
    assert np.bincount(source.labels).tolist() == [182, 181, 179, 174, 180]  # scikit-learn digits 5-9.
    assert source.items.max() == 255


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
    assert len(source.items) == 10
    reasons = {os.path.relpath(p, root): r for p, r in source.skipped}
    assert reasons["class_0/empty.png"] == "zero-byte file"
    assert reasons["class_0/notes.txt"].startswith("not an image extension")
    assert reasons["class_1/corrupt.jpg"].startswith("unreadable image")
    assert reasons["class_1/truncated.png"].startswith("unreadable image")
    assert reasons["class_1/.DS_Store"] == "hidden file"
    assert reasons["empty_class"] == "class folder holds no readable image"


def test_odd_files_are_skipped_and_named_not_crashed_on(tmp_path):
    """TIFF and PPM bytes under image names passed the scan (PIL reads them) and crashed training with
    TensorFlow's "Unknown image file format"; a symlink loop raised OSError from the scan."""
    root = write_image_folder(tmp_path / "data", num_classes=2, per_class=4)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(os.path.join(root, "class_0", "scan.jpg"), format="TIFF")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(os.path.join(root, "class_1", "frame.png"), format="PPM")
    os.symlink("loop_b.png", os.path.join(root, "class_0", "loop_a.png"))
    os.symlink("loop_a.png", os.path.join(root, "class_0", "loop_b.png"))
    source = data.from_directory(root)
    reasons = {os.path.relpath(p, root): r for p, r in source.skipped}
    assert reasons["class_0/scan.jpg"] == "TIFF data under an image name (expected JPEG, MPO, PNG, BMP, GIF, WEBP data)"
    assert reasons["class_1/frame.png"].startswith("PPM data under an image name")
    assert reasons["class_0/loop_a.png"].startswith("unreadable")
    assert {"class_0/loop_a.png", "class_0/loop_b.png"} <= set(reasons)
    assert len(source.items) == 8
    ds = data.make_dataset(source.as_split(), image_size=16, batch_size=8, num_classes=2)
    assert sum(len(x) for x, _ in ds) == 8  # Every kept file decodes.


def test_manifests_with_a_bom_a_row_without_path_and_odd_rows_are_read(tmp_path):
    write_image_folder(tmp_path / "imgs", num_classes=2, per_class=3)
    files = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "imgs").rglob("*.png"))
    rows = ["path,label"] + [f"{f},{'a' if i % 2 else 'b'}" for i, f in enumerate(files)] + [",a", "lonely"]
    (tmp_path / "m.csv").write_bytes("\ufeff".encode() + "\n".join(rows).encode() + b"\n")  # Excel's BOM.
    source = data.from_manifest(str(tmp_path / "m.csv"))
    assert source.class_names == ["a", "b"] and len(source.items) == 6
    reasons = dict(source.skipped)
    assert reasons[f"{tmp_path / 'm.csv'}:8"] == "row 8: no path" and len(source.skipped) == 2
    (tmp_path / "bad.csv").write_bytes(b"path,label\n\xff\xfe\x00garbage,a\n")
    with pytest.raises(keras_tl.DataError, match="not a readable CSV manifest"):
        data.from_manifest(str(tmp_path / "bad.csv"))


def test_each_augmentation_layer_draws_with_its_own_seed():
    """Every image augmentation layer got the run's seed itself: their draws were correlated."""
    from keras_tl.image import augment
    from keras_tl.image.config import resolve_augment

    layers = augment.image_layers(resolve_augment("strong"), 32, seed=42)
    seeds = [layer.seed for layer in layers if getattr(layer, "seed", None) is not None]
    assert len(seeds) >= 6 and len(set(seeds)) == len(seeds)
    assert seeds == [
        layer.seed
        for layer in augment.image_layers(resolve_augment("strong"), 32, seed=42)
        if getattr(layer, "seed", None) is not None
    ]  # Still one run seed: reproducible.


def test_pipeline_yields_uint8_at_size_and_augments_training_only():
    images = np.tile(np.arange(32, dtype=np.uint8)[None, None, :, None], (8, 32, 1, 3))
    split = core_data.Split(images, np.arange(8) % 2)
    kwargs = dict(image_size=32, batch_size=8, num_classes=2, augment="light", seed=1)
    train = next(iter(data.make_dataset(split, training=True, **kwargs)))[0].numpy()
    evaluation = next(iter(data.make_dataset(split, training=False, **kwargs)))[0].numpy()
    assert train.dtype == np.uint8 and train.shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(evaluation, images)  # Not augmented, not shuffled.
    assert not np.array_equal(np.sort(train, axis=0), np.sort(images, axis=0))  # Augmented.


def test_from_arrays_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"Received: shape=\(4, 8\)"):
        data.from_arrays(np.zeros((4, 8)), [0, 1, 0, 1])


def _write(path, image, fmt, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, fmt, **kwargs)


def test_every_image_kind_decodes_to_rgb_through_the_pipeline(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = Image.fromarray((rng.random((24, 20, 3)) * 255).astype(np.uint8))
    gray16 = Image.fromarray((rng.random((24, 20)) * 65535).astype(np.uint16))
    root = tmp_path / "kinds"
    frames = [rgb, rgb.rotate(90)]
    files = {
        "a/photo.jpg": (rgb, "JPEG", {}),
        "a/cmyk.jpg": (rgb.convert("CMYK"), "JPEG", {}),
        "a/gray.jpg": (rgb.convert("L"), "JPEG", {}),
        "a/deep 16-bit.png": (gray16, "PNG", {}),
        "b/rgba.png": (rgb.convert("RGBA"), "PNG", {}),
        "b/image.webp": (rgb, "WEBP", {"lossless": True}),
        "b/anim.gif": (frames[0].convert("P"), "GIF", {"save_all": True, "append_images": [frames[1].convert("P")]}),
        "b/bitmap.bmp": (rgb, "BMP", {}),
        "b/ünïcødé nåme.png": (rgb, "PNG", {}),
    }
    for rel, (image, fmt, kwargs) in files.items():
        _write(str(root / rel), image, fmt, **kwargs)
    source = data.from_directory(str(root))
    assert not source.skipped and len(source.items) == len(files)
    ds = data.make_dataset(source.as_split(), image_size=16, batch_size=32, num_classes=2)
    images = next(iter(ds))[0].numpy()
    assert images.shape == (len(files), 16, 16, 3) and images.dtype == np.uint8
    by_name = dict(zip([os.path.relpath(p, root) for p in source.items], images))

    def resized(image):  # The pipeline's resize, on an RGB PIL image.
        return np.round(data.resize_image(tf.constant(np.asarray(image.convert("RGB"))), 16).numpy())

    for name in ("b/image.webp", "b/bitmap.bmp", "b/rgba.png", "a/cmyk.jpg", "a/photo.jpg"):
        lossy = name.endswith(".jpg")  # Against PIL's decoding of the same file: the colours, not JPEG's loss.
        reference = resized(Image.open(root / name)) if lossy else resized(rgb)
        error = np.abs(by_name[name].astype(np.float64) - reference).mean()
        assert error < (3 if lossy else 0.5), f"{name}: mean abs error {error:.1f} vs the RGB original"
    gray = by_name["a/gray.jpg"]
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])


def test_manifest_multilabel_with_splits_and_a_missing_file(tmp_path):
    write_image_folder(tmp_path / "imgs", num_classes=2, per_class=6)
    files = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "imgs").rglob("*.png"))
    rows = ["path,label,split"]
    for i, f in enumerate(files):
        label = ["sky", "sky;tree", "tree", "car;sky"][i % 4]
        rows.append(f"{f},{label},{['train', 'train', 'val', 'test'][i % 4]}")
    rows.append("imgs/missing.png,sky,train")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    source = data.from_manifest(str(tmp_path / "labels.csv"))
    assert source.class_names == ["car", "sky", "tree"]
    assert source.labels.shape == (12, 3)
    assert source.labels[1].tolist() == [0, 1, 1] and source.labels[3].tolist() == [1, 1, 0]
    assert [r for _, r in source.skipped] == ["file not found"]
    splits = core_data.split_source(source, val_split=0.2, test_split=0.2, seed=0)
    assert (len(splits["train"]), len(splits["val"]), len(splits["test"])) == (6, 3, 3)
    targets = core_data.encode_labels(splits["train"].labels, 3, "multilabel")
    assert targets.dtype == np.float32 and targets.shape == (6, 3)


def test_manifest_without_label_column_is_refused(tmp_path):
    (tmp_path / "m.csv").write_text("file,class\na.png,x\n")
    with pytest.raises(
        ValueError,
        match=r"needs 'path' and 'label' columns \(or 'label:<head>' columns.*Received columns: \['file', 'class'\]",
    ):
        data.from_manifest(str(tmp_path / "m.csv"))


def test_oversampling_draws_classes_equally():
    labels = np.array([0] * 90 + [1] * 10)
    images = np.zeros((100, 8, 8, 3), np.uint8)
    ds = data.make_dataset(
        core_data.Split(images, labels),
        image_size=8,
        batch_size=100,
        num_classes=2,
        training=True,
        oversample=True,
        seed=3,
    )
    drawn = np.concatenate([y.numpy().argmax(-1) for _ in range(5) for _, y in ds])
    assert len(drawn) == 500
    assert 0.4 < drawn.mean() < 0.6  # Class 1 is 10% of the data but ~half of the draws.


def test_strong_policy_mixes_targets_and_overrides_apply():
    from keras_tl.image.config import resolve_augment

    assert resolve_augment("light", {"rotation": 0.3})["rotation"] == 0.3
    with pytest.raises(ValueError, match=r"Unknown image augmentation parameters \['blur'\]"):
        resolve_augment("light", {"blur": 1})
    images = (np.random.default_rng(0).random((16, 32, 32, 3)) * 255).astype(np.uint8)
    split = core_data.Split(images, np.arange(16) % 4)
    ds = data.make_dataset(
        split,
        image_size=32,
        batch_size=16,
        num_classes=4,
        training=True,
        augment="strong",
        augment_params={"mixup_alpha": 0.4},
        seed=0,
    )
    x, y = next(iter(ds))
    y = y.numpy()
    assert x.dtype == np.uint8 and x.shape == (16, 32, 32, 3)
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)
    assert np.any((y > 0.01) & (y < 0.99))  # MixUp blended some targets.


def test_disk_cache_serves_the_decoded_images_after_the_files_change(tmp_path):
    """The cache holds the decoded pixels: once written, the pipeline reads it, not the image files."""
    write_image_folder(tmp_path / "imgs", num_classes=2, per_class=2, size=8)
    files = sorted(str(p) for p in (tmp_path / "imgs").rglob("*.png"))
    split = core_data.Split(files, np.array([0, 0, 1, 1]))
    os.makedirs(tmp_path / "cache")
    ds = data.make_dataset(split, image_size=8, batch_size=4, num_classes=2, cache=str(tmp_path / "cache" / "c"))
    ((first, _),) = list(ds)  # One whole pass writes the cache.
    first = first.numpy()
    assert any(f.startswith("c") for f in os.listdir(tmp_path / "cache"))
    for path in files:  # Every file now holds another picture.
        Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(path)
    ((again, _),) = list(ds)
    again = again.numpy()
    np.testing.assert_array_equal(again, first)
    fresh = next(iter(data.make_dataset(split, image_size=8, batch_size=4, num_classes=2, cache="none")))[0].numpy()
    assert np.all(fresh == 7) and not np.array_equal(fresh, first)  # Without the cache the change shows.


def test_tfds_source_on_tfds_mock_data(monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(core_data.sources, "reachable", lambda host: True)  # TFDS' mock stands in for the download.
    with tfds.testing.mock_data(num_examples=30):
        source = data.from_tfds("mnist", split="train")
    assert source.class_names == [str(i) for i in range(10)]
    assert source.items.shape == (30, 28, 28, 3) and source.items.dtype == np.uint8
    assert len(source.labels) == 30 and source.labels.max() < 10


@pytest.mark.network
def test_tfds_offline_gives_clear_error_fast(tmp_path):
    import time

    if core_data.sources.reachable("storage.googleapis.com"):
        pytest.skip("network reachable: this test checks the offline error message")
    start = time.perf_counter()
    with pytest.raises(keras_tl.DatasetUnavailableError, match=r"no prepared copy of 'mnist'.*tfds build mnist"):
        data.from_tfds("mnist", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize(
    "items, message",
    [
        ([np.zeros((32, 32, 3), np.uint8)] * 8, "list holding ndarray"),
        (np.array([object()] * 8, dtype=object), "ndarray holding ndarray"),
        (["a.png"] * 7, "8 labels"),
    ],
)
def test_a_python_source_of_odd_items_is_refused_before_the_run_starts(tmp_path, items, message):
    """A list of image arrays reached splits.json and failed there with a bare TypeError, the run directory
    half written."""
    from conftest import tiny_config

    import keras_tl
    from keras_tl.core.data import Source

    source = Source(["0", "1"], items, np.array([0, 1] * 4), "image")
    config = tiny_config(tmp_path)
    with pytest.raises(keras_tl.ConfigError, match=f"A source.*{message}"):
        keras_tl.train(config, source)
    assert not os.path.exists(config.out)
