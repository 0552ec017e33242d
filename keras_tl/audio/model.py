"""The audio transfer model: waveform -> log-mel (in the graph) -> backbone (inference mode) -> head.

As for images and text, the backbone is the layer named "backbone", the pooled features come out of
"head_pool" (so the frozen phase can cache them) and the output layer is "predictions" (multi-task:
one "predictions_<head>" layer per head). The model
takes raw mono waveforms `(B, samples)` at the front end's sample rate, so every export does too.
"""

from dataclasses import asdict

import keras

from keras_tl.audio import backbones, presets
from keras_tl.audio.layers import LogMel, TimeFrequencyPooling
from keras_tl.core.contract import registry
from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.models.heads import (
    POOL_LAYER,
    HeadSpec,
    backbone_layer,
    is_pretrained,
    short_run_batchnorm,
)
from keras_tl.core.utils import quiet

FRONT_END_LAYER = "log_mel"


@quiet.tensorflow_started
def build_audio_model(
    backbone,
    *,
    num_classes=None,
    head=None,
    weights="pretrained",
    clip_seconds=None,
    image_size=None,
    pooling="avg",
    **head_options,
):
    """Builds a sound classifier that takes waveforms of one window length.

    Args:
        backbone: str or BackboneSpec. See `keras-tl backbones --audio`.
        num_classes: int.
        head: HeadSpec. The whole head instead of `num_classes` and `**head_options`.
        weights: str. "pretrained", "none" or a `.weights.h5` file.
        clip_seconds: float. Window length; defaults to 1 s (`presets.DEFAULT_CLIP_SECONDS`).
        image_size: int. ImageNet backbones only: the side of the spectrogram image (default 96).
        pooling: str. "avg" or "max" over time, after the mean over frequency.
        **head_options: the head's `problem`, `dense_units`, `dropout` (0.2), `class_names`,
            `head_kinds` (`keras_tl.core.models.heads.HeadSpec`).

    Example:
    >>> model = keras_tl.audio.model.build_audio_model("aisfx_cnn9", num_classes=4)
    >>> model.predict(waveforms)  # (N, 44100) float32 at aisfx's 44.1 kHz (`sample_rate(model)`)
    """
    spec = registry.get(backbone, modality="audio") if isinstance(backbone, str) else backbone
    new_head = HeadSpec.of(head, num_classes, head_options)
    front_end = presets.front_end(spec)
    samples = front_end.samples(clip_seconds)
    frames = front_end.frames(samples)
    if frames < spec.min_size:
        raise ConfigError(
            f"A {samples / front_end.sample_rate:.3f} s window gives {frames} STFT frames; backbone "
            f"{spec.name!r} needs at least {spec.min_size}. Use a longer clip_seconds."
        )
    before, network = backbones.build(spec, weights, frames, image_size)
    if not is_pretrained(weights):
        short_run_batchnorm(network)
    network.name = "backbone"
    inputs = keras.Input((samples,), name="waveform")
    x = LogMel(**asdict(front_end), name=FRONT_END_LAYER)(inputs)
    for layer in before:
        x = layer(x)
    x = backbone_layer(network, x, is_pretrained(weights))
    pooled = TimeFrequencyPooling(pooling, name=POOL_LAYER)(x)
    outputs = new_head(pooled)
    return keras.Model(inputs, outputs, name=f"keras_tl_audio_{spec.name}"[:60])


def window_samples(model):
    """Samples per window of a built audio model."""
    return int(model.input_shape[-1])


def sample_rate(model):
    """The sample rate (Hz) a built audio model's waveforms are at: its front end's."""
    return model.get_layer(FRONT_END_LAYER).front_end.sample_rate
