"""Benchmark: audio transfer vs the same architecture from scratch on instrument families.

Data: `keras_tl.datasets.load_gm_instruments()` (11 NSynth families rendered from General MIDI
SoundFonts by fluidsynth): train on FluidR3 (1,232 clips), validate on `--val-per-class` clips per
family of MuseScore_General, test on all of TimGM6mb (1,242 clips, an independent SoundFont: new
recordings of the same programs). A fraction f of the labels keeps round(f x 112) training clips per
family (`labels_per_class`, drawn by the seed).

Transfer: keras-tl's defaults for audio on each `--backbones` entry (pretrained; the frozen phase
`head_epochs: auto` on cached features, then `--fine-tune-epochs` epochs with the backbone unfrozen at
`fine_tune_lr: auto`, 1e-4). Scratch: the same architecture from random weights, everything trainable
at 1e-3 for up to `--scratch-epochs` epochs (80), early-stopped on validation accuracy with
`--scratch-patience` (30 epochs; with 10, two of three seeds stopped at epoch 11-13 near chance while
the third climbed to 51.9% by epoch 54) and its best epoch kept: a converged budget, not the transfer
arm's. Runs already finished in `--out` with the same config are read, not retrained. Mean and sample
sd over the seeds.

    python bench/instruments.py [--seeds 0,1,2] [--fraction 0.1] [--backbones aisfx_cnn9]
                                [--pooling avg] [--head-norm] [--fine-tune-epochs 5]
                                [--scratch-epochs 80] [--scratch-patience 30] [--val-per-class 30]
                                [--out runs/instruments]

`--pooling` and `--head-norm` change the transfer arm only (the scratch arm keeps its converged recipe,
so its finished runs are reused).

Its last line is `instruments_<pct>pct_transfer_minus_scratch=<points>` (best backbone, mean of seeds).
"""

import argparse
import json
import os
import platform
import time

import numpy as np

from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.contract.errors import RunExistsError
from keras_tl.core.data import Source, predefined_indices
from keras_tl.datasets.instruments import load_gm_instruments
from keras_tl.workflow import train


def with_small_validation(source, per_class):
    """The source with its validation split cut to `per_class` clips per family (the first ones of each:
    every program, low pitches first), so that an epoch's validation costs seconds, not a minute."""
    keep, splits = [], []
    for split, indices in source.predefined.items():
        if split == "val":
            indices = np.concatenate(
                [indices[source.labels[indices] == c][::4][:per_class] for c in range(len(source.class_names))]
            )
        keep += list(indices)
        splits += [split] * len(indices)
    keep = np.asarray(keep)
    return Source(
        source.class_names,
        [source.items[i] for i in keep],
        source.labels[keep],
        "audio",
        predefined_indices(splits),
        source.skipped,
        source.licence,
    )


def sd(values):
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def run(config, source):
    """Trains `config`, or reads its finished run when `config.out` holds one of the same config (a
    rerun with another `--scratch-patience` retrains only the scratch arm)."""
    started = time.perf_counter()
    try:
        result = train(config, source)
    except RunExistsError as error:
        if not error.finished:
            result = train(config, source, overwrite=True)
        else:
            with open(os.path.join(config.out, "metrics.json"), encoding="utf-8") as f:
                metrics = json.load(f)
            with open(os.path.join(config.out, "history.json"), encoding="utf-8") as f:
                histories = json.load(f)
            return _row(metrics, histories, metrics.get("total_seconds"))
    return _row(result.metrics, result.histories, round(time.perf_counter() - started, 1))


def _row(metrics, histories, seconds):
    return {
        "test_accuracy": metrics["test_accuracy"],
        "macro_f1": metrics["macro_f1"],
        "seconds": seconds,
        "epochs": sum(len(h.get("loss", [])) for h in histories.values()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--backbones", default="aisfx_cnn9")
    parser.add_argument("--fine-tune-epochs", type=int, default=5)
    parser.add_argument("--pooling", default="avg", help="the transfer arm's pooling (avg, max)")
    parser.add_argument("--head-norm", action="store_true", help="the transfer arm's head standardizes its features")
    parser.add_argument("--scratch-epochs", type=int, default=80)
    parser.add_argument("--scratch-patience", type=int, default=30)
    parser.add_argument("--val-per-class", type=int, default=30)
    parser.add_argument("--out", default="runs/instruments")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    source = with_small_validation(load_gm_instruments(), args.val_per_class)
    per_class = max(1, round(args.fraction * len(source.predefined["train"]) / len(source.class_names)))
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {per_class} training clips per family, "
        f"{len(source.predefined['val'])} validation, {len(source.predefined['test'])} test (TimGM6mb)"
    )
    rows = {}
    variant = ("" if args.pooling == "avg" else f"_{args.pooling}") + ("_norm" if args.head_norm else "")
    for backbone in args.backbones.split(","):
        for seed in seeds:
            common = dict(backbone=backbone, labels_per_class=per_class, seed=seed, clip_seconds=1.0)
            transfer = run(
                TrainConfig(
                    weights="pretrained",
                    fine_tune_epochs=args.fine_tune_epochs,
                    pooling=args.pooling,
                    head_norm=args.head_norm,
                    out=os.path.join(args.out, f"{backbone}_s{seed}_transfer{variant}"),
                    **common,
                ),
                source,
            )
            scratch = run(
                TrainConfig(
                    weights="none",
                    strategy="full",
                    head_epochs=args.scratch_epochs,
                    fine_tune_epochs=0,
                    head_lr=1e-3,
                    monitor="val_accuracy",
                    early_stopping_patience=args.scratch_patience,
                    out=os.path.join(args.out, f"{backbone}_s{seed}_scratch"),
                    **common,
                ),
                source,
            )
            rows.setdefault(backbone, []).append((transfer, scratch))
            print(
                f"{backbone} seed {seed}: transfer {100 * transfer['test_accuracy']:.1f}% ({transfer['epochs']} epochs, "
                f"{transfer['seconds']} s), scratch {100 * scratch['test_accuracy']:.1f}% ({scratch['epochs']} epochs, "
                f"{scratch['seconds']} s)",
                flush=True,
            )
    print(
        "| backbone | transfer accuracy | scratch accuracy | transfer - scratch (points) | transfer F1 | scratch F1 |"
    )
    print("|---|---|---|---|---|---|")
    gaps = {}
    for backbone, pairs in rows.items():
        t = np.array([100 * p[0]["test_accuracy"] for p in pairs])
        s = np.array([100 * p[1]["test_accuracy"] for p in pairs])
        f_t = np.array([p[0]["macro_f1"] for p in pairs])
        f_s = np.array([p[1]["macro_f1"] for p in pairs])
        gaps[backbone] = (float((t - s).mean()), float(sd(t - s)))
        print(
            f"| {backbone} | {t.mean():.1f} ± {sd(t):.1f} | {s.mean():.1f} ± {sd(s):.1f} | "
            f"{gaps[backbone][0]:+.1f} ± {gaps[backbone][1]:.1f} | {f_t.mean():.3f} | {f_s.mean():.3f} |"
        )
    with open(os.path.join(args.out, "instruments.json"), "w", encoding="utf-8") as f:
        json.dump({b: [list(p) for p in pairs] for b, pairs in rows.items()}, f, indent=1)
    best = max(gaps, key=lambda b: gaps[b][0])
    print(
        f"instruments_{round(100 * args.fraction)}pct_transfer_minus_scratch={gaps[best][0]:+.1f} "
        f"(sd {gaps[best][1]:.1f}, {best}, {len(seeds)} seeds)"
    )


if __name__ == "__main__":
    main()
