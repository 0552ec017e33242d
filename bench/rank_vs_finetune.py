"""Benchmark: does `keras-tl rank` (LogME on frozen features) order backbones as fine-tuning does?

On each offline real data set, every candidate backbone is (a) scored by `keras_tl.rank` (one
pass of frozen features over the training + validation splits; LogME and a leave-one-out linear
probe) and
(b) trained with `keras_tl.train` on the same splits, then tested on the held-out test split: a
pretrained candidate two-phase (what `keras-tl compare` does for each backbone: head on the frozen
backbone, then unfrozen at a low rate), a random-weight twin as `--compare-scratch` trains one (all
layers from the start, the same total epochs; two-phase training of a frozen random network leaves
its head on unnormalized random features). Candidates: the offline ImageNet
backbones `efficientnet_lite0` and `mobilenet_v2_torchvision` (`keras-tl assets install`) and
their random-weight twins on ELPV (64 px), Fashion-MNIST and animal silhouettes (32 px); the offline
`minilm_l6` sentence encoder and its random twin on WordNet noun glosses (10 supersenses).

Kendall's tau (tau-a) compares the LogME order with the fine-tuned test-accuracy order inside each
(data set, seed) group; the pooled tau counts the concordant minus discordant pairs of all groups
over all their pairs. `rank_speedup` = seconds of all fine-tuning runs / seconds of all rank calls
(rank's time includes building each model and extracting its features; fine-tuning's includes its
test evaluation but not compare's TFLite export, so the ratio is conservative).

Needs `keras-tl assets install`, `apt-get install dataset-fashion-mnist wordnet-base`.

    python bench/rank_vs_finetune.py [--datasets elpv,fashion,animals,wordnet] [--seeds 0,1,2]
                                     [--labels-per-class N] [--pool 2000] [--head-epochs 10] [--epochs 3]
                                     [--rank-examples 1000]
                                     [--out runs/rank_vs_finetune]

The default budget is the transfer table's (bench/transfer_table.py): all training labels, 10 head
+ 3 unfrozen epochs (13 from scratch), batch 32.

Every candidate is ranked twice: on at most `--rank-examples` training + validation examples
(`keras-tl rank --max-examples`, drawn per class; default 1000) and on all of them; the table gives
both. A finished (data set, seed) group is read back from OUT/<data set>/<seed>/group.json (its
rank calls run again if `keras_tl.core.evaluation.transferability` / `keras_tl.workflow.ranking` changed).

Prints the table; its last lines are `kendall_tau=<x>` and `rank_speedup=<x>` for rank on every
example (its default); a line before them gives both for the subsampled rank.
"""

import argparse
import json
import os
import platform
import time

import numpy as np

from keras_tl import datasets
from keras_tl.core import data as core_data
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.data import Source
from keras_tl.core.evaluation import transferability
from keras_tl.workflow import rank, train
from keras_tl.workflow.training_run import scratch_baseline

IMAGE_BACKBONES = ("efficientnet_lite0", "mobilenet_v2_torchvision")
SETTINGS = {  # data set -> (backbones, pretrained weights, input settings)
    "elpv": (IMAGE_BACKBONES, "imagenet", {"image_size": 64}),
    "fashion": (IMAGE_BACKBONES, "imagenet", {"image_size": 32}),
    "animals": (IMAGE_BACKBONES, "imagenet", {"image_size": 32}),
    "wordnet": (
        ("minilm_l6",),
        "preset",
        {"sequence_length": 64, "head_lr": 3e-3, "fine_tune_lr": 5e-5, "unfreeze": "all"},
    ),
}


def load(name, pool, seed):
    """The data set, stratified-subsampled to `pool` examples (ELPV is used whole: 2,624 cells)."""
    if name == "elpv":
        return datasets.load_elpv()
    source = {
        "fashion": lambda: datasets.load_fashion_mnist("all"),
        "animals": datasets.load_animal_silhouettes,
        "wordnet": datasets.load_wordnet_glosses,
    }[name]()
    keep = core_data.limit_per_class(
        source.labels, np.arange(len(source.labels)), pool // len(source.class_names), seed
    )
    if source.modality == "text":
        return Source(
            source.class_names,
            [source.items[i] for i in keep],
            source.labels[keep],
            licence=source.licence,
            modality="text",
        )
    return Source(source.class_names, source.items[keep], source.labels[keep], licence=source.licence, modality="image")


def rank_code():
    """A digest of the code `rank` scores with: a finished group measured with other code is ranked again."""
    import hashlib

    from keras_tl.workflow import ranking

    digest = hashlib.sha256()
    for module in (transferability, ranking):
        with open(module.__file__, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:12]


