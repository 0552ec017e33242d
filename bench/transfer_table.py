"""Benchmark: how much do ImageNet weights help, by dataset and label budget?

Datasets {ELPV solar cells, Fashion-MNIST, animal silhouettes} x labels {1%, 10%, 100% of the
training split} x {feature extraction, two-phase fine-tuning, the same architecture from scratch},
with the same epoch budget per cell and fixed seeds. Backbone: ImageNet EfficientNet-Lite0
(`keras-tl assets install`). Fashion-MNIST needs `apt-get install dataset-fashion-mnist`; it is
subsampled to `--pool` images (stratified, seeded) to keep the table to CPU minutes. A label
fraction f keeps f x (training split / classes) images per class (all a class has, if fewer).

Writes `OUT/table.md`, `OUT/table.json` and `OUT/table.png`; prints the table and whether
two-phase >= feature extraction >= scratch holds in every cell. Last line:
`elpv_10pct_two_phase_minus_scratch=<points>`.

    python bench/transfer_table.py [--datasets elpv,fashion,animals] [--fractions 0.01,0.1,1]
                                   [--head-epochs 10] [--epochs 3] [--out runs/transfer_table]
"""

import argparse
import json
import os
import platform
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_tl import datasets  # noqa: E402
from keras_tl.core import data as core_data
from keras_tl.image import data
from keras_tl.core.config import TrainConfig  # noqa: E402
from keras_tl.workflow import train  # noqa: E402

METHODS = ("feature_extraction", "two_phase", "scratch")
SIZES = {"elpv": 64, "fashion": 32, "animals": 32}


def load(name, pool, seed):
    if name == "elpv":
        return datasets.load_elpv()
    if name == "animals":
        return datasets.load_animal_silhouettes()
    source = datasets.load_fashion_mnist("all")
    keep = core_data.limit_per_class(source.labels, np.arange(len(source.labels)), pool // 10, seed)
    return data.ImageSource(source.class_names, source.images[keep], source.labels[keep], licence=source.licence)


def cell(source, name, fraction, method, args):
    train_size = int(round(len(source.labels) * (1 - 0.3)))
    per_class = max(1, int(round(fraction * train_size / len(source.class_names))))
    common = dict(backbone="efficientnet_lite0", image_size=args.size or SIZES[name], seed=args.seed, batch_size=32,
                  early_stopping_patience=None, class_weight="balanced", labels_per_class=per_class,
                  out=os.path.join(args.out, name, f"{fraction:g}", method))
    budget = args.head_epochs + args.epochs
    if method == "feature_extraction":
        config = TrainConfig(weights="imagenet", strategy="feature_extraction", head_epochs=budget, epochs=0, **common)
    elif method == "two_phase":
        config = TrainConfig(weights="imagenet", strategy="two_phase", head_epochs=args.head_epochs,
                             epochs=args.epochs, fine_tune_lr=1e-4, **common)
    else:
        config = TrainConfig(weights="none", strategy="full", head_epochs=budget, epochs=0, **common)
    result = train(config, source)
    return {"dataset": name, "fraction": fraction, "method": method, "labels_per_class": per_class,
            "train_examples": result.metrics["train_examples"], "test_accuracy": result.metrics["test_accuracy"],
            "macro_f1": result.metrics["macro_f1"], "seconds": result.metrics["train_seconds"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="elpv,fashion,animals")
    parser.add_argument("--fractions", default="0.01,0.1,1")
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--pool", type=int, default=10000, help="Fashion-MNIST images used (of 70,000)")
    parser.add_argument("--out", default="runs/transfer_table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, help="image side for every dataset (default: elpv 64, others 32)")
    parser.add_argument("--previous", nargs="*", default=[],
                        help="table.json files of earlier runs (other datasets) to include in the table")
    args = parser.parse_args()
    names = args.datasets.split(",")
    fractions = [float(f) for f in args.fractions.split(",")]
    started = time.perf_counter()
    rows = []
    for name in names:
        source = load(name, args.pool, args.seed)
        for fraction in fractions:
            for method in METHODS:
                rows.append(cell(source, name, fraction, method, args))
                print(f"[table] {rows[-1]}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "table.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=2)
    for path in args.previous:  # Rows measured by earlier runs, for one combined table.
        with open(path, encoding="utf-8") as f:
            earlier = [r for r in json.load(f) if r["dataset"] not in names]
        rows = earlier + rows
        names = list(dict.fromkeys([r["dataset"] for r in earlier])) + names

    def acc(name, fraction, method):
        return next(r for r in rows if (r["dataset"], r["fraction"], r["method"]) == (name, fraction, method))

    lines = [f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores ({platform.machine()}); "
             f"EfficientNet-Lite0 (ImageNet) at {f'{args.size} px' if args.size else '64 px (ELPV), 32 px (others)'}; {args.head_epochs} + {args.epochs} epochs "
             f"for two-phase, "
             f"{args.head_epochs + args.epochs} for the others; test accuracy (macro F1).", "",
             "| dataset | labels | per class | feature extraction | two-phase | scratch | two-phase - scratch |",
             "|---|---|---|---|---|---|---|"]
    holds = True
    for name in names:
        for fraction in fractions:
            fe, tp, sc = (acc(name, fraction, m) for m in METHODS)
            holds &= tp["test_accuracy"] >= fe["test_accuracy"] >= sc["test_accuracy"]
            lines.append(
                f"| {name} | {fraction:.0%} | {tp['labels_per_class']} | "
                + " | ".join(f"{100 * r['test_accuracy']:.1f}% ({r['macro_f1']:.3f})" for r in (fe, tp, sc))
                + f" | {100 * (tp['test_accuracy'] - sc['test_accuracy']):+.1f} |")
    table = "\n".join(lines)
    with open(os.path.join(args.out, "table.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    print(table)

    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        x = np.arange(len(fractions))
        for i, method in enumerate(METHODS):
            ax.bar(x + (i - 1) * 0.27, [100 * acc(name, f, method)["test_accuracy"] for f in fractions], 0.27,
                   label=method.replace("_", " "))
        ax.set_xticks(x, [f"{f:.0%}" for f in fractions])
        ax.set_title(name); ax.set_xlabel("labels used"); ax.set_ylabel("test accuracy (%)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "table.png"), dpi=100)
    print(f"two_phase >= feature_extraction >= scratch in every cell: {holds}")
    print(f"total {time.perf_counter() - started:.0f} s")
    if "elpv" in names and 0.1 in fractions:
        tp, sc = acc("elpv", 0.1, "two_phase"), acc("elpv", 0.1, "scratch")
        print(f"elpv_10pct_two_phase_minus_scratch={100 * (tp['test_accuracy'] - sc['test_accuracy']):.1f}")


if __name__ == "__main__":
    main()
