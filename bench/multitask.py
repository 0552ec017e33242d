"""Benchmark: one multi-task model (two heads on one backbone) vs two single-task models.

ELPV solar cells (`keras_tl.datasets.load_elpv(labels="multitask")`): head "grade" (defect
probability 0, 1/3, 2/3, 1) and head "cell_type" (mono / poly). For each seed the multi-task
source is split once (stratified, seeded) and the two single-task runs use exactly those splits, so
all three models are trained and tested on the same cells, at the same budget: ImageNet
EfficientNet-Lite0 (offline, `keras-tl assets install`), two-phase 10 + 3 epochs, batch 32
(the transfer table's budget), 64 px by default.

Inference cost: median batch-1 Keras `predict_on_batch` time (the multi-task model once vs the two
single-task models one after the other) and parameter counts. A finished run (its metrics.json)
is read instead of retrained, so a rerun re-measures only the latency.

Needs `keras-tl assets install`.

    python bench/multitask.py [--seeds 0,1,2] [--size 64] [--head-epochs 10] [--epochs 3] [--out runs/multitask]

Prints the table; its last line is `multitask_max_head_drop=<points>`: the largest drop of a head's
test accuracy (single-task minus multi-task, mean of seeds) over the two heads.
"""

import argparse
import dataclasses
import json
import os
import platform
import time
from types import SimpleNamespace

import numpy as np

from keras_tl import datasets
from keras_tl.core import data as core_data
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.data import multitask_labels
from keras_tl.core.export import formats as export
from keras_tl.workflow import load_run, train

HEADS = ("grade", "cell_type")


def single_task(source, head, splits):
    """The source with only `head`'s labels (int classes) and the multi-task run's splits."""
    ((_, classes, start, stop),) = [h for h in multitask_labels.heads_of(source.class_names) if h[0] == head]
    labels = source.labels[:, start:stop].argmax(axis=1)
    return dataclasses.replace(source, class_names=list(classes), labels=labels, predefined=splits)


def stat(values, scale=100.0, digits=1):
    """`mean ± sample sd` of `scale * values` (the mean alone for one value)."""
    values = scale * np.asarray(values, np.float64)
    spread = f" ± {values.std(ddof=1):.{digits}f}" if len(values) > 1 else ""
    return f"{values.mean():.{digits}f}{spread}"


def run_or_reuse(config, source):
    """Trains `config`, or reads its finished run (metrics.json) so a rerun only re-measures latency."""
    if os.path.isfile(os.path.join(config.out, "metrics.json")):
        print(f"[bench] reusing the finished run {config.out}")
        task = load_run(config.out)
        with open(os.path.join(config.out, "metrics.json"), encoding="utf-8") as f:
            metrics = json.load(f)
        return SimpleNamespace(model=task.model, task=task, metrics=metrics)
    return train(config, source)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default="runs/multitask")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    source = datasets.load_elpv(labels="multitask")
    rows = []
    for seed in seeds:
        indices = core_data.stratified_split(source.labels, 0.15, 0.15, seed)
        base = dict(
            backbone="efficientnet_lite0",
            weights="pretrained",
            image_size=args.size,
            seed=seed,
            batch_size=32,
            head_epochs=args.head_epochs,
            fine_tune_epochs=args.epochs,
            fine_tune_lr=1e-4,
            early_stopping_patience=None,
        )
        fixed = dataclasses.replace(source, predefined=indices)
        folder = os.path.join(args.out, f"{args.size}px_{args.head_epochs}+{args.epochs}", str(seed))
        multi = run_or_reuse(TrainConfig(out=os.path.join(folder, "multitask"), **base), fixed)
        seconds = {"multitask": multi.metrics["train_seconds"]}
        single = {}
        for head in HEADS:
            single[head] = run_or_reuse(
                TrainConfig(out=os.path.join(folder, head), **base), single_task(source, head, indices)
            )
            seconds[head] = single[head].metrics["train_seconds"]
        x = multi.task.inputs(fixed.as_split().subset(indices["test"][:1]).items)
        latency = {
            "multitask": export.keras_latency_ms(multi.model, x),
            "single": sum(export.keras_latency_ms(single[h].model, x) for h in HEADS),
        }
        row = {
            "seed": seed,
            "latency_ms": latency,
            "seconds": seconds,
            "params": {
                "multitask": multi.model.count_params(),
                "single": sum(single[h].model.count_params() for h in HEADS),
            },
        }
        for head in HEADS:
            row[head] = {
                "multitask": (multi.metrics["heads"][head]["accuracy"], multi.metrics["heads"][head]["macro_f1"]),
                "single": (single[head].metrics["test_accuracy"], single[head].metrics["macro_f1"]),
            }
        rows.append(row)
        print(
            f"[bench] seed {seed}: "
            + ", ".join(
                f"{h} multi {100 * row[h]['multitask'][0]:.1f} / single {100 * row[h]['single'][0]:.1f}" for h in HEADS
            )
            + f"; batch-1 ms multi {latency['multitask']:.1f} vs two singles {latency['single']:.1f}"
        )

    print(
        f"\nMeasured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores ({platform.machine()}); ELPV, "
        f"EfficientNet-Lite0 (ImageNet) at {args.size} px, two-phase {args.head_epochs} + {args.epochs} epochs; "
        f"seeds {seeds}; test cells per seed: {len(indices['test'])}"
    )
    print(
        "| head | multi-task accuracy | single-task accuracy | multi-task macro F1 | single-task macro F1 | "
        "multi - single (points) |"
    )
    print("|---|---|---|---|---|---|")
    drops = {}
    for head in HEADS:
        multi_acc = [r[head]["multitask"][0] for r in rows]
        single_acc = [r[head]["single"][0] for r in rows]
        drops[head] = 100 * (np.mean(single_acc) - np.mean(multi_acc))
        print(
            f"| {head} | {stat(multi_acc)}% | {stat(single_acc)}% | {stat([r[head]['multitask'][1] for r in rows], 1, 3)} "
            f"| {stat([r[head]['single'][1] for r in rows], 1, 3)} | "
            f"{stat(np.subtract(multi_acc, single_acc))} |"
        )
    print(
        f"batch-1 Keras latency: multi-task {stat([r['latency_ms']['multitask'] for r in rows], 1)} ms, two single-task "
        f"models {stat([r['latency_ms']['single'] for r in rows], 1)} ms; parameters {rows[0]['params']['multitask']:,} "
        f"vs {rows[0]['params']['single']:,}"
    )
    print(
        f"training seconds: multi-task {stat([r['seconds']['multitask'] for r in rows], 1, 0)}, single-task "
        f"{' + '.join(stat([r['seconds'][h] for r in rows], 1, 0) for h in HEADS)}"
    )
    print(f"multitask_max_head_drop={max(drops.values()):.1f}")


if __name__ == "__main__":
    main()
