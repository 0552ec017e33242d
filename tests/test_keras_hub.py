"""KerasHub image presets through the real preset code path (save_to_preset -> from_preset)."""

import numpy as np
import pytest
from conftest import tiny_arrays, tiny_config

from keras_tl.core import data as core_data
from keras_tl.core.contract import registry
from keras_tl.core.models.heads import get_backbone
from keras_tl.core.train.training import fine_tune
from keras_tl.image import data
from keras_tl.image.model import build_model


@pytest.fixture
def local_preset(tmp_path):
    import keras_hub

    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        image_shape=(None, None, 3),
    )
    converter = keras_hub.layers.ResNetImageConverter(image_size=(40, 40), scale=1 / 255.0)
    path = str(tmp_path / "tiny_resnet_preset")
    backbone.save_to_preset(path)
    converter.save_to_preset(path)
    return path, backbone


def test_local_preset_spec_reads_its_image_size(local_preset):
    path, _ = local_preset
    spec = registry.get(path)
    assert (spec.source, spec.default_size) == ("keras_hub", 40)


def test_local_preset_loads_its_weights_and_fine_tunes(tmp_path, local_preset):
    path, original = local_preset
    model = build_model(path, num_classes=3, weights="pretrained")
    loaded = get_backbone(model)
    for a, b in zip(original.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    images, labels = tiny_arrays(3, 8)
    split = core_data.Split(images, labels)
    kwargs = dict(image_size=40, batch_size=8, num_classes=3)
    config = tiny_config(tmp_path, backbone=path, weights="pretrained", image_size=40, unfreeze="top:10")
    before = [w.numpy().copy() for w in loaded.weights]
    histories = fine_tune(
        model,
        data.make_dataset(split, training=True, **kwargs),
        data.make_dataset(split, **kwargs),
        config,
        steps_per_epoch=3,
    )
    assert set(histories) == {"phase1", "phase2"}
    changed = [not np.array_equal(a, w.numpy()) for a, w in zip(before, loaded.weights)]
    assert any(changed) and not changed[0]  # top:10 left the stem convolution frozen.
