"""Benchmark: two-phase audio transfer vs the same architecture from scratch, on real drum samples.

Data: Hydrogen's drum kits (Debian `hydrogen-drumkits`; `keras_tl.datasets.load_drumkits`): five
classes (kick, snare, tom, hi-hat, cymbal), split by kit: 12 kits train (338 files), one kit
validates (36), "The Black Pearl 1.0" is the held-out test kit (90 files). A fraction f of the
labels keeps f x (338 / 5) training files per class (all a class has, if fewer); validation and
test are always the same files.

Backbones, one per family, each with pooling "max" over time (aisfx's own; `--pooling avg`: the mean) and 1 s windows:
- `aisfx_cnn9`: a CNN pretrained on sound effects (PyPI aisfx, `keras-tl assets install`);
- `efficientnet_lite0_mel`, `mobilenet_v2_mel`: ImageNet CNNs on 96 px log-mel images.
Transfer: 10 epochs on cached features (head lr 1e-3), then 4 epochs with the whole backbone
unfrozen at 1e-4 (`--epochs 10+4`). Scratch: the same architecture from random weights, all 14
epochs trainable at 1e-3 (keras-tl's `compare_scratch`: the same total). No early stopping. Test accuracy and macro F1 per file (mean over
its windows); mean and sample standard deviation over the seeds. Both arms keep the weights of their
epoch of highest validation accuracy (ties: lower validation loss; `monitor: val_accuracy`); the
table gives the epoch the scratch arm kept. With `--monitor val_loss` (keras-tl's default) most
10%-label scratch runs keep epoch 1 or 2: near-uniform predictions have the lowest loss, while their
BatchNorm statistics have not settled and they predict near chance in inference mode.

    python bench/audio_transfer.py [--seeds 0,1,2] [--fractions 0.1,1] [--monitor val_accuracy]
                                   [--backbones aisfx_cnn9,efficientnet_lite0_mel,mobilenet_v2_mel]
                                   [--epochs 10+4] [--augment none] [--classes kick,snare,tom,hihat,cymbal]
                                   [--pooling max] [--deterministic]
    python bench/audio_transfer.py --report [same flags]   # the table again, from OUT/audio_transfer.json

`--epochs H+F`: transfer trains H frozen-phase and F fine-tuning epochs, scratch H + F epochs.
Cells already in OUT/audio_transfer.json (same monitor, epochs, augmentation, classes, pooling and
determinism) are kept, not re-run: an interrupted run continues, and `--fractions 0.1` then
`--fractions 1` fill one table; other settings' rows stay in the file beside them.

`--deterministic` turns on TensorFlow's op determinism (`TrainConfig(deterministic=True)`): without it
the from-scratch arm's figures move between two runs of one seed on one machine (float sums in
multi-threaded CPU kernels; 56 epochs from random weights amplify them), the transfer arm's barely.
With it, reruns on one machine repeat to the last digit; a fresh machine of the same kind gave the
transfer arm's figures again and other from-scratch figures (README, audio section).

Two more test sets of other sources: every run (transfer and scratch) is also scored on LMMS's drum
samples (Debian `lmms-common`, `keras_tl.datasets.load_lmms_drums`: 54 one-shots of another library,
other recordings and processing) and on Sonic Pi's (Debian `sonic-pi-samples`,
`keras_tl.datasets.load_sonic_pi_drums`: 44 CC0 one-shots from freesound.org), the table's last four
columns. Rows saved before a test set existed are scored on it from their saved runs, not retrained.

Its last line is `audio_10pct_transfer_minus_scratch=<points> (<best backbone>, mean of seeds)`.
"""

import argparse
import dataclasses
import json
import os
import platform
import time

import keras
import numpy as np

from keras_tl import datasets
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.evaluation.evaluate import evaluate_predictions
from keras_tl.workflow import load_run, train


def kept_epoch(history, monitor):
    """1-based epoch whose weights the run kept (BestWeights' rule)."""
    loss = history["val_loss"]
    if monitor == "val_loss":
        return 1 + int(np.argmin(loss))
    return 1 + min(range(len(loss)), key=lambda i: (-history["val_accuracy"][i], loss[i]))


