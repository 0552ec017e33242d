"""Waveform augmentation for the training split: onset delay, polarity, background noise.

Applied in tf.data to batches of windows `(B, samples)` in [-1, 1], after shuffling, for training
batches only (validation, test, predict and every export hear the sound as it is). The parameters
are `keras_tl.audio.config.AUDIO_AUGMENT_PRESETS` ("light", "standard", "strong") with the run's
`augment_params` overrides (`keras_tl.audio.config.resolve_audio_augment`; no gain: aisfx's front
end peak-normalizes every window, so a gain would change nothing there; musicnn's hears level):

- `delay`: the onset moves later by up to `delay` of the window, zeros before it (a one-shot's
  attack is where its class lives, so it is never cut off, only delayed);
- `invert`: the polarity flips with probability 1/2 (inaudible; a different waveform);
- `noise_snr_db`: Gaussian noise at a signal-to-noise ratio drawn from [low, high] dB of the
  window's own RMS (a silent window stays silent).

Random numbers come from one `tf.random.Generator` seeded by the run's seed: a fresh draw every
epoch, the same sequence for the same seed.
"""

import math

import tensorflow as tf


def is_identity(params):
    """True if `params` change nothing."""
    return not (params["delay"] or params["invert"] or params["noise_snr_db"])


def batch_function(params, samples, seed=0):
    """`(waveforms (B, samples), targets) -> (augmented waveforms, targets)` for `Dataset.map` on batches.

    Map it without `num_parallel_calls`: the generator's draws then follow the batch order.
    """
    generator = tf.random.Generator.from_seed(seed)
    max_delay = int(math.floor(params["delay"] * samples))
    positions = tf.range(samples)[None, :]

    def apply(waves, targets):
        x = tf.cast(waves, tf.float32)
        rows = tf.shape(x)[0]
        if max_delay:
            delay = generator.uniform([rows, 1], 0, max_delay + 1, dtype=tf.int32)
            source = positions - delay
            x = tf.where(source >= 0, tf.gather(x, tf.maximum(source, 0), batch_dims=1), 0.0)
        if params["invert"]:
            x = x * tf.where(generator.uniform([rows, 1]) < 0.5, -1.0, 1.0)
        if params["noise_snr_db"]:
            low, high = params["noise_snr_db"]
            snr_db = generator.uniform([rows, 1], low, high)
            rms = tf.sqrt(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True))
            x = x + generator.normal(tf.shape(x)) * rms * tf.pow(10.0, -snr_db / 20.0)
        return tf.clip_by_value(x, -1.0, 1.0), targets

    return apply
