"""The audio front end inside the model graph: raw waveform -> log-mel spectrogram.

Written with `keras.ops` (STFT, matmul), so it runs on every Keras backend, trains and serves in the
same graph, and an exported model takes raw waveforms at the model's sample rate.
"""

from dataclasses import asdict

import keras
import numpy as np
from keras import ops

from keras_tl.audio.presets import FrontEnd
from keras_tl.core.contract.errors import ConfigError

AISFX_LOG_MAX = 9.457798957824707  # aisfx's "original" min-max normalization: log10(1 + 1e4 * mel) / max


def hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate, n_fft, mels, fmin, fmax):
    """`(n_fft // 2 + 1, mels)` HTK-mel triangular filters, each row of weights summing to 1 (L1).

    The filters librosa builds with `librosa.filters.mel(htk=True, norm=1.0)` (and Essentia with
    `warping_formula="htkMel", normalize="unit_sum"`), which the aisfx network was trained on.
    """
    bins = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    sums = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, sums, out=np.zeros_like(weights), where=sums > 0)
    return weights.T.astype(np.float32)


def hann(n):
    """Periodic Hann window (scipy's `get_window("hann", n)`, which librosa uses)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


@keras.saving.register_keras_serializable(package="keras_tl")
class LogMel(keras.layers.Layer):
    """Waveforms `(B, samples)` -> log-mel spectrograms `(B, frames, mels, 1)`.

    Each window is peak-normalized (when the front end says so), framed with centred, zero-padded
    STFT frames, turned into mel power and compressed as `log10(1 + 10^4 * mel) / 9.4578`: values in
    about [0, 1], 0 for silence. This is aisfx's spectrogram, computed in the graph.
    """

    def __init__(
        self, sample_rate=44100, n_fft=2048, hop=1024, mels=96, fmin=0.0, fmax=22050.0, peak_normalize=True, **kwargs
    ):
        super().__init__(**kwargs)
        self.front_end = FrontEnd(
            int(sample_rate), int(n_fft), int(hop), int(mels), float(fmin), float(fmax), bool(peak_normalize)
        )
        self._filters = mel_filterbank(sample_rate, n_fft, mels, fmin, fmax)
        self._window = hann(n_fft)

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
        return ops.expand_dims(ops.log10(1.0 + 10000.0 * mel) / AISFX_LOG_MAX, -1)

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