def other_source(run_dir, other, scratch=False):
    """`(accuracy %, macro F1)` of a finished run's saved model (or its scratch twin's) on another source's files."""
    task = load_run(run_dir)
    if scratch:  # the twin's folder holds its model and metrics; the run's task says how to feed it
        task = dataclasses.replace(task, model=keras.saving.load_model(os.path.join(run_dir, "scratch", "model.keras")))
    metrics = evaluate_predictions(
        other.labels, task.predict(other.items, batch_size=64), other.class_names, "multiclass"
    )
    keras.backend.clear_session()
    return 100 * metrics["test_accuracy"], metrics["macro_f1"]


# Test sets of other sources: row key prefix -> (loader, column title).
OTHER_SOURCES = {
    "lmms": (datasets.load_lmms_drums, "LMMS drums"),
    "sonicpi": (datasets.load_sonic_pi_drums, "Sonic Pi drums"),
}


def add_other_source(row, run_dir, others):
    """Scores a run on each of `others` ({key: source}) that its row has no figures for yet."""
    for key, other in others.items():
        if f"{key}_transfer" not in row:
            row[f"{key}_transfer"], row[f"{key}_transfer_f1"] = other_source(run_dir, other)
            row[f"{key}_scratch"], row[f"{key}_scratch_f1"] = other_source(run_dir, other, scratch=True)
    return row