def group(name, seed, args):
    """Ranks (on all examples, then on at most `--rank-examples`) and fine-tunes every candidate on one
    (data set, seed); returns its rows and the seconds of each. A finished group is read back from
    OUT/<data set>/<seed>/group.json, so an interrupted run continues and seeds can be added later; its
    rank figures are measured again when the rank code (or `--rank-examples`) changed since."""
    names, pretrained, settings = SETTINGS[name]
    folder = os.path.join(args.out, name, str(seed))
    finished = os.path.join(folder, "group.json")
    kept = None
    if os.path.exists(finished):
        with open(finished, encoding="utf-8") as f:
            kept = json.load(f)
        if kept["rank_examples"] != args.rank_examples or kept.get("rank_code") != rank_code():
            print(
                f"[bench] {name} seed {seed}: fine-tuning read back from {finished}; rank measured again "
                "(other --rank-examples or rank code)"
            )
        else:
            print(f"[bench] {name} seed {seed}: read back from {finished}")
            return kept["rows"], kept["rank_seconds"], kept["subsample_seconds"], kept["finetune_seconds"]
    source = load(name, args.pool, seed)
    base = dict(
        seed=seed,
        batch_size=32,
        labels_per_class=args.labels_per_class,
        early_stopping_patience=None,
        head_epochs=args.head_epochs,
        fine_tune_epochs=args.epochs,
        **{"fine_tune_lr": 1e-4, **settings},
    )
    config = TrainConfig(backbone=names[0], weights=pretrained, out=folder, **base)
    started = time.perf_counter()  # The full rank (the headline) first: it never profits from a warmed-up call.
    ranked = rank(config, list(names), source, out=config.out)
    rank_seconds = time.perf_counter() - started
    started = time.perf_counter()
    subsampled = {
        (r["backbone"], r["weights"]): r for r in rank(config, list(names), source, max_examples=args.rank_examples)
    }
    subsample_seconds = time.perf_counter() - started
    rows, finetune_seconds = [], 0.0
    trained = {(r["backbone"], r["weights"]): r for r in kept["rows"]} if kept else {}
    for r in ranked:
        sub = subsampled[(r["backbone"], r["weights"])]
        if trained:  # Fine-tuned by an earlier run of this group: its results, the new rank figures.
            earlier = trained[(r["backbone"], r["weights"])]
            result_metrics = {k: earlier[k] for k in ("test_accuracy", "macro_f1")}
            seconds = earlier["finetune_seconds"]
        else:
            out = os.path.join(config.out, f"{r['backbone']}_{r['weights']}")
            candidate = TrainConfig(backbone=r["backbone"], weights=pretrained, out=out, **base)
            if not r["pretrained"]:  # A random twin trains as `--compare-scratch` trains: all layers, same epochs.
                candidate = scratch_baseline(candidate)
            started = time.perf_counter()
            result_metrics = train(candidate, source, overwrite=True).metrics
            seconds = time.perf_counter() - started
        finetune_seconds += seconds
        rows.append(
            {
                **r,
                "dataset": name,
                "seed": seed,
                "test_accuracy": result_metrics["test_accuracy"],
                "macro_f1": result_metrics["macro_f1"],
                "finetune_seconds": seconds,
                "logme_subsample": sub["logme"],
                "subsample_examples": sub["examples"],
                "subsample_seconds": sub["seconds"],
            }
        )
    with open(finished, "w", encoding="utf-8") as f:
        json.dump(
            {
                "rank_examples": args.rank_examples,
                "rank_code": rank_code(),
                "rows": rows,
                "rank_seconds": rank_seconds,
                "subsample_seconds": subsample_seconds,
                "finetune_seconds": finetune_seconds,
            },
            f,
            indent=2,
        )
    return rows, rank_seconds, subsample_seconds, finetune_seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="elpv,fashion,animals,wordnet")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--labels-per-class", type=int, help="training labels per class (default: all)")
    parser.add_argument("--pool", type=int, default=2000, help="examples kept of Fashion-MNIST, silhouettes, WordNet")
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--rank-examples",
        type=int,
        default=1000,
        help="the second rank call's max_examples (`keras-tl rank --max-examples`)",
    )
    parser.add_argument("--out", default="runs/rank_vs_finetune")
    args = parser.parse_args()
    names = [n for n in args.datasets.split(",") if n]
    unknown = sorted(set(names) - set(SETTINGS))
    if unknown:
        parser.error(f"unknown data sets {unknown}; expected some of {sorted(SETTINGS)}")
    seeds = [int(s) for s in args.seeds.split(",")]

    rows, rank_total, subsample_total, finetune_total = [], 0.0, 0.0, 0.0
    pooled = {"logme": [0, 0, 0], "logme_subsample": [0, 0, 0], "probe_accuracy": [0, 0, 0]}
    taus = {}
    for seed in seeds:  # Seed-major: every data set of seed 0 first, so a stopped run still has whole seeds.
        for name in names:
            group_rows, rank_seconds, subsample_seconds, finetune_seconds = group(name, seed, args)
            rows += group_rows
            rank_total += rank_seconds
            subsample_total += subsample_seconds
            finetune_total += finetune_seconds
            accuracy = [r["test_accuracy"] for r in group_rows]
            for score in pooled:
                group_tau, concordant, discordant, pairs = transferability.kendall_tau(
                    [r[score] for r in group_rows], accuracy
                )
                pooled[score] = [a + b for a, b in zip(pooled[score], (concordant, discordant, pairs))]
                taus.setdefault((name, score), []).append(group_tau)
            print(
                f"[bench] {name} seed {seed}: rank {rank_seconds:.0f} s ({subsample_seconds:.0f} s on at most "
                f"{args.rank_examples} examples), fine-tuning {finetune_seconds:.0f} s"
            )
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "rows.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=2)

    labels = f"{args.labels_per_class} training labels per class" if args.labels_per_class else "all training labels"
    print(
        f"\nMeasured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores ({platform.machine()}); seeds "
        f"{seeds}; {labels}; pretrained: two-phase {args.head_epochs} + {args.epochs} epochs; random twins: "
        f"{args.head_epochs + args.epochs} epochs from scratch"
    )
    print(
        f"| data set | backbone | weights | LogME | LogME, {args.rank_examples} examples | linear probe "
        "(leave-one-out) | fine-tuned test accuracy | rank s | rank s, subsample | fine-tune s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        keys = sorted(
            {(r["backbone"], r["weights"]) for r in rows if r["dataset"] == name},
            key=lambda k: (
                -np.mean([r["logme"] for r in rows if (r["backbone"], r["weights"]) == k and r["dataset"] == name])
            ),
        )
        for backbone, weights in keys:
            mine = [r for r in rows if r["dataset"] == name and (r["backbone"], r["weights"]) == (backbone, weights)]

            def stat(key, scale=1.0, digits=1, mine=mine):
                values = scale * np.array([r[key] for r in mine])
                spread = f" ± {values.std(ddof=1):.{digits}f}" if len(values) > 1 else ""
                return f"{values.mean():.{digits}f}{spread}"

            print(
                f"| {name} | {backbone} | {weights} | {stat('logme', digits=4)} | "
                f"{stat('logme_subsample', digits=4)} | {stat('probe_accuracy', 100)}% "
                f"| {stat('test_accuracy', 100)}% | {stat('seconds', digits=0)} | "
                f"{stat('subsample_seconds', digits=0)} | {stat('finetune_seconds', digits=0)} |"
            )
    print(
        f"\n| data set | Kendall tau, LogME vs fine-tuned accuracy | LogME on {args.rank_examples} examples | "
        "linear probe |"
    )
    print("|---|---|---|---|")
    for name in names:
        print(
            f"| {name} | {np.mean(taus[(name, 'logme')]):+.2f} | {np.mean(taus[(name, 'logme_subsample')]):+.2f} | "
            f"{np.mean(taus[(name, 'probe_accuracy')]):+.2f} |"
        )
    for score, (concordant, discordant, pairs) in pooled.items():
        print(
            f"pooled over {pairs} pairs, {score}: {concordant} concordant, {discordant} discordant, "
            f"tau {(concordant - discordant) / pairs:+.3f}"
        )
    print(
        f"rank: {rank_total:.0f} s in all on every example, {subsample_total:.0f} s on at most "
        f"{args.rank_examples}; fine-tuning (compare): {finetune_total:.0f} s in all"
    )
    print(
        f"with max_examples={args.rank_examples}: Kendall tau {tau(pooled['logme_subsample']):.3f}, rank "
        f"{finetune_total / subsample_total:.1f}x faster than fine-tuning"
    )
    print("on every example (keras-tl rank's default; the last two lines):")
    print(f"kendall_tau={tau(pooled['logme']):.3f}")
    print(f"rank_speedup={finetune_total / rank_total:.1f}")


def tau(counts):
    concordant, discordant, pairs = counts
    return (concordant - discordant) / pairs


if __name__ == "__main__":
    main()
