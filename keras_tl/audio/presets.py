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

AISFX_LOG_MAX = 9.457798957824707  # aisfx's "original" min-max normalization: log10(1 + 1e4 * mel) / max


@dataclass(frozen=True)
class FrontEnd:
    """How a backbone hears: the sample rate and the log-mel spectrogram it was trained on.

    Attributes:
        sample_rate: int. Hz; files are resampled and mixed to mono at this rate.
        n_fft: int. STFT window (Hann, periodic) and FFT length in samples.
        hop: int. STFT hop in samples.
        mels: int. Mel bands.
        fmin, fmax: float. Band edges in Hz.
        peak_normalize: bool. Scale each window to a peak of 1 first.
        mel_scale: str. "htk" (each filter's weights summing to 1) or "slaney" (librosa's default
            scale and area normalization).
        log_divisor: float. The spectrogram is `log10(1 + 10^4 * mel) / log_divisor`.
    """

    sample_rate: int = 44100
    n_fft: int = 2048
    hop: int = 1024
    mels: int = 96
    fmin: float = 0.0
    fmax: float = 22050.0
    peak_normalize: bool = True
    mel_scale: str = "htk"
    log_divisor: float = AISFX_LOG_MAX

    def frames(self, samples):
        """STFT frames of a `samples`-long window (centred frames, as librosa's)."""
        return 1 + samples // self.hop

    def samples(self, seconds):
        """Samples in a window of `seconds` (default `DEFAULT_CLIP_SECONDS`) at this rate."""
        return int(round((seconds or DEFAULT_CLIP_SECONDS) * self.sample_rate))


# aisfx's spectrogram: 44.1 kHz, 2048-sample STFT, hop 1024, 96 HTK mel bands; the ImageNet CNNs on
# spectrograms hear through it too.
FRONT_END = FrontEnd()
# musicnn's (its configuration.py and extractor.py): 16 kHz, 512-sample STFT, hop 256, 96 Slaney mel
# bands up to 8 kHz (librosa's `melspectrogram` defaults), `log10(1 + 10^4 * mel)`, no peak normalization.
MUSICNN_FRONT_END = FrontEnd(16000, 512, 256, 96, 0.0, 8000.0, False, "slaney", 1.0)
FRONT_ENDS = {"musicnn": MUSICNN_FRONT_END}  # By constructor; any other backbone hears `FRONT_END`.
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
for _tags, _tagged in (("mtt", "MagnaTagATune (25 k clips)"), ("msd", "the Million Song Dataset (200 k tracks)")):
    register(
        BackboneSpec(
            name=f"musicnn_{_tags}",
            modality="audio",
            constructor="musicnn",
            min_size=8,
            feature_dim=753,
            block_pattern=r"^(frontend|midend\d)_",
            weights_from=f"musicnn_{_tags}",
            description=f"musicnn (Pons & Serra 2019; 474 k parameters without its tagger): music tagging on {_tagged}; 16 kHz; 753-d",
            licence="ISC (PyPI musicnn 0.1.0)",
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
            f"`weights` for the audio backbone {spec.name!r} must be 'pretrained' (its own pretrained "
            f"weights), 'none' or an existing .weights.h5 file of the backbone. "
            f"Received: weights={weights!r}"
        )
    check_weights_file(weights, suffixes=(".weights.h5",))


def front_end(backbone):
    """The `FrontEnd` a backbone (a `BackboneSpec` or a registry name) hears through."""
    spec = registry.get(backbone, modality="audio") if isinstance(backbone, str) else backbone
    return FRONT_ENDS.get(spec.constructor, FRONT_END)


def clip_samples(config):
    """Samples in one model window at the rate of the config's backbone."""
    return front_end(config.backbone).samples(config.clip_seconds)


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

    converted = keras_tl_cache(f"{spec.name}.weights.h5") if spec.constructor != "spectrogram_image" else ""
    if (converted and os.path.isfile(converted)) or imports.is_installed(spec.weights_from):
        return registry.HERE
    return registry.INSTALL