def cell(
    source,
    backbone,
    fraction,
    seed,
    out,
    monitor,
    head_epochs=10,
    epochs=4,
    augment="none",
    others=None,
    classes=datasets.DRUM_CLASSES,
    pooling="max",
    deterministic=False,
):
    train_size = len(source.predefined["train"])
    per_class = max(1, int(round(fraction * train_size / len(source.class_names))))
    config = TrainConfig(
        backbone=backbone,
        pooling=pooling,
        head_epochs=head_epochs,
        fine_tune_epochs=epochs,
        unfreeze="all",
        head_lr=1e-3,
        fine_tune_lr=1e-4,
        batch_size=32,
        early_stopping_patience=None,
        labels_per_class=per_class,
        seed=seed,
        compare_scratch=True,
        monitor=monitor,
        augment=augment,
        augmented_views=4 if augment != "none" else 0,
        deterministic=deterministic,
        out=os.path.join(
            out,
            f"{head_epochs}+{epochs}",
            augment,
            *_classes_folder(classes),
            *([] if pooling == "max" else [f"pool-{pooling}"]),
            *(["deterministic"] if deterministic else []),
            backbone,
            f"{fraction:g}",
            f"seed{seed}",
        ),
    )
    started = time.perf_counter()
    finished = os.path.join(config.out, "metrics.json")
    if os.path.isfile(finished):  # a run an interrupted bench finished but did not record: read, not retrain
        with open(finished, encoding="utf-8") as f:
            metrics = json.load(f)
    else:
        metrics = train(config, source).metrics
    with open(os.path.join(config.out, "scratch", "history.json"), encoding="utf-8") as f:
        scratch = json.load(f)["full"]
    row = {
        "scratch_kept_epoch": kept_epoch(scratch, monitor),
        "epochs": len(scratch["val_loss"]),
        "monitor": monitor,
        "budget": f"{head_epochs}+{epochs}",
        "augment": augment,
        "pooling": pooling,
        "deterministic": deterministic,
        "classes": list(classes),
        "run": config.out,
        "backbone": backbone,
        "fraction": fraction,
        "seed": seed,
        "labels_per_class": per_class,
        "transfer": 100 * metrics["test_accuracy"],
        "transfer_f1": metrics["macro_f1"],
        "scratch": 100 * metrics["scratch"]["test_accuracy"],
        "scratch_f1": metrics["scratch"]["macro_f1"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    return add_other_source(row, config.out, others) if others else row


def _classes_folder(classes):
    """The five drums (the default) keep the folder layout of earlier runs; other class lists get their own."""
    return [] if tuple(classes) == datasets.DRUM_CLASSES else ["-".join(classes)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--fractions", default="0.1,1")
    parser.add_argument("--backbones", default="aisfx_cnn9,efficientnet_lite0_mel,mobilenet_v2_mel")
    parser.add_argument("--out", default="runs/audio_transfer")
    parser.add_argument(
        "--monitor",
        default="val_accuracy",
        choices=["val_accuracy", "val_loss"],
        help="the best epoch, whose weights each arm keeps",
    )
    parser.add_argument(
        "--epochs", default="10+4", help="transfer: frozen-phase + fine-tuning epochs; scratch trains their sum"
    )
    parser.add_argument("--augment", default="none", help="none, light, standard or strong (both arms)")
    parser.add_argument(
        "--classes",
        default=",".join(datasets.DRUM_CLASSES),
        help="drum classes (load_drumkits: kick, snare, tom, hihat, cymbal, clap, other)",
    )
    parser.add_argument(
        "--pooling",
        default="max",
        choices=["max", "avg"],
        help="over time, after the mean over frequency (both arms); max is aiSFX's own",
    )
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="TensorFlow op determinism (keras-tl's deterministic: true): reruns on one machine give the same figures",
    )
    parser.add_argument("--report", action="store_true", help="print the table from OUT/audio_transfer.json")
    args = parser.parse_args()
    classes = args.classes.split(",")
    saved = os.path.join(args.out, "audio_transfer.json")

    def chosen(r):  # the rows of this table: one monitor, schedule and augmentation
        return (
            r.get("monitor", "val_loss") == args.monitor
            and r.get("budget", "10+4") == args.epochs
            and r.get("augment", "none") == args.augment
            and r.get("classes", list(datasets.DRUM_CLASSES)) == classes
            and r.get("pooling", "max") == args.pooling
            and r.get("deterministic", False) == args.deterministic
        )

    if args.report:
        with open(saved, encoding="utf-8") as f:
            rows = [r for r in json.load(f) if chosen(r)]
        if not rows:
            raise SystemExit(
                f"No rows in {saved} for --monitor {args.monitor} --epochs {args.epochs} --augment {args.augment}"
            )
        for r in rows:  # rows of an earlier version of this script: read the kept epoch off the run
            if "scratch_kept_epoch" not in r:
                history = os.path.join(
                    args.out, r["backbone"], f"{r['fraction']:g}", f"seed{r['seed']}", "scratch", "history.json"
                )
                with open(history, encoding="utf-8") as f:
                    losses = json.load(f)["full"]["val_loss"]
                r["scratch_kept_epoch"], r["epochs"] = 1 + int(np.argmin(losses)), len(losses)
        seeds = sorted({r["seed"] for r in rows})
        fractions = sorted({r["fraction"] for r in rows})
        backbones = list(dict.fromkeys(r["backbone"] for r in rows))
    else:
        seeds = [int(s) for s in args.seeds.split(",")]
        fractions = [float(f) for f in args.fractions.split(",")]
        backbones = args.backbones.split(",")
        source = datasets.load_drumkits(classes)
        others = {key: load(classes) for key, (load, _) in OTHER_SOURCES.items()}
        rows, kept = [], []  # this table's rows; other settings' rows, kept in the file
        if os.path.isfile(saved):
            with open(saved, encoding="utf-8") as f:
                for r in json.load(f):
                    (rows if chosen(r) else kept).append(r)
        for r in rows:  # rows from before a test set existed: evaluate their saved runs on it
            layout = [r["budget"], r["augment"]] if "budget" in r else []  # older rows: OUT/backbone/...
            run_dir = r.get("run") or os.path.join(
                args.out, *layout, r["backbone"], f"{r['fraction']:g}", f"seed{r['seed']}"
            )
            if any(f"{key}_transfer" not in r for key in others) and os.path.isdir(os.path.join(run_dir, "scratch")):
                add_other_source(r, run_dir, others)
                with open(saved, "w", encoding="utf-8") as f:
                    json.dump(kept + rows, f, indent=1)
        done = {(r["backbone"], r["fraction"], r["seed"]) for r in rows}
        for fraction in fractions:
            for backbone in backbones:
                for seed in seeds:
                    if (backbone, fraction, seed) in done:
                        continue
                    head_epochs, epochs = (int(n) for n in args.epochs.split("+"))
                    rows.append(
                        cell(
                            source,
                            backbone,
                            fraction,
                            seed,
                            args.out,
                            args.monitor,
                            head_epochs,
                            epochs,
                            args.augment,
                            others,
                            classes,
                            args.pooling,
                            args.deterministic,
                        )
                    )
                    print(json.dumps(rows[-1]), flush=True)
                    with open(saved, "w", encoding="utf-8") as f:
                        json.dump(kept + rows, f, indent=1)

    def stat(values):
        spread = f"{np.std(values, ddof=1):.1f}" if len(values) > 1 else "n/a"
        return f"{np.mean(values):.1f}% ± {spread}" + ("" if len(values) == len(seeds) else f" ({len(values)} seeds)")

    fractions = sorted({r["fraction"] for r in rows})
    backbones = list(dict.fromkeys(r["backbone"] for r in rows))
    monitors = sorted({r.get("monitor", "val_loss") for r in rows})
    print(
        f"\nHydrogen drum kits, {len(classes)} classes ({', '.join(classes)}), held-out test kit; {len(seeds)} seeds {seeds}; "
        f"best epoch by {', '.join(monitors)}; transfer {args.epochs} epochs, scratch "
        f"{sum(int(n) for n in args.epochs.split('+'))}; augment {args.augment}; pooling {args.pooling}; "
        f"{'deterministic ops; ' if args.deterministic else ''}"
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    columns = [(key, title) for key, (_, title) in OTHER_SOURCES.items() if all(f"{key}_transfer" in r for r in rows)]
    print(
        "| labels | per class | backbone | transfer: accuracy (macro F1) | scratch: accuracy (macro F1) | "
        "scratch kept epoch | transfer - scratch |"
        + "".join(f" {title} (other source): transfer | {title}: scratch |" for _, title in columns)
    )
    print("|---|---|---|---|---|---|---|" + "---|---|" * len(columns))
    gaps = {}
    for fraction in fractions:
        for backbone in backbones:
            cells = [r for r in rows if r["fraction"] == fraction and r["backbone"] == backbone]
            if not cells:  # a cell the run did not reach (--report on a partial run)
                continue
            t, s = [r["transfer"] for r in cells], [r["scratch"] for r in cells]
            gap = [a - b for a, b in zip(t, s)]
            gaps[fraction, backbone] = round(float(np.mean(gap)), 1) + 0.0  # no "-0.0"
            kept = ", ".join(str(r.get("scratch_kept_epoch", "?")) for r in cells)
            print(
                f"| {fraction:.0%} | {cells[0]['labels_per_class']} | {backbone} | {stat(t)} "
                f"({np.mean([r['transfer_f1'] for r in cells]):.3f}) | {stat(s)} "
                f"({np.mean([r['scratch_f1'] for r in cells]):.3f}) | {kept} of {cells[0].get('epochs', 14)} | "
                f"{gaps[fraction, backbone]:+.1f} ± {np.std(gap, ddof=1) if len(gap) > 1 else float('nan'):.1f} points |"
                + "".join(
                    f" {stat([r[f'{key}_{arm}'] for r in cells])} "
                    f"({np.mean([r[f'{key}_{arm}_f1'] for r in cells]):.3f}) |"
                    for key, _ in columns
                    for arm in ("transfer", "scratch")
                )
            )
    if 0.1 in fractions:  # the best backbone: the highest transfer accuracy at 10% of the labels
        best = max(
            backbones,
            key=lambda b: np.mean([r["transfer"] for r in rows if r["fraction"] == 0.1 and r["backbone"] == b]),
        )
        print(f"audio_10pct_transfer_minus_scratch={gaps[0.1, best]:.1f} ({best}, mean of {len(seeds)} seeds)")


if __name__ == "__main__":
    main()
