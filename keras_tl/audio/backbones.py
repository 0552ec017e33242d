"""Building audio backbones: networks pretrained on sound effects (aisfx) and on music tagging
(musicnn), and ImageNet CNNs that look at log-mel spectrograms (their registry entries:
`keras_tl.audio.presets`).

Each backbone hears through the in-graph front end it was trained on (`keras_tl.audio.presets.FrontEnd`):
aisfx's (44.1 kHz mono, 2048-sample Hann STFT, hop 1024, 96 HTK mel bands, its log compression), which
the ImageNet CNNs share, or musicnn's (16 kHz, 512/256, 96 Slaney mel bands). The ImageNet route (Palanisamy et al. 2020, "Rethinking
CNN models for audio classification") turns the spectrogram into a square RGB image for the CNN.
"""

import os

import keras

from keras_tl.audio.presets import (
    FRONT_END,
    MUSICNN_FRONT_END,
    PRETRAINED,
    check_weights,
    image_backbone,
    image_weights,
)
from keras_tl.core.contract.files import load_weights_file
from keras_tl.core.utils.paths import keras_tl_cache


def aisfx_network(frames, mels=FRONT_END.mels):
    """aisfx's `EmbeddingNet` (Cnn_9layers, Kong et al.'s DCASE baseline) without its pooling:
    `(B, frames, mels, 1)` -> `(B, frames/8, mels/8, 512)`. Four blocks of two 3x3 convs (no bias) +
    BatchNorm (eps 1e-5, PyTorch's) + ReLU, 2x2 max pooling after the first three."""
    inputs = keras.Input((frames, mels, 1), name="log_mel")
    x = inputs
    for block, channels in enumerate((64, 128, 256, 512), 1):
        for k in (1, 2):
            x = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False, name=f"conv_block{block}_conv{k}")(x)
            x = keras.layers.BatchNormalization(epsilon=1e-5, name=f"conv_block{block}_bn{k}")(x)
            x = keras.layers.ReLU(name=f"conv_block{block}_relu{k}")(x)
        if block < 4:
            x = keras.layers.MaxPooling2D(2, name=f"conv_block{block}_pool")(x)
    return keras.Model(inputs, x, name="aisfx_cnn9")


def musicnn_network(frames, mels=MUSICNN_FRONT_END.mels):
    """musicnn's front end and mid end (Pons & Serra 2019; `musicnn/models.py`, `build_musicnn`)
    without its back end: `(B, frames, mels, 1)` -> `(B, frames, 1, 753)`.

    Front end: BatchNorm of the input, then "timbral" convolutions (204 filters of 7 frames x 38 and
    x 67 mel bands) and "temporal" ones (51 filters of 128, 64 and 32 frames x 1 band), each ReLU +
    BatchNorm and max-pooled over frequency. Mid end: three 64-filter convolutions of 7 frames over all
    channels, the last two residual. Output: the front end's 561 channels and the three mid-end
    outputs side by side (musicnn's dense connection), whose means and maxima over time are musicnn's
    `mean_pool` and `max_pool` features. TF1 BatchNorm (epsilon 1e-3); padding as the original.
    """
    layers = keras.layers
    inputs = keras.Input((frames, mels, 1), name="log_mel")
    x = layers.BatchNormalization(epsilon=1e-3, name="frontend_input_bn")(inputs)
    padded = layers.ZeroPadding2D(((3, 3), (0, 0)), name="frontend_timbral_pad")(x)
    branches = []
    for name, filters, kernel, source, padding in (
        ("timbral74", 204, (7, int(0.4 * mels)), padded, "valid"),
        ("timbral77", 204, (7, int(0.7 * mels)), padded, "valid"),
        ("temporal1", 51, (128, 1), x, "same"),
        ("temporal2", 51, (64, 1), x, "same"),
        ("temporal3", 51, (32, 1), x, "same"),
    ):
        y = layers.Conv2D(filters, kernel, padding=padding, activation="relu", name=f"frontend_{name}_conv")(source)
        y = layers.BatchNormalization(epsilon=1e-3, name=f"frontend_{name}_bn")(y)
        branches.append(layers.MaxPooling2D((1, y.shape[2]), name=f"frontend_{name}_pool")(y))
    front = layers.Concatenate(name="frontend_concat")(branches)  # (B, frames, 1, 561)
    outputs, previous = [front], front
    for k in (1, 2, 3):  # A (7, 1) convolution over the channels is the original's (7, C) one.
        y = layers.Conv2D(64, (7, 1), padding="same", activation="relu", name=f"midend{k}_conv")(previous)
        y = layers.BatchNormalization(epsilon=1e-3, name=f"midend{k}_bn")(y)
        previous = y if k == 1 else layers.Add(name=f"midend{k}_add")([y, previous])
        outputs.append(previous)
    return keras.Model(inputs, layers.Concatenate(name="midend_concat")(outputs), name="musicnn")


NETWORKS = {"aisfx": aisfx_network, "musicnn": musicnn_network}  # Sound networks by constructor: frames -> model.


def pretrained_weights(spec):
    """A sound network's checkpoint converted to a Keras weights file (once; cached). Path to the file."""
    from keras_tl.weights.imports import convert_to_file

    path = keras_tl_cache(f"{spec.name}.weights.h5")
    if not os.path.isfile(path):  # The kernels do not depend on the input length: any frames convert.
        convert_to_file(spec.weights_from, NETWORKS[spec.constructor](16), path)
    return path


def build(spec, weights, frames, image_size=None):
    """`(layers before the backbone, backbone model)` for a window of `frames` STFT frames.

    The layers before the backbone turn the log-mel spectrogram into what the backbone reads: nothing
    for aisfx; a `SpectrogramImage` and the ImageNet preprocessing for the image CNNs.
    """
    check_weights(spec, weights)
    if spec.constructor in NETWORKS:
        network = NETWORKS[spec.constructor](frames)
        if weights in PRETRAINED:
            network.load_weights(pretrained_weights(spec))
        elif weights != "none":
            load_weights_file(
                network, weights, spec.name, expected="its weights (`save_weights` of this keras-tl backbone)"
            )
        return [], network
    from keras_tl.audio.layers import SpectrogramImage

    size = image_size or spec.default_size
    lender, image_spec = image_backbone(spec)
    before, network = lender.build_backbone(image_spec, image_weights(weights), size)
    return [SpectrogramImage(size, name="spectrogram_image"), *before], network
