"""Writes the tutorial notebooks from the cell lists below (keeps their source reviewable as .py)."""

import os

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))

QUICKSTART = [
    ("md", """# Transfer learning in a few minutes, offline

This notebook tells the whole keras-tl story on real images that ship with scikit-learn (1,797
handwritten digit scans), so it runs anywhere, without a download:

1. **Pretrain** a small Keras Applications backbone (MobileNetV2) on a *source* task: digits 0-4.
2. **Fine-tune** those weights on a *target* task, digits 5-9, with only **10 labels per class**,
   in two phases: frozen backbone + new head, then unfrozen backbone at a low learning rate.
3. **Compare** with the same architecture trained from random weights on the same labels.

With real ImageNet weights you would skip step 1 and pass `weights="imagenet"`."""),
    ("code", """import os

import matplotlib.pyplot as plt
import numpy as np

import keras_tl

OUT = os.environ.get("KERAS_TL_NOTEBOOK_OUT", "runs/notebook_quickstart")
COMMON = dict(backbone="mobilenet_v2", image_size=32, seed=0, batch_size=32,
              early_stopping_patience=None, class_weight="none")"""),
    ("md", """## The data

`keras_tl.datasets.load_digits` returns an `ImageSource`: uint8 RGB images and integer labels.
The 8x8 scans are resized to 32x32 by the tf.data pipeline (32px is MobileNetV2's minimum)."""),
    ("code", """source_task = keras_tl.datasets.load_digits([0, 1, 2, 3, 4])
target_task = keras_tl.datasets.load_digits([5, 6, 7, 8, 9])
print(len(source_task.labels), "source images;", len(target_task.labels), "target images")

fig, axes = plt.subplots(1, 10, figsize=(10, 1.3))
for ax, digit in zip(axes, range(10)):
    task, offset = (source_task, 0) if digit < 5 else (target_task, 5)
    ax.imshow(task.images[np.flatnonzero(task.labels == digit - offset)[0]])
    ax.set_title(str(digit)); ax.axis("off")
plt.show()"""),
    ("md", """## 1. Pretrain a backbone on the source task

`strategy="full"` trains everything from the start, as you would without pretrained weights.
`save_backbone_weights` keeps only the backbone, to be reused as `weights=...`."""),
    ("code", """source_run = keras_tl.train(
    keras_tl.TrainConfig(out=f"{OUT}/source", weights="none", strategy="full",
                         head_epochs=12, epochs=0, head_lr=2e-3, **COMMON),
    source_task,
)
weights = keras_tl.save_backbone_weights(source_run.model, f"{OUT}/source_backbone.weights.h5")"""),
    ("md", """## 2. Two-phase fine-tuning on the target task

Phase 1 trains only the new head (the backbone is frozen and called with `training=False`).
Phase 2 unfreezes the backbone (BatchNorm layers stay frozen), **recompiles**, and continues at a
100x lower learning rate. `labels_per_class=10` keeps 10 training images per digit; validation and
test splits stay whole."""),
    ("code", """transfer = keras_tl.train(
    keras_tl.TrainConfig(out=f"{OUT}/transfer", weights=weights, strategy="two_phase",
                         head_epochs=10, epochs=10, head_lr=1e-2, fine_tune_lr=1e-4,
                         labels_per_class=10, **COMMON),
    target_task,
)"""),
    ("md", """## 3. The same architecture from scratch

Same labels, same 20 epochs, random weights."""),
    ("code", """scratch = keras_tl.train(
    keras_tl.TrainConfig(out=f"{OUT}/scratch", weights="none", strategy="full",
                         head_epochs=10, epochs=10, head_lr=2e-3, labels_per_class=10, **COMMON),
    target_task,
)"""),
    ("md", "## Results on the held-out test split"),
    ("code", """t, s = transfer.metrics, scratch.metrics
print(f"transfer accuracy {t['test_accuracy']:.3f}  macro F1 {t['macro_f1']:.3f}")
print(f"scratch  accuracy {s['test_accuracy']:.3f}  macro F1 {s['macro_f1']:.3f}")
print(f"difference: {100 * (t['test_accuracy'] - s['test_accuracy']):+.1f} points")
assert t["test_accuracy"] > s["test_accuracy"], "transfer should beat scratch here\""""),
    ("md", """## Learning curves of the two phases

The dashed line marks where the backbone was unfrozen."""),
    ("code", """h1, h2 = transfer.histories["phase1"], transfer.histories["phase2"]
val = h1["val_accuracy"] + h2["val_accuracy"]
plt.plot(range(1, len(val) + 1), val, marker="o", label="transfer (val)")
plt.plot(range(1, len(val) + 1), scratch.histories["full"]["val_accuracy"], marker="x", label="scratch (val)")
plt.axvline(len(h1["val_accuracy"]) + 0.5, linestyle="--", color="grey")
plt.xlabel("epoch"); plt.ylabel("validation accuracy"); plt.legend(); plt.show()"""),
    ("md", """## Use the trained model

Every run directory holds `model.keras`, which takes raw images: preprocessing is inside the graph.
From the shell: `keras-tl evaluate RUN_DIR` and `keras-tl predict RUN_DIR IMAGE...`."""),
    ("code", """model, config, class_names = keras_tl.load_run(transfer.run_dir)
images = keras_tl.data.make_dataset(
    keras_tl.data.Split(target_task.images[:5], target_task.labels[:5]),
    image_size=config.image_size, batch_size=5, num_classes=len(class_names))
probabilities = model.predict(images, verbose=0)
print("predicted:", [class_names[i] for i in probabilities.argmax(-1)])
print("true:     ", [class_names[i] for i in target_task.labels[:5]])"""),
]


def build(cells):
    notebook = new_notebook()
    notebook.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


if __name__ == "__main__":
    nbformat.write(build(QUICKSTART), os.path.join(HERE, "01_quickstart.ipynb"))
