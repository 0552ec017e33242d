"""Building audio backbones: a network pretrained on sound (aisfx) and ImageNet CNNs that look at
log-mel spectrograms (their registry entries: `keras_tl.audio.presets`).

Every audio backbone hears through the same in-graph front end (`keras_tl.audio.presets.FrontEnd`:
44.1 kHz mono, 2048-sample Hann STFT, hop 1024, 96 HTK mel bands, aisfx's log compression), which is
the one the aisfx network was trained on. The ImageNet route (Palanisamy et al. 2020, "Rethinking
CNN models for audio classification") turns the spectrogram into a square RGB image for the CNN.
"""

import os

import keras

from keras_tl.audio.presets import FRONT_END, PRETRAINED, check_weights, image_backbone, image_weights
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


def aisfx_weights():
    """The aisfx checkpoint converted to a Keras weights file (once; cached). Path to the file."""
    from keras_tl.weights.imports import convert_to_file

    path = keras_tl_cache("aisfx_cnn9.weights.h5")
    if not os.path.isfile(path):  # Convolutions do not depend on the input length: any frames do.
        convert_to_file("aisfx", aisfx_network(frames=16), path)
    return path


def build(spec, weights, frames, image_size=None):
    """`(layers before the backbone, backbone model)` for a window of `frames` STFT frames.

    The layers before the backbone turn the log-mel spectrogram into what the backbone reads: nothing
    for aisfx; a `SpectrogramImage` and the ImageNet preprocessing for the image CNNs.
    """
    check_weights(spec, weights)
    if spec.constructor == "aisfx":
        network = aisfx_network(frames)
        if weights in PRETRAINED:
            network.load_weights(aisfx_weights())
        elif weights != "none":
            network.load_weights(weights)
        return [], network
    from keras_tl.audio.layers import SpectrogramImage

    size = image_size or spec.default_size
    lender, image_spec = image_backbone(spec)
    before, network = lender.build_backbone(image_spec, image_weights(weights), size)
    return [SpectrogramImage(size, name="spectrogram_image"), *before], network
