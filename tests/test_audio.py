"""The audio modality: decoding, windows, bad files, the imported aisfx network against the
original's outputs on real clips, the transfer invariants, and a real run exported and served."""

import csv
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import soundfile

import keras_tl
from keras_tl import datasets
from keras_tl.audio import backbones as audio_backbones
from keras_tl.audio import data as audio_data
from keras_tl.core.contract import registry
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.data import Source, predefined_indices
from keras_tl.core.models.heads import mean_per_item

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "aisfx_reference.npz")
RATE = audio_backbones.FRONT_END.sample_rate


def sine(rate, seconds=0.5, hz=440.0, amplitude=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def dominant_hz(wave, rate):
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return np.fft.rfftfreq(len(wave), 1 / rate)[spectrum.argmax()]


@pytest.mark.parametrize(
    "fmt,subtype,lossless",
    [
        ("WAV", "PCM_16", True),
        ("WAV", "PCM_24", True),
        ("WAV", "FLOAT", True),
        ("FLAC", "PCM_16", True),
        ("AIFF", "PCM_16", True),
        ("OGG", "VORBIS", False),
        ("MP3", "MPEG_LAYER_III", False),
    ],
)
@pytest.mark.parametrize("rate,channels", [(44100, 1), (48000, 2), (22050, 2)])
def test_decodes_every_format_rate_and_channel_count(tmp_path, fmt, subtype, lossless, rate, channels):
    if fmt == "MP3" and rate == 22050:
        rate = 24000  # MPEG-2 layer III rates; 22.05 kHz is one too, but libsndfile's encoder pads it oddly.
    wave = sine(rate)
    frames = np.stack([wave, np.zeros_like(wave)], axis=1) if channels == 2 else wave
    path = str(tmp_path / f"clip.{fmt.lower()}")
    soundfile.write(path, frames, rate, format=fmt, subtype=subtype)
    decoded = audio_data.decode(path, RATE)
    expected_amplitude = 0.5 / channels  # stereo with a silent right channel mixes to half
    assert decoded.dtype == np.float32 and decoded.ndim == 1
    assert abs(dominant_hz(decoded, RATE) - 440) < 3
    if lossless:
        assert abs(len(decoded) - 0.5 * RATE) <= 1
        assert abs(np.abs(decoded[2000:-2000]).max() - expected_amplitude) < 0.01
    else:  # lossy codecs add encoder delay / padding and change the waveform slightly
        assert abs(len(decoded) - 0.5 * RATE) < 0.1 * RATE
        assert abs(np.sqrt(np.mean(decoded[4000:-4000] ** 2)) - expected_amplitude / np.sqrt(2)) < 0.05


def test_windows_padding_overlap_quiet_tails_and_aggregation():
    samples = 100
    short = audio_data.windows(np.ones(30, np.float32), samples)
    assert short.shape == (1, 100) and short[0, :30].sum() == 30 and not short[0, 30:].any()
    wave = np.arange(1, 261, dtype=np.float32)  # 260 samples, hop 50 -> windows at 0, 50, 100, 150, 200
    cut = audio_data.windows(wave, samples, quiet=0)
    assert cut.shape == (5, 100) and cut[1, 0] == 51 and cut[4, 59] == 260 and not cut[4, 60:].any()
    loud_then_silent = np.concatenate([np.ones(100, np.float32), np.full(300, 1e-4, np.float32)])
    kept = audio_data.windows(loud_then_silent, samples)
    assert len(kept) == 2  # the windows 40 dB below the loudest are dropped, the onset kept
    assert len(audio_data.windows(np.zeros(500, np.float32), samples)) == 9  # all-silent: nothing to rank
    windows, owners = audio_data.item_windows([np.ones(30, np.float32), wave], samples, RATE)
    assert windows.shape[0] == len(owners) and owners.tolist() == [0, 1, 1, 1, 1, 1]
    probabilities = np.array([[1.0, 0.0], [0.2, 0.8], [0.4, 0.6], [0.0, 1.0], [0.4, 0.6], [0.0, 1.0]])
    np.testing.assert_allclose(mean_per_item(probabilities, owners, 2), [[1.0, 0.0], [0.2, 0.8]], atol=1e-6)


def test_bad_audio_files_are_skipped_and_reported(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("hum", "tone"):
        (tmp_path / label).mkdir()
        for i in range(3):
            soundfile.write(
                str(tmp_path / label / f"good{i}.wav"), sine(16000, hz=220 if label == "hum" else 880), 16000
            )
    (tmp_path / "hum" / "empty.wav").write_bytes(b"")
    (tmp_path / "hum" / "corrupt.flac").write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    soundfile.write(str(tmp_path / "hum" / "silent.wav"), np.zeros(8000, np.float32), 16000)
    soundfile.write(str(tmp_path / "hum" / "zero.wav"), np.zeros(0, np.float32), 16000)
    (tmp_path / "tone" / "notes.txt").write_text("not audio")
    soundfile.write(str(tmp_path / "tone" / ".hidden.wav"), sine(16000), 16000)
    source = audio_data.from_directory(str(tmp_path))
    assert source.class_names == ["hum", "tone"] and len(source.items) == 6
    reasons = {os.path.basename(p): r for p, r in source.skipped}
    assert reasons["empty.wav"] == "empty file (0 bytes)"
    assert reasons["corrupt.flac"].startswith("unreadable audio")
    assert reasons["silent.wav"] == "silent (every sample is 0)"
    assert reasons["zero.wav"] in ("zero-length audio (no samples)",) or reasons["zero.wav"].startswith("unreadable")
    assert reasons["notes.txt"].startswith("not an audio file") and reasons[".hidden.wav"] == "hidden file"
    manifest = tmp_path / "clips.csv"
    manifest.write_text("path,label\nhum/good0.wav,hum\nhum/missing.wav,hum\ntone/good0.wav,tone\n")
    listed = audio_data.from_manifest(str(manifest))
    assert len(listed.items) == 2 and listed.skipped == [(str(tmp_path / "hum" / "missing.wav"), "file not found")]


def test_aisfx_port_reproduces_the_original_network_on_real_clips():
    """Reference: aisfx 0.1.2's own code path with PyTorch (tests/fixtures/make_aisfx_reference.py)."""
    import keras

    reference = np.load(FIXTURE)
    paths = [os.path.join(datasets.DRUMKITS_DIR, str(c)) for c in reference["clips"]]
    for path, digest in zip(paths, reference["sha256"]):
        with open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == str(digest), f"{path} is not the clip the reference used"
    samples = 99 * audio_backbones.FRONT_END.hop  # one 100-frame block, as the reference
    waves = np.stack(
        [np.pad(audio_data.decode(p, RATE), (0, samples - len(audio_data.decode(p, RATE)))) for p in paths]
    )
    model = keras_tl.build_classifier("aisfx_cnn9", num_classes=3, clip_seconds=samples / RATE, pooling="max").model
    log_mel = np.asarray(model.get_layer("log_mel")(waves))[..., 0]
    np.testing.assert_allclose(log_mel, reference["log_mel"], rtol=0, atol=1e-5)  # librosa's spectrogram
    embedding = keras.Model(model.input, model.get_layer("head_pool").output).predict(waves, verbose=0)
    scale = np.abs(reference["embedding"]).max()
    np.testing.assert_allclose(embedding, reference["embedding"], rtol=0, atol=1e-5 * scale)


MUSICNN_FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "musicnn_reference.npz")
LMMS_INSTRUMENTS = "/usr/share/lmms/samples/instruments"  # Debian lmms-common, in the test command's packages


@pytest.mark.parametrize("tags", ["mtt", "msd"])
def test_musicnn_port_reproduces_the_original_network_on_real_clips(tags):
    """Reference: musicnn 0.1.0's own graph and spectrogram (tests/fixtures/make_musicnn_reference.py)."""
    import keras

    reference = np.load(MUSICNN_FIXTURE)
    paths = [os.path.join(LMMS_INSTRUMENTS, str(c)) for c in reference["clips"]]
    for path, digest in zip(paths, reference["sha256"]):
        with open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == str(digest), f"{path} is not the clip the reference used"
    samples = 186 * 256  # 187 frames at hop 256, musicnn's 3 s patch
    rate = audio_backbones.MUSICNN_FRONT_END.sample_rate
    waves = np.stack(
        [np.pad(w[:samples], (0, max(0, samples - len(w)))) for w in (audio_data.decode(p, rate) for p in paths)]
    )
    for pooling, feature in (("avg", "mean_pool"), ("max", "max_pool")):
        classifier = keras_tl.build_classifier(
            f"musicnn_{tags}", num_classes=3, clip_seconds=samples / rate, pooling=pooling
        )
        model, expected = classifier.model, reference[f"{tags}_{feature}"]
        assert model.input_shape == (None, samples) and keras_tl.audio.model.sample_rate(model) == 16000
        # The front end: librosa's Slaney mel spectrogram (the reference rounded mel power to float16).
        log_mel = np.asarray(model.get_layer("log_mel")(waves))[..., 0]
        np.testing.assert_allclose(log_mel, reference["log_mel"], rtol=0, atol=1e-3)
        # The network on the very spectrogram the original received.
        maps = np.asarray(model.get_layer("backbone")(reference["log_mel"][..., None]))
        pooled = maps.mean(axis=(1, 2)) if pooling == "avg" else maps.mean(axis=2).max(axis=1)
        scale = np.abs(expected).max()
        np.testing.assert_allclose(pooled, expected, rtol=0, atol=1e-5 * scale)
        # Waveform to pooled features, as training and every export run it.
        features = keras.Model(model.input, model.get_layer("head_pool").output).predict(waves, verbose=0)
        np.testing.assert_allclose(features, expected, rtol=0, atol=1e-3 * scale)


def test_musicnn_checkpoint_with_a_missing_or_extra_tensor_is_refused():
    from keras_tl.weights import imports

    state = imports.read_tf1_checkpoint(imports.locate("musicnn_mtt"))
    assert state["conv2d_5/kernel"].shape == (7, 561, 1, 64) and "dense_1/kernel" in state  # the tagger, left
    importer, network = imports.get("musicnn_mtt"), audio_backbones.musicnn_network(16)
    missing = {k: v for k, v in state.items() if k != "conv2d_3/kernel"}
    with pytest.raises(keras_tl.WeightsError, match=r"no tensor 'conv2d_3/kernel'"):
        importer.convert(missing, network)
    with pytest.raises(keras_tl.WeightsError, match=r"1 checkpoint tensors were not mapped: \['conv2d_8/kernel'\]"):
        importer.convert({**state, "conv2d_8/kernel": state["conv2d_7/kernel"]}, network)
    with pytest.raises(keras_tl.WeightsError, match=r"'conv2d/kernel' has shape \(7, 39, 1, 204\)"):
        importer.convert({**state, "conv2d/kernel": np.zeros((7, 39, 1, 204), np.float32)}, network)


@pytest.mark.parametrize("damage", ["truncated data", "garbage index"])
def test_a_damaged_tf1_checkpoint_is_one_clear_error(tmp_path, monkeypatch, damage):
    from keras_tl.weights import imports

    folder = os.path.dirname(imports.locate("musicnn_mtt"))
    for name in (".index", ".data-00000-of-00001"):
        shutil.copy(os.path.join(folder, name), tmp_path / name)
    if damage == "truncated data":
        with open(tmp_path / ".data-00000-of-00001", "r+b") as f:
            f.truncate(1_000_000)
    else:
        (tmp_path / ".index").write_bytes(b"garbage")
    with pytest.raises(
        keras_tl.WeightsError, match=r"Cannot read the TensorFlow checkpoint .*: .+\. Expected a tensor bundle"
    ) as caught:
        imports.read_tf1_checkpoint(str(tmp_path / ".index"))
    assert "\n" not in str(caught.value)
    monkeypatch.setattr(imports, "locate", lambda name: str(tmp_path / ".index"))
    with pytest.raises(keras_tl.WeightsError, match=r"Reinstall it: `pip install --no-deps --force-reinstall musicnn`"):
        imports.convert_into("musicnn_mtt", audio_backbones.musicnn_network(16))


def test_aisfx_checkpoint_reader_unwraps_metadata_and_refuses_code(tmp_path):
    from keras_tl.weights import imports, torch_weights

    state = torch_weights.load_state_dict(imports.locate("aisfx"))
    assert len([k for k in state if k.startswith("embedding_net.")]) == 4 * 2 * 6
    assert state["embedding_net.conv_block4.conv2.weight"].shape == (512, 512, 3, 3)

    import _codecs

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    class OddCodec:
        def __reduce__(self):
            return (_codecs.encode, ("x", "rot13"))

    for payload in ((Evil(), {}), ({}, {"step": OddCodec()})):
        path = tmp_path / "evil.pth"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", pickle.dumps(payload, protocol=2))
        with pytest.raises((pickle.UnpicklingError, ValueError)):
            torch_weights.load_state_dict(str(path))


def test_missing_aisfx_package_says_how_to_install_it(tmp_path, monkeypatch):
    import importlib.util

    from keras_tl.weights import imports

    real = importlib.util.find_spec
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no converted weights cached there
    monkeypatch.setattr(
        imports.importlib.util, "find_spec", lambda name, *a: None if name == "aisfx" else real(name, *a)
    )
    with pytest.raises(keras_tl.WeightsUnavailableError, match=r"keras-tl assets install.*pip install --no-deps aisfx"):
        audio_backbones.pretrained_weights(registry.get("aisfx_cnn9", modality="audio"))


def test_resample_in_the_graph_interpolates_up_and_filters_before_going_down():
    import tensorflow as tf

    from keras_tl.audio.export import resample_linear

    # Up (44.1 -> 48 kHz): the low-pass is the identity, so this is linear interpolation.
    wave = np.random.default_rng(0).normal(size=4410).astype(np.float32)
    out = resample_linear(tf.constant(wave), tf.constant(44100), 48000).numpy()
    positions = np.arange(len(out)) * 44100 / 48000
    np.testing.assert_allclose(out, np.interp(positions, np.arange(len(wave)), wave), atol=1e-5)
    assert len(out) == 4799  # positions up to the last sample: floor(4409 x 48000 / 44100) + 1

    # Down (44.1 -> 16 kHz, musicnn's rate): what lies above 8 kHz must not fold into the band (a
    # 12 kHz tone came out at 4 kHz with 0.389 of its 0.5 amplitude); what lies below passes.
    def amplitude(hz):
        t = np.arange(44100) / 44100
        out = resample_linear(tf.constant(0.5 * np.sin(2 * np.pi * hz * t), tf.float32), tf.constant(44100), 16000)
        return np.abs(np.fft.rfft(out.numpy()[1000:-1000])).max() * 2 / (len(out.numpy()) - 2000)

    assert amplitude(12000) < 0.01 and amplitude(9000) < 0.05
    assert abs(amplitude(1000) - 0.5) < 0.01 and abs(amplitude(6000) - 0.5) < 0.05


def test_drumkits_are_labelled_by_instrument_and_split_by_kit():
    source = datasets.load_drumkits()
    assert source.class_names == ["kick", "snare", "tom", "hihat", "cymbal"]
    counts = {s: np.bincount(source.labels[i], minlength=5).tolist() for s, i in source.predefined.items()}
    assert counts["test"] == [5, 10, 15, 30, 30] and sum(counts["train"]) == 338 and sum(counts["val"]) == 36
    kits = {s: {p.split(os.sep)[-2] for p in np.asarray(source.items)[i]} for s, i in source.predefined.items()}
    assert kits["test"] == {"The Black Pearl 1.0"} and kits["val"] == {"Millo_MultiLayered3"}
    assert not kits["train"] & (kits["test"] | kits["val"]) and len(kits["train"]) == 10
    assert "hydrogen-drumkits" in source.licence and not source.skipped
    assert datasets.drum_class("Sabian Hat Choke") == "hihat" and datasets.drum_class("Ride Bell") == "cymbal"
    assert datasets.drum_class("c3 - bass drum 1") == "kick" and datasets.drum_class("Djembe1 Slap") == "other"
    with pytest.raises(ValueError, match="distinct names"):
        datasets.load_drumkits(classes=["kick", "gong"])
    with pytest.raises(keras_tl.DatasetUnavailableError, match="apt-get install hydrogen-drumkits"):
        datasets.load_drumkits(folder="/nonexistent")


def test_lmms_drums_are_a_second_source_labelled_by_file_name_with_its_bad_file_reported():
    source = datasets.load_lmms_drums()
    assert source.class_names == ["kick", "snare", "tom", "hihat", "cymbal"] and source.predefined is None
    assert np.bincount(source.labels, minlength=5).tolist() == [16, 17, 8, 9, 4]
    names = {os.path.basename(p): source.class_names[label] for p, label in zip(source.items, source.labels)}
    assert names["bassdrum01.ogg"] == "kick" and names["hihat_opened02.ogg"] == "hihat"
    assert names["ride01.ogg"] == "cymbal" and names["tom_low01.ogg"] == "tom" and "shaker01.ogg" not in names
    # kick04.ogg is a malformed WAV file named .ogg: skipped and reported, not silently dropped.
    assert [(os.path.basename(p), "Malformed" in why) for p, why in source.skipped] == [("kick04.ogg", True)]
    assert "lmms-common" in source.licence
    with pytest.raises(keras_tl.DatasetUnavailableError, match="apt-get install lmms-common"):
        datasets.load_lmms_drums(folder="/nonexistent")


def test_sonic_pi_drums_are_a_third_source_labelled_by_its_table_with_missing_files_reported(tmp_path):
    source = datasets.load_sonic_pi_drums()
    assert source.class_names == ["kick", "snare", "tom", "hihat", "cymbal"] and source.predefined is None
    assert np.bincount(source.labels, minlength=5).tolist() == [18, 11, 7, 3, 5] and source.skipped == []
    names = {os.path.basename(p): source.class_names[label] for p, label in zip(source.items, source.labels)}
    # Names the instrument-name rules would get wrong: bd_ is a kick, drum_cymbal_closed a hi-hat.
    assert names["bd_haus.flac"] == "kick" and names["drum_cymbal_closed.flac"] == "hihat"
    assert names["drum_splash_hard.flac"] == "cymbal" and names["elec_fuzz_tom.flac"] == "tom"
    assert "drum_roll.flac" not in names and "drum_cowbell.flac" not in names and "loop_amen.flac" not in names
    six = datasets.load_sonic_pi_drums(classes=["kick", "snare", "tom", "hihat", "cymbal", "other"])
    assert np.bincount(six.labels).tolist() == [18, 11, 7, 3, 5, 17]
    assert "CC0" in source.licence and "sonic-pi-samples" in source.licence
    # A copy with one listed file missing and one corrupt: both reported, the rest loaded.
    for name in ("bd_808.flac", "bd_ada.flac", "sn_dub.flac"):
        shutil.copy(os.path.join(datasets.SONIC_PI_SAMPLES_DIR, name), tmp_path / name)
    (tmp_path / "bd_ada.flac").write_bytes(b"fLaC not really")
    partial = datasets.load_sonic_pi_drums(classes=["kick", "snare"], folder=str(tmp_path))
    assert [os.path.basename(p) for p in partial.items] == ["bd_808.flac", "sn_dub.flac"]
    assert partial.labels.tolist() == [0, 1]
    reasons = {os.path.basename(p): why for p, why in partial.skipped}
    assert reasons["bd_ada.flac"].startswith("unreadable audio") and reasons["bd_boom.flac"] == "file not found"
    assert len(reasons) == 18 + 11 - 2
    with pytest.raises(keras_tl.DatasetUnavailableError, match="apt-get install sonic-pi-samples"):
        datasets.load_sonic_pi_drums(folder="/nonexistent")
    with pytest.raises(keras_tl.DatasetUnavailableError, match="No drum samples of classes"):
        datasets.load_sonic_pi_drums(classes=["clap"])


def tiny_drums(per_class=4, classes=("kick", "cymbal")):
    """A few real drum samples of two classes from the training kits, as a source."""
    source = datasets.load_drumkits(classes=list(classes))
    train = source.predefined["train"]
    keep = np.concatenate([train[source.labels[train] == c][:per_class] for c in range(len(classes))])
    return Source(list(classes), [source.items[i] for i in keep], source.labels[keep], modality="audio")


def test_waveform_augmentation_delays_inverts_and_adds_noise_on_training_batches_only():
    from keras_tl.audio import augment
    from keras_tl.audio.config import resolve_audio_augment

    samples, rows = 1000, 256
    clicks = np.zeros((rows, samples), np.float32)
    clicks[:, 10] = 0.5  # One impulse per window: where it lands is the delay, its sign the polarity.
    targets = np.zeros((rows, 2), np.float32)

    def run(params, seed=0, waves=clicks):
        apply = augment.batch_function(resolve_audio_augment("none", params), samples, seed)
        return apply(waves, targets)[0].numpy()

    delayed = run({"delay": 0.2})
    where = delayed.argmax(axis=1)
    assert np.all(delayed.max(axis=1) == 0.5) and np.all((delayed != 0).sum(axis=1) == 1)  # moved, not cut
    assert where.min() == 10 and where.max() == 10 + 200 and len(np.unique(where)) > 50
    signs = run({"invert": True})[:, 10] / 0.5
    assert set(np.unique(signs)) == {-1.0, 1.0} and 0.3 < np.mean(signs > 0) < 0.7
    tone = np.tile(sine(RATE, samples / RATE, amplitude=0.1)[None], (rows, 1))
    tone[0] = 0  # A silent window stays silent.
    noisy = run({"noise_snr_db": [20.0, 30.0]}, waves=tone)
    noise = noisy[1:] - tone[1:]
    snr = 10 * np.log10(np.mean(tone[1:] ** 2, axis=1) / np.mean(noise**2, axis=1))
    assert np.all(noisy[0] == 0) and 19.0 < snr.min() and snr.max() < 31.0 and snr.max() - snr.min() > 5
    # Fresh draws every epoch, the same sequence for the same seed, clipped to [-1, 1].
    params = resolve_audio_augment("strong")
    first = augment.batch_function(params, samples, seed=3)
    again = augment.batch_function(params, samples, seed=3)
    a, b = first(tone, targets)[0].numpy(), first(tone, targets)[0].numpy()
    assert not np.allclose(a, b) and np.array_equal(a, again(tone, targets)[0].numpy())
    loud = run({"noise_snr_db": [-20.0, -15.0]}, waves=tone)
    assert np.abs(loud).max() == 1.0  # Noise ten times the tone: clipped, never past full scale.

    # In the pipeline: training batches only.
    from keras_tl.core.data import Split

    split = Split([tone[1], tone[2] * 0.5], np.array([0, 1]))
    kwargs = dict(samples=samples, sample_rate=RATE, batch_size=2, num_classes=2, augment=params)
    train = next(iter(audio_data.make_dataset(split, training=True, **kwargs)))[0].numpy()
    plain = next(iter(audio_data.make_dataset(split, training=False, **kwargs)))[0].numpy()
    assert np.array_equal(plain, np.stack([tone[1], tone[2] * 0.5]))
    assert not any(np.allclose(row, ref, atol=1e-3) for row in train for ref in plain)


def test_balanced_class_weights_count_windows_not_files(tmp_path):
    """Sonic Pi's ambient sounds are few files but long: counted per file, their weight was the largest while
    the training set held the most windows of them, and a short run called every file "ambi"."""
    from keras_tl.core.data import class_weights

    folder = datasets.SONIC_PI_SAMPLES_DIR
    groups = {name: sorted(f for f in os.listdir(folder) if f.startswith(f"{name}_"))[:8] for name in ("ambi", "elec")}
    paths = [os.path.join(folder, f) for name in groups for f in groups[name]]
    labels = np.repeat([0, 1], [len(groups["ambi"]), len(groups["elec"])])
    source = Source(["ambi", "elec"], paths, labels, modality="audio")
    config = TrainConfig(
        backbone="aisfx_cnn9",
        out=str(tmp_path / "run"),
        clip_seconds=0.5,
        batch_size=16,
        strategy="feature_extraction",
        head_epochs=1,
        val_split=0.25,
        test_split=0.25,
    )
    result = keras_tl.train(config, source)
    train = keras_tl.workflow.rundir.load_split(result.run_dir, "train")
    _, owners = audio_data.item_windows(train.items, int(0.5 * RATE), RATE)
    windows = class_weights(train.labels[owners], 2)
    assert result.metrics["class_weights"] == pytest.approx({"ambi": windows[0], "elec": windows[1]})
    per_file = class_weights(train.labels, 2)
    assert result.metrics["class_weights"]["ambi"] < result.metrics["class_weights"]["elec"]  # More ambi windows.
    assert per_file[0] == per_file[1]  # Counted per file, the classes looked balanced.


def test_gain_is_refused_because_the_front_end_hears_every_level_alike():
    """The front end peak-normalizes each window: a gain changes no spectrogram, so it is no augmentation
    (it was one, a silent no-op) and asking for it says why."""
    from keras_tl.audio.config import resolve_audio_augment
    from keras_tl.audio.layers import LogMel

    tone = sine(RATE, 0.25, amplitude=0.3)[None]
    front_end = LogMel()
    quiet, loud = (np.asarray(front_end(tone * g)) for g in (10 ** (-20 / 20), 10 ** (20 / 20)))
    np.testing.assert_allclose(quiet, loud, atol=1e-4)  # The same spectrogram, to float32 rounding.
    with pytest.raises(keras_tl.ConfigError, match="peak of 1"):
        resolve_audio_augment("light", {"gain_db": 6.0})
    assert "gain_db" not in resolve_audio_augment("strong")


def test_audio_task_keeps_every_transfer_invariant(tmp_path, monkeypatch):
    from invariants import run_transfer_test

    config = TrainConfig(
        backbone="aisfx_cnn9",
        out=str(tmp_path / "run"),
        clip_seconds=0.25,
        batch_size=4,
        head_epochs=1,
        fine_tune_epochs=1,
        unfreeze="blocks:1",
        early_stopping_patience=None,
    )
    task = run_transfer_test(config, tiny_drums(), tmp_path, monkeypatch, policies=["all", "top:4", "blocks:1"])
    assert task.model.input_shape == (None, 11025)


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"image_size": 64}, "image_size"),
        ({"augment_params": {"rotation": 0.1}}, "audio augmentation parameters"),
        ({"augment_params": {"noise_snr_db": [40, 20]}}, "noise_snr_db"),
        ({"augment_on": "model"}, "augment_on"),
        ({"clip_seconds": 0.1}, r"`clip_seconds` must be at least 0\.163 s for 'aisfx_cnn9'"),
        (
            {"backbone": "musicnn_mtt", "clip_seconds": 0.1},
            r"at least 0\.112 s for 'musicnn_mtt' \(8 STFT frames, hop 256 at 16000 Hz\)",
        ),
        ({"pooling": "cls"}, "pooling"),
        ({"weights": "imagenet.h5"}, "weights"),
        ({"data": "nowhere/"}, "not found"),
    ],
)
def test_audio_configs_are_checked_before_any_work(tmp_path, changes, match):
    config = TrainConfig(**{"backbone": "aisfx_cnn9", "data": str(tmp_path), "out": str(tmp_path / "run"), **changes})
    with pytest.raises(ValueError, match=match):
        keras_tl.train(config)
    assert not os.path.exists(tmp_path / "run")


