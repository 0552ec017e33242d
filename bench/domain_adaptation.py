"""Benchmark: domain adaptation on a real domain shift, ELPV mono- vs polycrystalline solar cells.

For each direction (mono -> poly, poly -> mono) and seed, the target domain is split in two
halves (stratified, seeded): the test half, which every model of the row is tested on, and the
unlabelled half, which the adaptation methods see without its labels. The source domain is split
85 / 15 into training and validation (the model kept is the best on source validation: no target
label is used to choose anything). Rows:

- source-only: `keras_tl.train` on the source, no adaptation;
- each method of `TrainConfig.domain_adaptation` ("prior", "adabn", "coral", "dann") with the unlabelled
  half as `target=`;
- target oracle: trained on the labelled other half of the target domain itself (85 / 15), the
  ceiling adaptation tries to approach.

Labels: functional / defective (`load_elpv()`'s binary labels). Budget (every row the same):
ImageNet EfficientNet-Lite0 (offline, `keras-tl assets install`), two-phase 10 + 3 epochs at
1e-3 / 1e-4, batch 32, 64 px by default, no early stopping. A finished run (its metrics.json) is
read instead of retrained.

    python bench/domain_adaptation.py [--seeds 0,1,2] [--methods prior,adabn,coral,dann] [--size 64]

Prints the table (test accuracy and macro F1, mean ± sd over seeds); its last lines are
`mono_to_poly_accuracy=` (the default method, `keras_tl.core.contract.choices.DEFAULT_ADAPTATION`, mean of
seeds), `worst_direction_minus_source_only=` (points; the lower of the two directions) and
`multitask_max_head_drop=` (read from `bench/multitask.py`'s finished runs under --multitask-out,
when they exist).
"""

import argparse
import glob
import json
import os
import platform
import time

import numpy as np
from multitask import stat  # bench/multitask.py: `python bench/<script>.py` puts bench/ on the path

from keras_tl import datasets
from keras_tl.core.contract.choices import DEFAULT_ADAPTATION
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.data import Source
from keras_tl.workflow import train

DIRECTIONS = (("mono", "poly"), ("poly", "mono"))


