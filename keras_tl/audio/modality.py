"""The audio modality plug-in: what sound needs that the shared core does not know.

Keras-free at import: its config checks run before the CLI imports TensorFlow; the methods that
build, feed or export a model import what they need when called.
"""

import os

import numpy as np

from keras_tl.audio import AUDIO_EXTENSIONS, presets
from keras_tl.audio.config import resolve_audio_augment
from keras_tl.core.contract import registry
from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.contract.files import check_data_path
from keras_tl.core.contract.modality import Modality, ServingRequest
from keras_tl.core.utils import quiet

DATA = (
    f"a folder of class folders of audio files ({', '.join(AUDIO_EXTENSIONS)}) or a .csv manifest (path,label[,split])"
)

MAX_CLIP_SECONDS = 30.0


class AudioModality(Modality):
    name = "audio"
    unit = "audio files"
    default_optimizer = "adam"
    default_schedule = "cosine"
    default_fine_tune_lr = 1e-4  # aiSFX's sound-effects features move further than ImageNet's on drums and instruments.
    # int8 activations: the front end's FFT has no int8 TFLite kernel.
    tflite_quantizations = ("none", "float16", "dynamic")
    file_extensions = AUDIO_EXTENSIONS
    batch_preview = True

    def check_config(self, config, spec, source=None):
        if source is None:
            check_data_path(config.data, expected=DATA, schemes=())
        if config.pooling not in ("avg", "max"):
            raise ConfigError(
                f"`pooling` for audio must be 'avg' or 'max' (over time, after the mean over "
                f"frequency). Received: pooling={config.pooling!r}"
            )
        resolve_audio_augment(config.augment, config.augment_params)
        if config.augment_on != "data":
            raise ConfigError(
                f"Audio augmentation runs in tf.data on the waveforms. Received: "
                f"augment_on={config.augment_on!r} for an audio run."
            )
        seconds = config.clip_seconds or presets.DEFAULT_CLIP_SECONDS
        front_end = presets.front_end(spec)
        if front_end.frames(front_end.samples(seconds)) < spec.min_size or seconds > MAX_CLIP_SECONDS:
            shortest = (spec.min_size - 1) * front_end.hop / front_end.sample_rate
            raise ConfigError(
                f"`clip_seconds` must be at least {shortest:.3f} s for {spec.name!r} ({spec.min_size} STFT "
                f"frames, hop {front_end.hop} at {front_end.sample_rate} Hz) and at "
                f"most {MAX_CLIP_SECONDS:g} s. Received: clip_seconds={seconds}"
            )
        if config.image_size is not None and spec.constructor != "spectrogram_image":
            raise ConfigError(
                f"`image_size` applies to the spectrogram-image backbones; {spec.name!r} reads the "
                f"spectrogram itself. Received: image_size={config.image_size}"
            )
        if config.image_size is not None and config.image_size < spec.min_size:
            raise ConfigError(
                f"`image_size` {config.image_size} is smaller than {spec.name!r} allows (minimum {spec.min_size}px)."
            )
        presets.check_weights(spec, config.weights)
        if config.weights in presets.PRETRAINED and registry.weights_status(spec) == registry.INSTALL:
            from keras_tl.weights import imports

            imports.locate(spec.weights_from)  # Raises with the install command.

    def import_weights(self, importer, out):
        """A sound network's checkpoint (aisfx, musicnn) as a `.weights.h5` of its backbone."""
        from keras_tl.audio import backbones
        from keras_tl.weights import imports

        if not out.endswith(".weights.h5"):
            raise ConfigError(f"The output must be a `.weights.h5` file. Received: {out!r}")
        spec = registry.get(imports.get(importer).backbone, modality="audio")
        return imports.convert_to_file(importer, backbones.NETWORKS[spec.constructor](16), out)

    def prepare_weights(self, spec, weights):
        """Converts the pretrained weights once, before the seeded work starts."""
        if weights not in presets.PRETRAINED:
            return
        from keras_tl.audio import backbones

        if spec.constructor in backbones.NETWORKS:
            backbones.pretrained_weights(spec)
        else:
            lender, image_spec = presets.image_backbone(spec)
            lender.prepare_weights(image_spec, presets.image_weights(weights))

    def resolve_config(self, config, spec):
        return {
            "clip_seconds": float(config.clip_seconds or presets.DEFAULT_CLIP_SECONDS),
            "image_size": (config.image_size or spec.default_size) if spec.constructor == "spectrogram_image" else None,
        }

    def input_size(self, config):
        return f"{config.clip_seconds:g} s windows at {presets.front_end(config.backbone).sample_rate} Hz"

    def load_source(self, config):
        from keras_tl.audio import data

        return data.load_source(config.data)

    def build_network(self, spec, config, head):
        from keras_tl.audio.model import build_audio_model

        model = build_audio_model(
            spec,
            head=head,
            weights=config.weights,
            clip_seconds=config.clip_seconds,
            image_size=config.image_size,
            pooling=config.pooling,
        )
        return model, None

    def skeleton(self, spec, config):
        from keras_tl.audio import backbones

        samples = presets.clip_samples(config)
        return backbones.build(spec, "none", presets.front_end(spec).frames(samples), config.image_size)[1]

    def dataset(self, classifier, split, config, *, training=False, seed=None, cache="memory"):
        from keras_tl.audio import data

        return data.make_dataset(
            split,
            samples=self.window_samples(classifier),
            sample_rate=self.sample_rate(classifier),
            augment=resolve_audio_augment(config.augment, config.augment_params),
            **self.batching(classifier, config, training, seed),
        )

    def augmenting(self, config):
        from keras_tl.audio import augment

        return not augment.is_identity(resolve_audio_augment(config.augment, config.augment_params))

    def read_items(self, items):
        from keras_tl.audio import data

        items = list(items)
        for item in items:
            if isinstance(item, np.ndarray):
                continue
            reason = data.check_audio_file(item) if os.path.isfile(item) else "no such file"
            if reason:
                raise ConfigError(
                    f"Cannot read audio {item!r}: {reason}. Expected an audio file ({', '.join(AUDIO_EXTENSIONS)})."
                )
        return items

    def item_windows(self, classifier, items):
        from keras_tl.audio import data

        return data.item_windows(items, self.window_samples(classifier), self.sample_rate(classifier))

    def row_labels(self, classifier, split):
        _, owners = self.item_windows(classifier, split.items)
        return np.asarray(split.labels)[owners]

    def window_samples(self, classifier):
        from keras_tl.audio.model import window_samples

        return window_samples(classifier.model)

    def sample_rate(self, classifier):
        from keras_tl.audio.model import sample_rate

        return sample_rate(classifier.model)

    def model_inputs(self, classifier, items):
        return self.item_windows(classifier, items)[0]

    def predict_split(self, classifier, split, config, dataset=None):
        return classifier.predict(split.items, batch_size=config.batch_size, verbose=quiet.predict_verbose())

    def spectrograms(self, classifier, items):
        """The first window of each item as the model hears it: log-mel images `(N, mels, frames, 3)` uint8."""
        windows, owners = self.item_windows(classifier, items)
        first = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]]) if len(owners) else np.zeros(0, int)
        return self.mel_images(classifier, windows[first])

    def mel_images(self, classifier, windows):
        """Waveform windows `(N, samples)` -> their log-mel spectrograms as images `(N, mels, frames, 3)` uint8."""
        from keras_tl.audio.model import FRONT_END_LAYER

        front_end = classifier.model.get_layer(FRONT_END_LAYER)
        mel = np.asarray(front_end(np.asarray(windows)))[..., 0] if len(windows) else np.zeros((0, 1, 1))
        import matplotlib

        colours = matplotlib.colormaps["magma"](np.clip(mel, 0, 1).transpose(0, 2, 1)[:, ::-1])[..., :3]
        return (255 * colours).astype(np.uint8)

    def show_batch(self, classifier, dataset, path):
        """A PNG grid of the log-mel spectrograms of one (augmented) training batch, with their labels."""
        from keras_tl.core.data import labels_of_targets
        from keras_tl.core.evaluation import plots

        windows, targets = next(iter(dataset))
        labels = labels_of_targets(targets.numpy(), classifier.problem)
        titles = [
            " + ".join(classifier.class_names[i] for i in np.flatnonzero(row))
            if classifier.problem == "multilabel"
            else classifier.class_names[row]
            for row in labels
        ]
        plots.image_grid(self.mel_images(classifier, windows.numpy()), titles, path)
        return path

    def pictures(self, classifier, items):
        return self.spectrograms(classifier, items)

    def serving_endpoints(self, classifier, info):
        from keras_tl.audio import export

        return export.serving_endpoints(classifier, info.class_names)

    def serving_request(self, items):
        """Whole audio files as 16-bit PCM WAV bytes to `serving_wav`, which cuts and averages windows."""
        return ServingRequest(
            "serving_wav", "wav_bytes", [bytes(i) if isinstance(i, (bytes, bytearray)) else pcm16_wav(i) for i in items]
        )

    def endpoint_checks(self, classifier, info):
        import tensorflow as tf

        from keras_tl.audio import data, export
        from keras_tl.core.models.heads import mean_per_item

        windows, _ = self.item_windows(classifier, info.check_items)
        rate = self.sample_rate(classifier)
        waves = [
            data.decode(item, rate) if isinstance(item, str) else np.asarray(item, np.float32)
            for item in info.check_items
        ]
        files = [export.encode_wav(wave, rate) for wave in waves]
        # The reference hears what the WAV files hold (16-bit samples), as the signature does.
        heard = [tf.audio.decode_wav(f)[0].numpy()[:, 0] for f in files]
        wav_windows, wav_owners = data.item_windows(heard, self.window_samples(classifier), rate)
        return {
            "serving_default": ({"waveforms": tf.constant(windows)}, classifier.model.predict(windows, verbose=0)),
            "serving_wav": (
                {"wav_bytes": tf.constant(files)},
                mean_per_item(classifier.model.predict(wav_windows, verbose=0), wav_owners, len(files)),
            ),
        }

    def card(self, classifier):
        samples, rate = self.window_samples(classifier), self.sample_rate(classifier)
        return {
            "sample_rate": rate,
            "window_samples": samples,
            "window_seconds": round(samples / rate, 4),
            "input": {
                "waveform": f"mono float32 in [-1, 1] at {rate} Hz, {samples} samples a window",
                "longer_clips": "cut into half-overlapping windows whose probabilities are averaged "
                "(serving_wav does this in the graph)",
            },
        }

    def tflite_signature(self, classifier):
        import keras

        return keras.InputSpec(shape=(1, self.window_samples(classifier)), dtype="float32")

    def tflite_input_metadata(self, classifier, inputs, info):
        from keras_tl.audio import export
        from keras_tl.core.export import tflite_metadata

        return tflite_metadata.Inputs(
            [export.tflite_input(self.window_samples(classifier), self.sample_rate(classifier))]
        )

    def tflite_calibration(self, classifier, items):
        return [[window[None]] for window in self.model_inputs(classifier, items)[:200]]


def pcm16_wav(path):
    """An audio file's bytes as 16-bit PCM WAV (what an audio export's `serving_wav` decodes).

    A 16-bit PCM WAV file is sent as it is; anything else (FLAC, OGG, MP3, float or 24-bit WAV) is
    decoded with `soundfile` and re-encoded at its own rate and channel count, which the signature
    resamples and mixes in the graph.
    """
    import io

    import soundfile

    if not os.path.isfile(path):
        raise ConfigError(f"Cannot read audio {path!r}: no such file.")
    try:
        info = soundfile.info(path)
        if info.format == "WAV" and info.subtype == "PCM_16":
            with open(path, "rb") as f:
                return f.read()
        wave, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise ConfigError(
            f"Cannot read audio {path!r}: {error}. Expected an audio file ({', '.join(AUDIO_EXTENSIONS)})."
        ) from None
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(wave, -1.0, 1.0), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


MODALITY = AudioModality()
