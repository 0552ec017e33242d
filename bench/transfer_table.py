"""Benchmark: how much do ImageNet weights help, by dataset and label budget?

Datasets {ELPV solar cells, Fashion-MNIST, animal silhouettes} x labels {1%, 10%, 100% of the
training split} x {feature extraction, two-phase fine-tuning, the same architecture from scratch},
with the same epoch budget per cell, over one or more seeds (each seed draws its own split, label
subset, head initialization and shuffles). Backbone: ImageNet EfficientNet-Lite0
(`keras-tl assets install`). Fashion-MNIST needs `apt-get install dataset-fashion-mnist`; it is
subsampled to `--pool` images (stratified, seeded) to keep the table to CPU minutes. A label
fraction f keeps f x (training split / classes) images per class (all a class has, if fewer).

Writes `OUT/table.md`, `OUT/table.json` and `OUT/table.png`; prints the table (mean ± sample sd
over the seeds, and each seed's two-phase - scratch) and whether two-phase >= feature extraction
>= scratch holds in every cell (on the means). A finished cell (its run's metrics.json, under
`OUT/seed<N>/`) is read instead of retrained, so seeds can be added later. Last line:
`elpv_10pct_two_phase_minus_scratch=<points, mean of seeds>`.

    python bench/transfer_table.py [--datasets elpv,fashion,animals] [--fractions 0.01,0.1,1]
                                   [--head-epochs 10] [--epochs 3] [--seeds 0,1,2] [--out runs/transfer_table]
"""

import argparse
import json
import os
import platform
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from multitask import stat  # noqa: E402  (bench/multitask.py: mean ± sample sd)

from keras_tl import datasets  # noqa: E402
from keras_tl.core import data as core_data  # noqa: E402
from keras_tl.core.contract.config import TrainConfig  # noqa: E402
from keras_tl.core.data import Source  # noqa: E402
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
    return Source(source.class_names, source.items[keep], source.labels[keep], licence=source.licence, modality="image")


def cell(source, name, fraction, method, seed, args):
    train_size = int(round(len(source.labels) * (1 - 0.3)))
    per_class = max(1, int(round(fraction * train_size / len(source.class_names))))
    common = dict(
        backbone="efficientnet_lite0",
        image_size=args.size or SIZES[name],
        seed=seed,
        batch_size=32,
        early_stopping_patience=None,
        balance="class_weights",
        labels_per_class=per_class,
        out=os.path.join(args.out, f"seed{seed}", name, f"{fraction:g}", method),
    )
    finished = os.path.join(common["out"], "metrics.json")
    if os.path.isfile(finished):  # a cell an earlier (or interrupted) bench finished: read, not retrain
        print(f"[table] reusing the finished run {common['out']}", flush=True)
        with open(finished, encoding="utf-8") as f:
            metrics = json.load(f)
        return row(name, fraction, method, seed, per_class, metrics)
    budget = args.head_epochs + args.epochs
    if method == "feature_extraction":
        config = TrainConfig(
            weights="pretrained", strategy="feature_extraction", head_epochs=budget, fine_tune_epochs=0, **common
        )
    elif method == "two_phase":
        config = TrainConfig(
            weights="pretrained",
            strategy="two_phase",
            head_epochs=args.head_epochs,
            fine_tune_epochs=args.epochs,
            fine_tune_lr=1e-4,
            **common,
        )
    else:
        config = TrainConfig(weights="none", strategy="full", head_epochs=budget, fine_tune_epochs=0, **common)
    return row(name, fraction, method, seed, per_class, train(config, source).metrics)


