"""Audio backbones by name: a network pretrained on sound (aisfx) and ImageNet CNNs that look at log-mel
spectrograms, registered in the one registry (`keras-tl backbones --modality audio`), and the front end
every one of them hears through.

Keras-free; building is `keras_tl.audio.backbones`, the front end's layer `keras_tl.audio.layers.LogMel`.
"""

import os
from dataclasses import dataclass

from keras_tl.core.contract import registry
from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.contract.files import check_weights_file
from keras_tl.core.contract.registry import BackboneSpec, register
from keras_tl.core.utils.paths import keras_tl_cache


@dataclass(frozen=True)
class FrontEnd:
    """How a backbone hears: the sample rate and the log-mel spectrogram it was trained on.

    Attributes:
        sample_rate: int. Hz; files are resampled and mixed to mono at this rate.
        n_fft: int. STFT window (Hann, periodic) and FFT length in samples.
        hop: int. STFT hop in samples.
        mels: int. Mel bands (HTK scale, each filter's weights summing to 1).
        fmin, fmax: float. Band edges in Hz.
        peak_normalize: bool. Scale each window to a peak of 1 first.
    """

    sample_rate: int = 44100
    n_fft: int = 2048
    hop: int = 1024
    mels: int = 96
    fmin: float = 0.0
    fmax: float = 22050.0
    peak_normalize: bool = True

    def frames(self, samples):
        """STFT frames of a `samples`-long window (centred frames, as librosa's)."""
        return 1 + samples // self.hop


FRONT_END = FrontEnd()
DEFAULT_CLIP_SECONDS = 1.0  # Drum hits and most sound events fit; the networks pool over time.
PRETRAINED = ("pretrained",)

register(
    BackboneSpec(
        name="aisfx_cnn9",
        modality="audio",
        constructor="aisfx",
        feature_dim=512,
        min_size=8,
        block_pattern=r"^(conv_block\d)_",
        weights_from="aisfx",
        description="aiSFX 9-layer CNN (4.7 M parameters) pretrained on 9 sound-effects libraries; 512-d",
        licence="CC BY 4.0 (PyPI aisfx 0.1.2; Ma & Lerch, ISMIR 2022)",
    )
)
register(
    BackboneSpec(
        name="efficientnet_lite0_mel",
        modality="audio",
        constructor="spectrogram_image",
        variant="efficientnet_lite0",
        default_size=96,
        min_size=32,
        feature_dim=1280,
        block_pattern=r"^(block\d+)[a-z]_",
        weights_from="efficientnet_lite0",
        description="ImageNet EfficientNet-Lite0 on log-mel spectrogram images (96 px by default)",
        licence="Apache-2.0",
    )
)
register(
    BackboneSpec(
        name="mobilenet_v2_mel",
        modality="audio",
        constructor="spectrogram_image",
        variant="mobilenet_v2_torchvision",
        default_size=96,
        min_size=32,
        feature_dim=1280,
        block_pattern=r"^(block_\d+)_",
        weights_from="torchvision_mobilenet_v2",
        description="ImageNet MobileNetV2 (torchvision) on log-mel spectrogram images (96 px by default)",
        licence="BSD-3-Clause",
    )
)


def resolve(name, explicit=False):
    """Audio backbones are registry names only."""
    return None


def check_weights(spec, weights):
    """Raises `ValueError` unless `weights` is something `spec` can load; loads nothing."""
    if weights in PRETRAINED + ("none",):
        return
    if not (isinstance(weights, str) and weights.endswith(".weights.h5") and os.path.isfile(weights)):
        raise ConfigError(
            f"`weights` for the audio backbone {spec.name!r} must be 'pretrained' (or 'imagenet': "
            f"its pretrained weights), 'none' or an existing .weights.h5 file of the backbone. "
            f"Received: weights={weights!r}"
        )
    check_weights_file(weights, suffixes=(".weights.h5",))


def clip_samples(config):
    """Samples in one model window at the front end's rate."""
    return int(round((config.clip_seconds or DEFAULT_CLIP_SECONDS) * FRONT_END.sample_rate))


def image_backbone(spec):
    """`(the image modality, the image spec)` an ImageNet-on-spectrogram backbone borrows, through the
    plug-in contract (modalities do not import each other)."""
    from keras_tl.core.contract import modality

    return modality.get("image"), registry.get(spec.variant, modality="image")


def image_weights(weights):
    return weights


def weights_status(spec):
    """HERE if the package that ships the backbone's checkpoint is installed (or its conversion is
    cached), else INSTALL."""
    from keras_tl.weights import imports

    converted = keras_tl_cache(f"{spec.name}.weights.h5") if spec.constructor == "aisfx" else ""
    if (converted and os.path.isfile(converted)) or imports.is_installed(spec.weights_from):
        return registry.HERE
    return registry.INSTALL
