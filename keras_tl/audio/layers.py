"""The audio front end inside the model graph: raw waveform -> log-mel spectrogram.

Written with `keras.ops` (STFT, matmul), so it runs on every Keras backend, trains and serves in the
same graph, and an exported model takes raw waveforms at the model's sample rate.
"""

from dataclasses import asdict, fields

import keras
import numpy as np
from keras import ops

from keras_tl.audio.presets import FrontEnd
from keras_tl.core.contract.errors import ConfigError

MEL_SCALES = ("htk", "slaney")


def hz_to_mel(hz, scale="htk"):
    hz = np.asarray(hz, np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    # Slaney's Auditory Toolbox (librosa's default): linear below 1 kHz, logarithmic above.
    step = np.log(6.4) / 27.0
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / step, hz * 3.0 / 200.0)


def mel_to_hz(mel, scale="htk"):
    mel = np.asarray(mel, np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    step = np.log(6.4) / 27.0
    return np.where(mel >= 15.0, 1000.0 * np.exp(step * (mel - 15.0)), mel * 200.0 / 3.0)


def mel_filterbank(sample_rate, n_fft, mels, fmin, fmax, scale="htk"):
    """`(n_fft // 2 + 1, mels)` triangular mel filters, as librosa's `librosa.filters.mel`.

    "htk": HTK mel scale, each filter's weights summing to 1 (`htk=True, norm=1.0`; Essentia's
    `warping_formula="htkMel", normalize="unit_sum"`), the aisfx network's. "slaney": librosa's
    defaults (Slaney's scale, each filter scaled by 2 / its width in Hz), musicnn's.
    """
    if scale not in MEL_SCALES:
        raise ConfigError(f"`mel_scale` must be one of {MEL_SCALES}. Received: {scale!r}")
    bins = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin, scale), hz_to_mel(fmax, scale), mels + 2), scale)
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if scale == "slaney":
        weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    else:
        sums = weights.sum(axis=1, keepdims=True)
        weights = np.divide(weights, sums, out=np.zeros_like(weights), where=sums > 0)
    return weights.T.astype(np.float32)


def hann(n):
    """Periodic Hann window (scipy's `get_window("hann", n)`, which librosa uses)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


@keras.saving.register_keras_serializable(package="keras_tl")
class LogMel(keras.layers.Layer):
    """Waveforms `(B, samples)` -> log-mel spectrograms `(B, frames, mels, 1)`, as a backbone's
    `keras_tl.audio.presets.FrontEnd` says.

    Each window is peak-normalized (when the front end says so), framed with centred, zero-padded
    STFT frames, turned into mel power and compressed as `log10(1 + 10^4 * mel) / log_divisor`. With
    the defaults this is aisfx's spectrogram (values in about [0, 1], 0 for silence); musicnn's
    differs in rate, STFT, mel scale and divisor.
    """

    def __init__(self, **kwargs):
        """Keyword arguments: the `FrontEnd` fields (aisfx's front end by default), then the Layer's."""
        names = [f.name for f in fields(FrontEnd)]
        self.front_end = FrontEnd(**{name: kwargs.pop(name) for name in names if name in kwargs})
        super().__init__(**kwargs)
        f = self.front_end
        self._filters = mel_filterbank(f.sample_rate, f.n_fft, f.mels, f.fmin, f.fmax, f.mel_scale)
        self._window = hann(f.n_fft)

    def call(self, waveforms):
        f = self.front_end
        x = ops.cast(waveforms, "float32")
        if f.peak_normalize:
            peak = ops.max(ops.abs(x), axis=-1, keepdims=True)
            x = x / ops.where(peak > 0, peak, ops.ones_like(peak))
        x = ops.pad(x, [[0, 0], [f.n_fft // 2, f.n_fft // 2]])
        real, imag = ops.stft(x, f.n_fft, f.hop, f.n_fft, window=ops.convert_to_tensor(self._window), center=False)
        # filters^T @ power^T, the constant on the left: TFLite's dynamic-range quantization turns a
        # matmul by a constant right-hand side into an int8 fully-connected layer, whose 8-bit
        # activations cannot hold a power spectrum's dynamic range (the export check refused it).
        power = ops.transpose(real * real + imag * imag, (0, 2, 1))
        mel = ops.transpose(ops.matmul(ops.convert_to_tensor(self._filters.T), power), (0, 2, 1))
        return ops.expand_dims(ops.log10(1.0 + 10000.0 * mel) / f.log_divisor, -1)

    def compute_output_shape(self, input_shape):
        samples = input_shape[-1]
        frames = None if samples is None else self.front_end.frames(samples)
        return (input_shape[0], frames, self.front_end.mels, 1)

    def get_config(self):
        return {**super().get_config(), **asdict(self.front_end)}


@keras.saving.register_keras_serializable(package="keras_tl")
class SpectrogramImage(keras.layers.Layer):
    """Log-mel `(B, frames, mels, 1)` in about [0, 1] -> an RGB "image" `(B, size, size, 3)` in [0, 255].

    For ImageNet CNNs on spectrograms: time runs down, frequency across; the one channel is repeated
    three times and resized (bilinear) to the backbone's square input.
    """

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)

    def call(self, spectrogram):
        x = ops.image.resize(spectrogram, (self.size, self.size), interpolation="bilinear")
        return ops.repeat(ops.clip(x * 255.0, 0.0, 255.0), 3, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, 3)

    def get_config(self):
        return {**super().get_config(), "size": self.size}


@keras.saving.register_keras_serializable(package="keras_tl")
class TimeFrequencyPooling(keras.layers.Layer):
    """Feature maps `(B, time, freq, C)` -> `(B, C)`: the mean over frequency, then the mean ("avg") or
    the max ("max") over time. "max" is aisfx's own pooling (a sound event anywhere in the window)."""

    def __init__(self, mode="avg", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("avg", "max"):
            raise ConfigError(f"`pooling` for audio must be 'avg' or 'max'. Received: {mode!r}")
        self.mode = mode

    def call(self, x):
        x = ops.mean(x, axis=2)
        return ops.max(x, axis=1) if self.mode == "max" else ops.mean(x, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