def keras_tl_cli(*args):
    result = subprocess.run([sys.executable, "-m", "keras_tl", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_audio_run_from_the_command_line_predicts_exports_and_serves_wav(tmp_path, capsys):
    """A real run on drum samples (manifest with kit splits): train with its scratch twin, predict a
    clip, export TFLite (checked) and a SavedModel whose WAV signature takes a stereo 48 kHz file."""
    import tensorflow as tf

    source = datasets.load_drumkits(classes=["kick", "snare", "cymbal"])
    rows = []
    for split, indices in source.predefined.items():
        for c in range(3):
            for i in indices[source.labels[indices] == c][: 5 if split == "train" else 2]:
                rows.append({"path": source.items[i], "label": source.class_names[c], "split": split})
    manifest = tmp_path / "drums.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    run = str(tmp_path / "run")
    data_and_model = ("--data", str(manifest), "--backbone", "aisfx_cnn9", "--clip-seconds", "0.5")
    keras_tl_cli(
        "train",
        *data_and_model,
        "--head-epochs",
        "2",
        "--fine-tune-epochs",
        "1",
        "--batch-size",
        "8",
        "--unfreeze",
        "blocks:1",
        "--pooling",
        "max",
        "--compare-scratch",
        "--augment",
        "standard",
        "--augmented-views",
        "2",
        "--out",
        run,
    )
    metrics = json.load(open(os.path.join(run, "metrics.json")))
    assert "augment: standard" in open(os.path.join(run, "config.yaml")).read()
    assert metrics["confusion_matrix"] and sum(map(sum, metrics["confusion_matrix"])) == 6  # files, not windows
    assert "scratch" in metrics and os.path.isfile(os.path.join(run, "confident_errors.png"))
    from PIL import Image

    grids = {}
    for augment in ("none", "strong"):
        grid = str(tmp_path / f"batch_{augment}.png")
        keras_tl_cli("show-batch", *data_and_model, "--augment", augment, "--png", grid)
        with Image.open(grid) as image:
            grids[augment] = np.asarray(image.convert("L"), np.float32)
    assert grids["none"].shape == grids["strong"].shape and grids["none"].std() > 10  # Spectrograms, not a blank page.
    assert np.mean(np.abs(grids["none"] - grids["strong"]) > 10) > 0.02  # The augmentation shows.
    clip = [r["path"] for r in rows if r["split"] == "test"][0]
    printed = json.loads(keras_tl_cli("predict", run, clip, "--top-k", "2").strip().splitlines()[-1])
    top = keras_tl.predict(run, [clip], top_k=3)[0]
    assert printed["audio"] == clip and printed["top_k"][0]["label"] == top[0][0]
    assert abs(sum(p for _, p in top) - 1) < 1e-4

    result = keras_tl.export_run(run, "tflite", out=str(tmp_path / "exported"))
    assert result.check["top1_agreement"] == 1.0 and result.check["max_abs_diff"] < 1e-4
    # MediaPipe Tasks' AudioClassifier runs the file as it is: the sample rate, channel count and
    # labels come from its metadata. One window of each test clip, at the model's rate.
    from mediapipe.tasks.python import audio as mp_audio
    from mediapipe.tasks.python.components.containers.audio_data import AudioData
    from mediapipe.tasks.python.core.base_options import BaseOptions

    task = keras_tl.load_run(run)
    tests = [r["path"] for r in rows if r["split"] == "test"]
    windows = [audio_data.windows(audio_data.decode(p, 44100), 22050)[0] for p in tests]
    options = mp_audio.AudioClassifierOptions(base_options=BaseOptions(model_asset_path=result.path))
    with mp_audio.AudioClassifier.create_from_options(options) as classifier:
        answers = [classifier.classify(AudioData.create_from_array(w, 44100))[0] for w in windows]
    scores = np.array(
        [[c.score for c in sorted(a.classifications[0].categories, key=lambda c: c.index)] for a in answers]
    )
    names = [a.classifications[0].categories[0].category_name for a in answers]
    reference = task.predict(windows)
    np.testing.assert_allclose(scores, reference, atol=1e-4)
    assert names == [task.class_names[i] for i in reference.argmax(1)]
    # ONNX: tf2onnx 1.17 cannot convert the in-graph log-mel front end (its RFFT), and says so in one
    # line; nothing is published.
    with pytest.raises(keras_tl.ExportError, match=r"could not be converted to ONNX: ONNX has no RFFT op"):
        keras_tl.export_run(run, "onnx", out=str(tmp_path / "exported"))
    assert not os.path.exists(tmp_path / "exported" / "run" / "onnx" / "run.onnx")
    served = keras_tl.export_run(run, "saved_model", out=str(tmp_path / "exported"))
    assert served.check["serving_wav"]["top1_agreement"] == 1.0
    assert served.check["storage"]["variables_bytes"] < 1.1 * served.check["storage"]["parameter_bytes"] + 16384, (
        served.check
    )  # once
    wave, rate = soundfile.read(clip, dtype="float32", always_2d=True)
    stereo48k = audio_data.resample(wave.mean(axis=1), rate, 48000)
    wav = tf.audio.encode_wav(tf.constant(np.stack([stereo48k, stereo48k], 1)), 48000).numpy()
    answer = tf.saved_model.load(served.path).signatures["serving_wav"](wav_bytes=tf.constant([wav]))
    assert answer["labels"].numpy()[0].decode() == top[0][0]
    assert abs(float(answer["probabilities"].numpy()[0].max()) - top[0][1]) < 0.02

    # `predict --server` with an audio file: its bytes (re-encoded as 16-bit WAV unless they are)
    # go to serving_wav over TF Serving's REST API; here a local server runs the exported signature.
    import base64

    from conftest import fake_tf_serving

    signature = tf.saved_model.load(served.path).signatures["serving_wav"]

    def answer_rest(instances):
        data = tf.constant([base64.b64decode(i["b64"]) for i in instances])
        return {k: v.numpy() for k, v in signature(wav_bytes=data).items()}

    assert keras_tl.audio.modality.pcm16_wav(clip)[:4] == b"RIFF"
    with fake_tf_serving(answer_rest) as (url, bodies):
        from keras_tl.cli import main

        assert main(["predict", "--server", url, "--model", "drums", clip]) == 0
        assert bodies[-1][1]["signature_name"] == "serving_wav"
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["audio"] == clip and line["labels"] == top[0][0]
    assert abs(max(line["probabilities"]) - top[0][1]) < 0.02


@pytest.mark.slow
def test_a_musicnn_run_hears_at_16_khz_from_training_to_mediapipe(tmp_path):
    """musicnn's front end is its own (16 kHz, 512/256 STFT, Slaney mel): the data is decoded at that
    rate, the model card and the TFLite metadata say it, and MediaPipe's AudioClassifier, which reads
    the rate from the metadata, gives the Keras model's scores on 44.1 kHz files resampled to it."""
    source = datasets.load_drumkits(classes=["kick", "snare", "cymbal"])
    keep = [
        i
        for split in ("train", "val", "test")
        for c in range(3)
        for i in source.predefined[split][source.labels[source.predefined[split]] == c][: 4 if split == "train" else 2]
    ]
    splits = [s for s in ("train", "val", "test") for _ in range(3 * (4 if s == "train" else 2))]
    small = Source(
        source.class_names, [source.items[i] for i in keep], source.labels[keep], "audio", predefined_indices(splits)
    )
    run = str(tmp_path / "run")
    config = TrainConfig(
        backbone="musicnn_mtt", head_epochs=2, fine_tune_epochs=1, batch_size=8, unfreeze="blocks:1", out=run
    )
    keras_tl.train(config, source=small)
    task = keras_tl.load_run(run)
    assert keras_tl.audio.model.sample_rate(task.model) == 16000 and task.model.input_shape == (None, 16000)
    assert task.modality.card(task)["sample_rate"] == 16000  # What the SavedModel's model_card.json says.
    result = keras_tl.export_run(run, "tflite", out=str(tmp_path / "exported"))
    assert result.check["top1_agreement"] == 1.0 and result.check["max_abs_diff"] < 1e-4
    from mediapipe.tasks.python import audio as mp_audio
    from mediapipe.tasks.python.components.containers.audio_data import AudioData
    from mediapipe.tasks.python.core.base_options import BaseOptions

    tests = [small.items[i] for i in small.predefined["test"]]
    options = mp_audio.AudioClassifierOptions(base_options=BaseOptions(model_asset_path=result.path))

    def mediapipe_scores(rate):
        windows = [audio_data.windows(audio_data.decode(p, rate), rate)[0] for p in tests]  # 1 s each
        with mp_audio.AudioClassifier.create_from_options(options) as classifier:
            answers = [classifier.classify(AudioData.create_from_array(w, rate))[0] for w in windows]
        scores = [[c.score for c in sorted(a.classifications[0].categories, key=lambda c: c.index)] for a in answers]
        return np.array(scores), windows

    # At the model's rate MediaPipe resamples nothing: the very scores. At 44.1 kHz it resamples to the
    # rate the metadata names (with its own filter, so within 0.02): a wrong rate there would not be.
    scores, windows = mediapipe_scores(16000)
    np.testing.assert_allclose(scores, task.predict(windows), atol=1e-4)
    scores, windows = mediapipe_scores(44100)
    np.testing.assert_allclose(scores, task.predict([audio_data.resample(w, 44100, 16000) for w in windows]), atol=0.02)
    # The SavedModel's serving_wav takes the 44.1 kHz files as they are: it low-passes and resamples
    # in the graph and hears what `predict` hears (scipy's polyphase resampling).
    import tensorflow as tf

    served = keras_tl.export_run(run, "saved_model", out=str(tmp_path / "exported"))
    wavs = [keras_tl.audio.export.encode_wav(w, 44100) for w in windows]
    answer = tf.saved_model.load(served.path).signatures["serving_wav"](wav_bytes=tf.constant(wavs))
    expected = task.predict([audio_data.resample(w, 44100, 16000) for w in windows])
    np.testing.assert_allclose(answer["probabilities"].numpy(), expected, atol=0.02)


def test_a_weights_file_of_another_network_is_one_clear_error():
    """aisfx's weights given to musicnn: one WeightsError line, not Keras' warnings and a traceback."""
    with pytest.raises(
        keras_tl.WeightsError, match=r"cannot be loaded into backbone 'musicnn_mtt': .+\. Expected its weights"
    ) as caught:
        keras_tl.build_classifier(
            "musicnn_mtt",
            num_classes=2,
            weights=audio_backbones.pretrained_weights(registry.get("aisfx_cnn9", modality="audio")),
        )
    assert "\n" not in str(caught.value)