def halves(labels, seed):
    """Stratified, seeded halves of a domain: `(unlabelled, test)` indices."""
    rng = np.random.default_rng(seed)
    first, second = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        first.extend(members[: len(members) // 2])
        second.extend(members[len(members) // 2 :])
    return np.sort(first), np.sort(second)


def train_val(labels, seed):
    """Stratified, seeded 85 / 15 training / validation indices."""
    rng = np.random.default_rng(seed + 1000)
    train, val = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        count = max(1, round(0.15 * len(members)))
        val.extend(members[:count])
        train.extend(members[count:])
    return np.sort(train), np.sort(val)


def joined(first, first_indices, second, second_indices, seed):
    """One source whose train / val come from `first[first_indices]` and test is `second[second_indices]`."""
    train, val = train_val(first.labels[first_indices], seed)
    images = [first.items[i] for i in first_indices] + [second.items[i] for i in second_indices]
    labels = np.concatenate([first.labels[first_indices], second.labels[second_indices]])
    test = np.arange(len(first_indices), len(images))
    return Source(
        first.class_names,
        images,
        labels,
        predefined={"train": train, "val": val, "test": test},
        licence=first.licence,
        modality="image",
    )


def run_or_read(config, source, target=None):
    metrics_file = os.path.join(config.out, "metrics.json")
    if os.path.isfile(metrics_file):
        print(f"[bench] reusing the finished run {config.out}")
    else:
        train(config, source, target=target)
    with open(metrics_file, encoding="utf-8") as f:
        metrics = json.load(f)
    return metrics["test_accuracy"], metrics["macro_f1"], metrics["train_seconds"]


def multitask_drop(folder):
    """`multitask_max_head_drop` from bench/multitask.py's finished runs, or None."""
    rows = {}
    for path in glob.glob(os.path.join(folder, "*", "*", "multitask", "metrics.json")):
        seed_dir = os.path.dirname(os.path.dirname(path))
        heads = {}
        with open(path, encoding="utf-8") as f:
            multi = json.load(f)
        for head in multi.get("heads", {}):
            single = os.path.join(seed_dir, head, "metrics.json")
            if not os.path.isfile(single):
                break
            with open(single, encoding="utf-8") as f:
                heads[head] = (json.load(f)["test_accuracy"], multi["heads"][head]["accuracy"])
        else:
            rows[seed_dir] = heads
    if not rows:
        return None
    names = next(iter(rows.values())).keys()
    return max(100 * np.mean([r[h][0] - r[h][1] for r in rows.values()]) for h in names), len(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default="prior,adabn,coral,dann")
    parser.add_argument("--directions", default="mono-poly,poly-mono")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--weight", type=float, default=1.0, help="adaptation_weight of coral and dann")
    parser.add_argument("--out", default="runs/domain_adaptation")
    parser.add_argument("--multitask-out", default="runs/multitask")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    directions = [tuple(d.split("-")) for d in args.directions.split(",")]
    domains = {kind: datasets.load_elpv(cell_type=kind) for kind in ("mono", "poly")}
    rows = ["source-only"] + methods + ["target oracle"]
    results = {d: {r: [] for r in rows} for d in directions}
    for seed in seeds:
        for source_kind, target_kind in directions:
            source, target = domains[source_kind], domains[target_kind]
            unlabelled, test = halves(target.labels, seed)
            folder = os.path.join(
                args.out,
                f"{args.size}px_{args.head_epochs}+{args.epochs}",
                f"{source_kind}_to_{target_kind}",
                str(seed),
            )
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
                adaptation_weight=args.weight,
            )
            on_source = joined(source, np.arange(len(source.labels)), target, test, seed)
            unlabelled_target = Source(
                target.class_names,
                [target.items[i] for i in unlabelled],
                np.zeros(len(unlabelled), np.int64),
                modality="image",
            )
            for row in rows:
                if row == "source-only":
                    config, data, adapt_to = TrainConfig(domain_adaptation="none", **base), on_source, None
                elif row == "target oracle":
                    config, adapt_to = TrainConfig(domain_adaptation="none", **base), None
                    data = joined(target, unlabelled, target, test, seed)
                else:
                    config, data, adapt_to = TrainConfig(domain_adaptation=row, **base), on_source, unlabelled_target
                name = row.replace(" ", "_").replace("-", "_") + (
                    f"_w{args.weight:g}" if row in ("coral", "dann") else ""
                )
                config = TrainConfig.from_dict({**config.to_dict(), "out": os.path.join(folder, name)})
                accuracy, f1, seconds = run_or_read(config, data, adapt_to)
                results[(source_kind, target_kind)][row].append((accuracy, f1, seconds))
                print(
                    f"[bench] seed {seed} {source_kind} -> {target_kind} {row}: accuracy {100 * accuracy:.1f}%, "
                    f"macro F1 {f1:.3f}, {seconds:.0f} s"
                )

    print(
        f"\nMeasured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores ({platform.machine()}); ELPV "
        f"functional / defective, EfficientNet-Lite0 (ImageNet) at {args.size} px, two-phase {args.head_epochs} + "
        f"{args.epochs} epochs; seeds {seeds}; test = half of the target domain "
        + ", ".join(f"({len(halves(domains[t].labels, 0)[1])} {t} cells)" for _, t in directions)
    )
    print("| direction | method | test accuracy | macro F1 | minus source-only (points, paired) | seconds |")
    print("|---|---|---|---|---|---|")
    gains = {}
    for direction in directions:
        base_accuracy = [a for a, _, _ in results[direction]["source-only"]]
        for row in rows:
            values = results[direction][row]
            accuracy = [a for a, _, _ in values]
            gain = np.subtract(accuracy, base_accuracy)
            gains[(direction, row)] = 100 * gain.mean()
            print(
                f"| {direction[0]} -> {direction[1]} | {row} | {stat(accuracy)}% | "
                f"{stat([f for _, f, _ in values], 1, 3)} | {'' if row == 'source-only' else stat(gain)} | "
                f"{stat([s for _, _, s in values], 1, 0)} |"
            )
    for direction in directions:
        source_only = np.mean([a for a, _, _ in results[direction]["source-only"]])
        oracle = np.mean([a for a, _, _ in results[direction]["target oracle"]])
        for method in methods:
            adapted = np.mean([a for a, _, _ in results[direction][method]])
            closed = (adapted - source_only) / (oracle - source_only) if oracle != source_only else float("nan")
            print(
                f"{direction[0]} -> {direction[1]} {method}: closes {100 * closed:.0f}% of the gap between "
                f"source-only and the target oracle"
            )
    if DEFAULT_ADAPTATION in methods:
        if ("mono", "poly") in directions:
            mono_to_poly = np.mean([a for a, _, _ in results[("mono", "poly")][DEFAULT_ADAPTATION]])
            print(f"mono_to_poly_accuracy={100 * mono_to_poly:.1f} ({DEFAULT_ADAPTATION}, mean of {len(seeds)} seeds)")
        worst = min(gains[(d, DEFAULT_ADAPTATION)] for d in directions)
        print(f"worst_direction_minus_source_only={worst:+.1f} ({DEFAULT_ADAPTATION})")
    drop = multitask_drop(args.multitask_out)
    print(
        f"multitask_max_head_drop={drop[0]:.1f} (bench/multitask.py, {drop[1]} seeds)"
        if drop
        else f"multitask_max_head_drop=n/a (no finished runs of bench/multitask.py under {args.multitask_out})"
    )


if __name__ == "__main__":
    main()