def row(name, fraction, method, seed, per_class, metrics):
    return {
        "dataset": name,
        "fraction": fraction,
        "method": method,
        "seed": seed,
        "labels_per_class": per_class,
        "train_examples": metrics["train_examples"],
        "test_accuracy": metrics["test_accuracy"],
        "macro_f1": metrics["macro_f1"],
        "seconds": metrics["train_seconds"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="elpv,fashion,animals")
    parser.add_argument("--fractions", default="0.01,0.1,1")
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--pool", type=int, default=10000, help="Fashion-MNIST images used (of 70,000)")
    parser.add_argument("--out", default="runs/transfer_table")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    parser.add_argument("--size", type=int, help="image side for every dataset (default: elpv 64, others 32)")
    parser.add_argument(
        "--previous",
        nargs="*",
        default=[],
        help="table.json files of earlier runs (other datasets) to include in the table",
    )
    args = parser.parse_args()
    names = args.datasets.split(",")
    fractions = [float(f) for f in args.fractions.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.perf_counter()
    rows = []
    for seed in seeds:
        for name in names:
            source = load(name, args.pool, seed)
            for fraction in fractions:
                for method in METHODS:
                    rows.append(cell(source, name, fraction, method, seed, args))
                    print(f"[table] {rows[-1]}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "table.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=2)
    for path in args.previous:  # Rows measured by earlier runs, for one combined table.
        with open(path, encoding="utf-8") as f:
            earlier = [r for r in json.load(f) if r["dataset"] not in names]
        rows = earlier + rows
        names = list(dict.fromkeys([r["dataset"] for r in earlier])) + names

    def cells(name, fraction, method):
        """The cell's rows, one per seed, in seed order."""
        found = sorted(
            (r for r in rows if (r["dataset"], r["fraction"], r["method"]) == (name, fraction, method)),
            key=lambda r: r.get("seed", 0),
        )
        return found

    def mean(name, fraction, method, key="test_accuracy"):
        return float(np.mean([r[key] for r in cells(name, fraction, method)]))

    def gaps(name, fraction):
        tp, sc = cells(name, fraction, "two_phase"), cells(name, fraction, "scratch")
        return [t["test_accuracy"] - s["test_accuracy"] for t, s in zip(tp, sc)]

    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores ({platform.machine()}); "
        f"EfficientNet-Lite0 (ImageNet) at {f'{args.size} px' if args.size else '64 px (ELPV), 32 px (others)'}; {args.head_epochs} + {args.epochs} epochs "
        f"for two-phase, "
        f"{args.head_epochs + args.epochs} for the others; seeds {args.seeds}; test accuracy (macro F1), "
        "mean ± sample sd over the seeds.",
        "",
        "| dataset | labels | per class | feature extraction | two-phase | scratch | two-phase - scratch (per seed) |",
        "|---|---|---|---|---|---|---|",
    ]
    holds = True
    for name in names:
        for fraction in fractions:
            holds &= (
                mean(name, fraction, "two_phase")
                >= mean(name, fraction, "feature_extraction")
                >= mean(name, fraction, "scratch")
            )
            per_seed = ", ".join(f"{100 * g:+.1f}" for g in gaps(name, fraction))
            lines.append(
                f"| {name} | {fraction:.0%} | {cells(name, fraction, 'two_phase')[0]['labels_per_class']} | "
                + " | ".join(
                    f"{stat([r['test_accuracy'] for r in cells(name, fraction, m)])}% "
                    f"({stat([r['macro_f1'] for r in cells(name, fraction, m)], 1, 3)})"
                    for m in METHODS
                )
                + f" | {stat(gaps(name, fraction))} ({per_seed}) |"
            )
    table = "\n".join(lines)
    with open(os.path.join(args.out, "table.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    print(table)

    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        x = np.arange(len(fractions))
        for i, method in enumerate(METHODS):
            ax.bar(
                x + (i - 1) * 0.27,
                [100 * mean(name, f, method) for f in fractions],
                0.27,
                label=method.replace("_", " "),
            )
        ax.set_xticks(x, [f"{f:.0%}" for f in fractions])
        ax.set(title=name, xlabel="labels used", ylabel="test accuracy (%)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "table.png"), dpi=100)
    print(f"two_phase >= feature_extraction >= scratch in every cell (means): {holds}")
    print(f"total {time.perf_counter() - started:.0f} s (finished cells read, not retrained, count as 0)")
    if "elpv" in names and 0.1 in fractions:
        print(f"elpv_10pct_two_phase_minus_scratch={100 * np.mean(gaps('elpv', 0.1)):.1f}")


if __name__ == "__main__":
    main()
