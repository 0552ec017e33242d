"""Audio backbones: a network pretrained on sound (aisfx) and ImageNet CNNs that look at log-mel
spectrograms, registered in the one registry (`keras-tl backbones --audio`).

Every audio backbone hears through the same in-graph front end (`keras_tl.audio.layers.FrontEnd`:
44.1 kHz mono, 2048-sample Hann STFT, hop 1024, 96 HTK mel bands, aisfx's log compression), which is
the one the aisfx network was trained on. The ImageNet route (Palanisamy et al. 2020, "Rethinking
CNN models for audio classification") turns the spectrogram into a square RGB image for the CNN.
"""

import os

import keras

from keras_tl.core.paths import keras_tl_cache
from keras_tl.core.registry import BackboneSpec, register
from keras_tl.audio.layers import FrontEnd

FRONT_END = FrontEnd()
DEFAULT_CLIP_SECONDS = 1.0  # Drum hits and most sound events fit; the networks pool over time.
PRETRAINED = ("pretrained", "imagenet")  # "imagenet" is the config default; for aisfx it means the same.

register(BackboneSpec(
    name="aisfx_cnn9", modality="audio", constructor="aisfx", feature_dim=512, min_size=8,
    block_pattern=r"^(conv_block\d)_", weights_from="aisfx",
    description="aiSFX 9-layer CNN (4.7 M parameters) pretrained on 9 sound-effects libraries; 512-d",
    licence="CC BY 4.0 (PyPI aisfx 0.1.2; Ma & Lerch, ISMIR 2022)"))
register(BackboneSpec(
    name="efficientnet_lite0_mel", modality="audio", constructor="spectrogram_image", variant="efficientnet_lite0",
    default_size=96, min_size=32, feature_dim=1280, block_pattern=r"^(block\d+)[a-z]_",
    weights_from="efficientnet_lite0",
    description="ImageNet EfficientNet-Lite0 on log-mel spectrogram images (96 px by default)",
    licence="Apache-2.0"))
register(BackboneSpec(
    name="mobilenet_v2_mel", modality="audio", constructor="spectrogram_image", variant="mobilenet_v2_torchvision",
    default_size=96, min_size=32, feature_dim=1280, block_pattern=r"^(block_\d+)_",
    weights_from="torchvision_mobilenet_v2",
    description="ImageNet MobileNetV2 (torchvision) on log-mel spectrogram images (96 px by default)",
    licence="BSD-3-Clause"))


def resolve(name, explicit=False):
    """Audio backbones are registry names only."""
    return None


def check_weights(spec, weights):
    """Raises `ValueError` unless `weights` is something `spec` can load; loads nothing."""
    if weights in PRETRAINED + ("none",):
        return
    if not (isinstance(weights, str) and weights.endswith(".weights.h5") and os.path.isfile(weights)):
        raise ValueError(f"`weights` for the audio backbone {spec.name!r} must be 'pretrained' (or 'imagenet': "
                         f"its pretrained weights), 'none' or an existing .weights.h5 file of the backbone. "
                         f"Received: weights={weights!r}")


def clip_samples(config):
    """Samples in one model window at the front end's rate."""
    return int(round((config.clip_seconds or DEFAULT_CLIP_SECONDS) * FRONT_END.sample_rate))


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


def image_backbone(spec):
    """`(the image modality, the image spec)` an ImageNet-on-spectrogram backbone borrows, through the
    plug-in contract (modalities do not import each other)."""
    from keras_tl.core import modality, registry

    return modality.get("image"), registry.get(spec.variant, modality="image")


def image_weights(weights):
    return "imagenet" if weights in PRETRAINED else weights
