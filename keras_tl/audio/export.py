"""The audio modality's export pieces: TF Serving signatures on waveforms and on WAV bytes.

`serving_default` takes waveform windows (float32 `[N, samples]`, mono, at the model's rate): what
the Keras model and the TFLite file take. `serving_wav` takes whole encoded WAV files (16-bit PCM,
any channel count and length): it decodes, mixes to mono, resamples linearly to the model's rate
when the file's rate differs, cuts the same half-overlapping windows as `keras_tl.audio.data` and
returns each file's mean probabilities over its windows.
"""

import numpy as np
import tensorflow as tf

from keras_tl._vendor import tflite_metadata_schema as fb
from keras_tl.audio.data import QUIET_RMS
from keras_tl.audio.model import sample_rate, window_samples
from keras_tl.core.export import tflite_metadata
from keras_tl.core.models.heads import probabilities_graph, problem_of, serving_outputs

LOWPASS_HALF_TAPS = 32  # A 65-tap Hann-windowed sinc before a rate goes down.


def lowpass(samples, rate, target):
    """1-D `samples` at `rate` Hz low-passed below `target`'s Nyquist frequency (95% of it), so that
    resampling down does not fold what lies above it into the band the model hears (a 12 kHz tone
    at 44.1 kHz would come out at 4 kHz at 16 kHz). Going up, the filter is the identity."""
    cutoff = tf.minimum(0.5, 0.475 * float(target) / tf.cast(rate, tf.float32))  # cycles per sample
    n = tf.range(-LOWPASS_HALF_TAPS, LOWPASS_HALF_TAPS + 1, dtype=tf.float32)
    x = 2.0 * cutoff * n
    sinc = tf.where(tf.equal(n, 0.0), tf.ones_like(n), tf.sin(np.pi * x) / (np.pi * tf.where(tf.equal(x, 0.0), 1.0, x)))
    taps = sinc * (0.5 + 0.5 * tf.cos(np.pi * n / (LOWPASS_HALF_TAPS + 1)))
    taps = taps / tf.reduce_sum(taps)
    filtered = tf.nn.conv1d(samples[None, :, None], taps[:, None, None], stride=1, padding="SAME")
    return filtered[0, :, 0]


def resample_linear(samples, rate, target):
    """1-D `samples` at `rate` Hz (a scalar tensor) -> `target` Hz in the graph: low-passed below the
    target's Nyquist frequency when the rate goes down (`lowpass`), then linearly interpolated."""
    samples = lowpass(samples, rate, target)
    n = tf.shape(samples, out_type=tf.int64)[0]
    step = tf.cast(rate, tf.float64) / float(target)
    count = tf.maximum(tf.cast(tf.math.floor(tf.cast(n - 1, tf.float64) / step), tf.int64) + 1, 1)
    position = tf.cast(tf.range(count), tf.float64) * step
    low = tf.minimum(tf.cast(tf.math.floor(position), tf.int64), n - 1)
    high = tf.minimum(low + 1, n - 1)
    weight = tf.cast(position - tf.cast(low, tf.float64), tf.float32)
    return tf.gather(samples, low) * (1.0 - weight) + tf.gather(samples, high) * weight


def file_windows(mono, samples):
    """A 1-D waveform -> `(K, samples)` windows, as `keras_tl.audio.data.windows` cuts and keeps them."""
    hop = max(1, samples // 2)
    n = tf.shape(mono)[0]
    count = 1 + tf.cast(tf.math.ceil(tf.maximum(n - samples, 0) / hop), tf.int32)
    total = (count - 1) * hop + samples
    padded = tf.pad(mono, [[0, total - n]])
    frames = tf.signal.frame(padded, samples, hop)
    rms = tf.sqrt(tf.reduce_mean(tf.square(tf.cast(frames, tf.float64)), axis=1))
    keep = tf.logical_or(rms >= QUIET_RMS * tf.reduce_max(rms), tf.equal(tf.reduce_max(rms), 0.0))
    return tf.boolean_mask(frames, keep)


def serving_endpoints(classifier, class_names, top_k=5):
    """`{name: (tf.function, description)}`: "serving_default" on waveform windows, "serving_wav" on WAV files."""
    model = classifier.model
    samples = window_samples(model)
    rate = sample_rate(model)

    def outputs(probs):
        return serving_outputs(probs, class_names, problem_of(model), top_k, classifier.operating_point)

    @tf.function(input_signature=[tf.TensorSpec([None, samples], tf.float32, name="waveforms")])
    def serve_waveforms(waveforms):
        return outputs(probabilities_graph(model(waveforms, training=False)))

    def one_file(data):
        audio, file_rate = tf.audio.decode_wav(data)
        mono = tf.reduce_mean(audio, axis=1)
        mono = tf.cond(tf.equal(file_rate, rate), lambda: mono, lambda: resample_linear(mono, file_rate, rate))
        probs = probabilities_graph(model(file_windows(mono, samples), training=False))
        return tf.reduce_mean(probs, axis=0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="wav_bytes")])
    def serve_wav(wav_bytes):
        probs = tf.map_fn(one_file, wav_bytes, fn_output_signature=tf.TensorSpec([len(class_names)], tf.float32))
        return outputs(probs)

    return {
        "serving_default": (serve_waveforms, f"waveforms: float32 [N, {samples}] (mono, {rate} Hz)"),
        "serving_wav": (serve_wav, "wav_bytes: string [N] (16-bit PCM WAV files, any rate, channels and length)"),
    }


def encode_wav(wave, rate):
    """A mono float waveform -> 16-bit PCM WAV bytes."""
    clipped = np.clip(np.asarray(wave, np.float32), -1.0, 1.0)[:, None]
    return tf.audio.encode_wav(tf.constant(clipped), rate).numpy()


def tflite_input(samples, sample_rate, channels=1):
    """A waveform input `[1, samples]` (float32, -1..1) at `sample_rate` Hz."""
    tensor = fb.TensorMetadataT()
    tensor.name = "audio_clip"
    tensor.description = (
        f"Mono waveform, {samples} samples at {sample_rate} Hz, float32 in [-1, 1] "
        f"(the model computes its log-mel spectrogram inside its graph)."
    )
    properties = fb.AudioPropertiesT()
    properties.sampleRate, properties.channels = int(sample_rate), int(channels)
    tensor.content = tflite_metadata.content(fb.ContentProperties.AudioProperties, properties)
    return tensor
