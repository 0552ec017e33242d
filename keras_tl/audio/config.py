"""The audio modality's share of the config: its fields, its waveform augmentation presets and how they
are resolved.

Keras-free (the CLI checks a config before TensorFlow is imported); `keras_tl.audio.augment` applies them.

Waveform augmentation, for one-shot sounds and clips alike: the onset delayed by up to `delay` of the
window (zeros before it; never cut off the attack), the polarity flipped with probability 1/2
(`invert`; inaudible, a different waveform) and Gaussian noise at a signal-to-noise ratio drawn from
`noise_snr_db` [low, high] dB (None: no noise). There is no gain: aisfx's front end (which the
ImageNet-on-spectrogram backbones share) peak-normalizes every window
(`keras_tl.audio.presets.FrontEnd.peak_normalize`), so those models hear a sound the same at every
level. musicnn's front end does not (its training data were not normalized): a musicnn model hears
level, and no gain augmentation is offered for it yet.
"""

from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.contract.fields import Number, augment_preset, option

# The audio fields of `keras_tl.TrainConfig` (`keras_tl.core.contract.config.with_plugin_fields`).
FIELDS = {
    "clip_seconds": (
        float | None,
        option(
            None,
            "Audio: seconds in one model window (null: 1 s); longer files are cut "
            "into half-overlapping windows and their predictions averaged.",
            Number(0.0, low_open=True, optional=True),
            "data",
        ),
    ),
}

_AUDIO_OFF = dict(delay=0.0, invert=False, noise_snr_db=None)
AUDIO_AUGMENT_PRESETS = {
    "none": dict(_AUDIO_OFF),
    "light": {**_AUDIO_OFF, "delay": 0.05},
    "standard": {**_AUDIO_OFF, "delay": 0.1, "invert": True, "noise_snr_db": [30.0, 50.0]},
    "strong": {**_AUDIO_OFF, "delay": 0.2, "invert": True, "noise_snr_db": [15.0, 40.0]},
}


def resolve_audio_augment(name, overrides=None):
    """The audio augmentation parameters of preset `name` with `overrides` applied (strict).

    Example:
    >>> keras_tl.audio.config.resolve_audio_augment("light", {"delay": 0.2})["delay"]
    0.2
    """
    if "gain_db" in (overrides or {}):
        raise ConfigError(
            "`gain_db` is not an audio augmentation: the front end scales every window to a peak of 1, "
            "so a model hears a sound the same at any level and a random gain would change nothing. "
            f"Allowed: {sorted(_AUDIO_OFF)}. Received: augment_params={overrides!r}"
        )
    params = augment_preset(AUDIO_AUGMENT_PRESETS, name, overrides, "audio augmentation")
    value = params["delay"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 0.9:
        raise ConfigError(f"`delay` must be a number in [0, 0.9] (a fraction of the window). Received: delay={value!r}")
    params["delay"] = float(value)
    if not isinstance(params["invert"], bool):
        raise ConfigError(f"`invert` must be true or false. Received: invert={params['invert']!r}")
    snr = params["noise_snr_db"]
    if snr is not None:
        if (
            not isinstance(snr, (list, tuple))
            or len(snr) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in snr)
            or snr[0] > snr[1]
        ):
            raise ConfigError(
                f"`noise_snr_db` must be None or [low, high] dB with low <= high. Received: noise_snr_db={snr!r}"
            )
        params["noise_snr_db"] = [float(snr[0]), float(snr[1])]
    return params
