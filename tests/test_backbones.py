import socket

import keras
import numpy as np
import pytest

from keras_tl.core.contract import registry
from keras_tl.core.contract.errors import WeightsUnavailableError
from keras_tl.image import backbones

HEAVY = {
    "nasnet_large",
    "convnext_large",
    "convnext_xlarge",
    "efficientnet_b7",
    "efficientnet_v2_l",
    "efficientnet_v2_m",
    "resnet152",
    "resnet152_v2",
    "inception_resnet_v2",
    "densenet201",
}


def test_registry_covers_every_keras_application():
    constructors = {n for n in dir(keras.applications) if n[0].isupper()}
    registered = {registry.get(n).constructor for n in registry.names(modality="image")}
    assert registered == constructors
    assert len(registered) == 40


def test_lookup_accepts_keras_spelling_and_loads_nothing():
    spec = registry.get("EfficientNetB3")
    assert (spec.name, spec.default_size, spec.min_size, spec.feature_dim) == ("efficientnet_b3", 300, 32, 1536)
    assert registry.names("mobilenet_v3*") == ["mobilenet_v3_large", "mobilenet_v3_small"]


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in registry.names(modality="image")],
)
def test_every_backbone_builds_small_with_random_weights(name):
    spec = registry.get(name)
    size = max(spec.min_size, 32)
    preprocess, base = backbones.build(spec, "none", size)
    assert base.name == "backbone"
    assert base.output_shape[-1] == spec.feature_dim
    blocks = registry.block_starts(base, spec)
    assert len(blocks) >= 2, f"{name}: block pattern {spec.block_pattern!r} found {blocks}"
    indices = [i for _, i in blocks]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    features = base(preprocess(np.full((1, size, size, 3), 128, "float32")))
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(features)))


def test_too_small_image_is_refused():
    with pytest.raises(ValueError, match=r"'xception' needs images of at least 71px. Received: image_size=64"):
        backbones.build(registry.get("xception"), "none", 64)


def test_weights_load_from_local_file(tmp_path):
    spec = registry.get("mobilenet_v2")
    _, source = backbones.build(spec, "none", 32)
    path = str(tmp_path / "mine.weights.h5")
    source.save_weights(path)
    keras.backend.clear_session()
    _, loaded = backbones.build(spec, path, 32)
    _, fresh = backbones.build(spec, "none", 32)
    for a, b in zip(source.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    differs = [not np.array_equal(a.numpy(), c.numpy()) for a, c in zip(source.weights, fresh.weights)]
    assert any(differs)  # The loaded values are the file's, not a new random init.


def test_unknown_weights_value_names_choices():
    with pytest.raises(ValueError, match="no file exists at 'imagenet21k'"):
        backbones.build(registry.get("mobilenet_v2"), "imagenet21k", 32)


def _online(host="storage.googleapis.com"):
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.network
def test_imagenet_download_offline_gives_clear_error():
    spec = registry.get("mobilenet_v2")
    if _online():
        pytest.skip("network reachable: this test checks the offline error message")
    with pytest.raises(WeightsUnavailableError) as info:
        backbones.build(spec, "pretrained", 96)
    message = str(info.value)
    assert "The ImageNet weights of 'mobilenet_v2' are not on this machine" in message
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5" in message
    assert "Backbones with weights here: efficientnet_lite0, mobilenet_v2_torchvision" in message


@pytest.mark.network
def test_remote_keras_hub_preset_offline_gives_clear_error():
    if _online("www.kaggle.com"):
        pytest.skip("network reachable: this test checks the offline error message")
    spec = registry.get("kaggle://keras/resnetv2/keras/resnet_50_imagenet")
    assert spec.source == "keras_hub"
    with pytest.raises(WeightsUnavailableError, match="save_to_preset"):
        backbones.build(spec, "pretrained", 64)
