"""Benchmark: two-phase audio transfer vs the same architecture from scratch, on real drum samples.

Data: Hydrogen's drum kits (Debian `hydrogen-drumkits`; `keras_tl.datasets.load_drumkits`): five
classes (kick, snare, tom, hi-hat, cymbal), split by kit: 12 kits train (338 files), one kit
validates (36), "The Black Pearl 1.0" is the held-out test kit (90 files). A fraction f of the
labels keeps f x (338 / 5) training files per class (all a class has, if fewer); validation and
test are always the same files.

Backbones, one per family, each with pooling "max" over time (aisfx's own) and 1 s windows:
- `aisfx_cnn9`: a CNN pretrained on sound effects (PyPI aisfx, `keras-tl assets install`);
- `efficientnet_lite0_mel`, `mobilenet_v2_mel`: ImageNet CNNs on 96 px log-mel images.
Transfer: 10 epochs on cached features (head lr 1e-3), then 4 epochs with the whole backbone
unfrozen at 1e-4. Scratch: the same architecture from random weights, all 14 epochs trainable at 1e-3
(keras-tl's `compare_scratch`). No early stopping. Test accuracy and macro F1 per file (mean over
its windows); mean and sample standard deviation over the seeds. keras-tl keeps each model's weights from
its epoch of lowest validation loss; the table gives the epoch the scratch arm kept (a from-scratch
network kept at its first epochs has BatchNorm statistics that have not settled yet, and predicts
near chance in inference mode: read its figure as "what `compare_scratch` returned", not as the
best a from-scratch network can do).

    python bench/audio_transfer.py [--seeds 0,1,2] [--fractions 0.1,1]
                                   [--backbones aisfx_cnn9,efficientnet_lite0_mel,mobilenet_v2_mel]
    python bench/audio_transfer.py --report     # the table again, from OUT/audio_transfer.json

Its last line is `audio_10pct_transfer_minus_scratch=<points> (<best backbone>, mean of seeds)`.
"""

import argparse
import json
import os
import platform
import time

import numpy as np

from keras_tl import datasets
from keras_tl.core.config import TrainConfig
from keras_tl.workflow import train


def cell(source, backbone, fraction, seed, out):
    train_size = len(source.predefined["train"])
    per_class = max(1, int(round(fraction * train_size / len(source.class_names))))
    config = TrainConfig(backbone=backbone, pooling="max", head_epochs=10, epochs=4, unfreeze="all",
                         head_lr=1e-3, fine_tune_lr=1e-4, batch_size=32, early_stopping_patience=None,
                         labels_per_class=per_class, seed=seed, compare_scratch=True,
                         out=os.path.join(out, backbone, f"{fraction:g}", f"seed{seed}"))
    started = time.perf_counter()
    metrics = train(config, source).metrics
    with open(os.path.join(config.out, "scratch", "history.json"), encoding="utf-8") as f:
        scratch_val_loss = json.load(f)["full"]["val_loss"]
    return {"scratch_kept_epoch": 1 + int(np.argmin(scratch_val_loss)), "epochs": len(scratch_val_loss),
            "backbone": backbone, "fraction": fraction, "seed": seed, "labels_per_class": per_class,
            "transfer": 100 * metrics["test_accuracy"], "transfer_f1": metrics["macro_f1"],
            "scratch": 100 * metrics["scratch"]["test_accuracy"], "scratch_f1": metrics["scratch"]["macro_f1"],
            "seconds": round(time.perf_counter() - started, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--fractions", default="0.1,1")
    parser.add_argument("--backbones", default="aisfx_cnn9,efficientnet_lite0_mel,mobilenet_v2_mel")
    parser.add_argument("--out", default="runs/audio_transfer")
    parser.add_argument("--report", action="store_true", help="print the table from OUT/audio_transfer.json")
    args = parser.parse_args()
    saved = os.path.join(args.out, "audio_transfer.json")
    if args.report:
        with open(saved, encoding="utf-8") as f:
            rows = json.load(f)
        for r in rows:  # rows of an earlier version of this script: read the kept epoch off the run
            if "scratch_kept_epoch" not in r:
                history = os.path.join(args.out, r["backbone"], f"{r['fraction']:g}", f"seed{r['seed']}", "scratch",
                                       "history.json")
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
        source = datasets.load_drumkits()
        rows = []
        for fraction in fractions:
            for backbone in backbones:
                for seed in seeds:
                    rows.append(cell(source, backbone, fraction, seed, args.out))
                    print(json.dumps(rows[-1]), flush=True)
                    with open(saved, "w", encoding="utf-8") as f:
                        json.dump(rows, f, indent=1)

    def stat(values):
        spread = f"{np.std(values, ddof=1):.1f}" if len(values) > 1 else "n/a"
        return f"{np.mean(values):.1f}% ± {spread}" + ("" if len(values) == len(seeds) else f" ({len(values)} seeds)")

    print(f"\nHydrogen drum kits, 5 classes, held-out test kit (90 files); {len(seeds)} seeds {seeds}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print("| labels | per class | backbone | transfer: accuracy (macro F1) | scratch: accuracy (macro F1) | "
          "scratch kept epoch | transfer - scratch |")
    print("|---|---|---|---|---|---|---|")
    gaps = {}
    for fraction in fractions:
        for backbone in backbones:
            cells = [r for r in rows if r["fraction"] == fraction and r["backbone"] == backbone]
            if not cells:  # a cell the run did not reach (--report on a partial run)
                continue
            t, s = [r["transfer"] for r in cells], [r["scratch"] for r in cells]
            gap = [a - b for a, b in zip(t, s)]
            gaps[fraction, backbone] = float(np.mean(gap))
            kept = ", ".join(str(r.get("scratch_kept_epoch", "?")) for r in cells)
            print(f"| {fraction:.0%} | {cells[0]['labels_per_class']} | {backbone} | {stat(t)} "
                  f"({np.mean([r['transfer_f1'] for r in cells]):.3f}) | {stat(s)} "
                  f"({np.mean([r['scratch_f1'] for r in cells]):.3f}) | {kept} of {cells[0].get('epochs', 14)} | "
                  f"{np.mean(gap):+.1f} ± {np.std(gap, ddof=1) if len(gap) > 1 else float('nan'):.1f} points |")
    if 0.1 in fractions:  # the best backbone: the highest transfer accuracy at 10% of the labels
        best = max(backbones, key=lambda b: np.mean([r["transfer"] for r in rows
                                                     if r["fraction"] == 0.1 and r["backbone"] == b]))
        print(f"audio_10pct_transfer_minus_scratch={gaps[0.1, best]:.1f} ({best}, mean of {len(seeds)} seeds)")


if __name__ == "__main__":
    main()
