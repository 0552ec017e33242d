"""Audio sources (folders of class folders, CSV manifests) and the windowed tf.data pipeline.

Files are checked when a source is read: anything libsndfile cannot decode (corrupt, not audio),
zero-length and all-silent files are skipped and reported with the reason, never a crash
mid-epoch. Decoding reads WAV, FLAC, OGG/Vorbis, MP3 and AIFF at any sample rate and channel count
(`soundfile`, libsndfile's binding), mixes to mono and resamples to the model's rate
(`scipy.signal.resample_poly`). A file becomes one or more fixed windows: shorter files are
zero-padded, longer ones cut into windows overlapping by half, and windows more than 40 dB below the
file's loudest window (a cymbal's silent tail) are dropped; every kept window of a training file is
a training example, and a file's prediction is the mean over its kept windows.
"""

import math
import os
from collections import OrderedDict
from fractions import Fraction

import numpy as np
import tensorflow as tf

from keras_tl.audio import AUDIO_EXTENSIONS
from keras_tl.audio import augment as augment_lib
from keras_tl.core.contract.errors import DataError
from keras_tl.core.data import Source, labelled_batches, read_manifest, scan_class_folders

QUIET_RMS = 0.01  # Windows whose RMS is below this fraction of the loudest window's (-40 dB) are dropped.


def _audio(class_names, paths, labels, predefined, skipped):
    return class_names, paths, labels, "audio", predefined, skipped


def check_audio_file(path):
    """None if `path` is a non-empty, non-silent audio file libsndfile decodes; else the reason."""
    import soundfile

    name = os.path.basename(path)
    if name.startswith("."):
        return "hidden file"
    if not name.lower().endswith(AUDIO_EXTENSIONS):
        return f"not an audio file (expected {', '.join(AUDIO_EXTENSIONS)})"
    if os.path.getsize(path) == 0:
        return "empty file (0 bytes)"
    try:
        samples, rate = read_mono(path)
    except (RuntimeError, ValueError, soundfile.LibsndfileError, OSError) as error:
        return f"unreadable audio: {str(error).rstrip('.')}"
    if len(samples) == 0:
        return "zero-length audio (no samples)"
    if not np.any(samples):
        return "silent (every sample is 0)"
    if not np.all(np.isfinite(samples)):
        return "audio holds NaN or infinite samples"
    return None


def from_directory(path):
    """Scans a folder of class folders of audio files (or `train/`, `val/`, `test/` each holding them)."""
    return Source(*_audio(*scan_class_folders(path, check_audio_file, unit="audio files")))


def from_manifest(path, *, separator=";"):
    """Reads a CSV manifest with `path` and `label` columns (and optionally `split`); paths are relative
    to the CSV's folder unless absolute; labels joined by `separator` make a multi-label row."""
    return Source(*_audio(*read_manifest(path, check_audio_file, unit="audio files", separator=separator)))


def load_source(spec):
    """A source from a config's `data`: a `.csv` manifest or a folder of class folders."""
    return from_manifest(spec) if spec.lower().endswith(".csv") else from_directory(spec)


# ---- decoding

_DECODED = OrderedDict()  # (path, mtime, rate) -> mono float32 waveform; least recently used first
_DECODED_LIMIT = 1 << 30  # bytes


def read_mono(path):
    """The file's samples as mono float32 at its own rate: `(samples (n,), rate)`."""
    import soundfile

    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return data.mean(axis=1), int(rate)


def resample(samples, rate, target):
    """`samples` at `rate` Hz -> `target` Hz (polyphase filtering, scipy's `resample_poly`)."""
    if rate == target:
        return np.asarray(samples, np.float32)
    from scipy.signal import resample_poly

    ratio = Fraction(int(target), int(rate))
    return resample_poly(samples, ratio.numerator, ratio.denominator).astype(np.float32)


def decode(path, sample_rate):
    """A file's mono waveform at `sample_rate` (cached in memory, least recently used evicted)."""
    key = (os.path.abspath(path), os.path.getmtime(path), int(sample_rate))
    if key in _DECODED:
        _DECODED.move_to_end(key)
        return _DECODED[key]
    samples, rate = read_mono(path)
    wave = resample(samples, rate, sample_rate)
    _DECODED[key] = wave
    while sum(w.nbytes for w in _DECODED.values()) > _DECODED_LIMIT and len(_DECODED) > 1:
        _DECODED.popitem(last=False)
    return wave


def windows(wave, samples, hop=None, quiet=QUIET_RMS):
    """`(K, samples)` windows of a waveform: zero-padded when shorter, else cut with `hop` (half a
    window); windows whose RMS is below `quiet` times the loudest window's are dropped (never all)."""
    hop = hop or max(1, samples // 2)
    wave = np.asarray(wave, np.float32)
    count = 1 if len(wave) <= samples else 1 + math.ceil((len(wave) - samples) / hop)
    padded = np.zeros((count - 1) * hop + samples, np.float32)
    padded[: len(wave)] = wave
    cut = np.stack([padded[k * hop : k * hop + samples] for k in range(count)])
    rms = np.sqrt(np.mean(np.square(cut, dtype=np.float64), axis=1))
    return cut[rms >= quiet * rms.max()] if quiet and rms.max() > 0 else cut


def item_windows(items, samples, sample_rate):
    """Raw items (file paths, or 1-D waveforms already at `sample_rate`) -> `(windows, owners)`:
    all windows stacked `(W, samples)` and, for each, the index of the item it came from."""
    parts, owners = [], []
    for index, item in enumerate(items):
        wave = decode(item, sample_rate) if isinstance(item, (str, os.PathLike)) else np.asarray(item, np.float32)
        if wave.ndim != 1:
            raise DataError(f"A waveform must be 1-D (mono samples). Received shape {wave.shape} at item {index}.")
        cut = windows(wave, samples)
        parts.append(cut)
        owners.extend([index] * len(cut))
    if not parts:
        return np.zeros((0, samples), np.float32), np.zeros(0, np.int64)
    return np.concatenate(parts), np.asarray(owners, np.int64)


def make_dataset(
    split,
    *,
    samples,
    sample_rate,
    training=False,
    seed=0,
    cache="memory",
    augment=None,
    **batching,
):
    """The tf.data pipeline of one split: `(waveform windows (B, samples), float targets)` batches.

    Every window of a file is an example labelled with the file's label(s). Decoded windows live in
    memory; training batches are reshuffled every epoch (seeded) or drawn class-balanced, then
    augmented (`augment`: resolved `keras_tl.audio.config.resolve_audio_augment` parameters;
    training batches only). `**batching`: `batch_size`, `num_classes`, `problem`, `oversample`
    (`keras_tl.core.data.pipelines.labelled_batches`).
    """
    waves, owners = item_windows(split.items, samples, sample_rate)
    labels = np.asarray(split.labels)[owners]
    ds = labelled_batches(waves, labels, training=training, seed=seed, **batching)
    if training and augment and not augment_lib.is_identity(augment):
        ds = ds.map(augment_lib.batch_function(augment, samples, seed))
    return ds.prefetch(tf.data.AUTOTUNE)
