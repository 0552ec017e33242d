"""Benchmark: do discriminative learning rates (layer_lr_decay) help phase 2?

The transfer table's ELPV 10% cell (bench/transfer_table.py: ImageNet EfficientNet-Lite0, ELPV
solar cells, 10% of the training split's labels per class, two-phase 10 + 6 epochs at 96 px,
fine_tune_lr 1e-4, balanced class weights), with phase 2 unfreezing the whole backbone, once per
`--decays` value and seed. 1.0 is one rate for every block (keras-tl's default); 0.5 halves the
rate per block from the top. Prints test accuracy and macro F1 as mean +/- sd over the seeds and,
last, `layer_lr_decay_gain_points=<mean accuracy of the second decay minus the first>`.

    python bench/discriminative_rates.py [--decays 1.0,0.5] [--seeds 0,1,2] [--size 96]
                                         [--head-epochs 10] [--epochs 6] [--unfreeze all]
"""

import argparse
import os
import platform
import time

import numpy as np

from keras_tl import datasets
from keras_tl.core.contract.config import TrainConfig
from keras_tl.workflow import train


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decays", default="1.0,0.5")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--fine-tune-lr", type=float, default=1e-4)
    parser.add_argument("--unfreeze", default="all")
    parser.add_argument("--out", default="runs/discriminative_rates")
    args = parser.parse_args()
    decays = [float(d) for d in args.decays.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    source = datasets.load_elpv()
    train_size = int(round(len(source.labels) * (1 - 0.3)))  # As the transfer table sizes a fraction.
    per_class = max(1, int(round(args.fraction * train_size / len(source.class_names))))
    results = {d: [] for d in decays}
    for seed in seeds:
        for decay in decays:
            config = TrainConfig(
                backbone="efficientnet_lite0",
                weights="pretrained",
                image_size=args.size,
                seed=seed,
                batch_size=32,
                early_stopping_patience=None,
                balance="class_weights",
                labels_per_class=per_class,
                strategy="two_phase",
                head_epochs=args.head_epochs,
                fine_tune_epochs=args.epochs,
                fine_tune_lr=args.fine_tune_lr,
                unfreeze=args.unfreeze,
                layer_lr_decay=decay,
                out=os.path.join(args.out, f"decay{decay:g}", str(seed)),
            )
            result = train(config, source, overwrite=True)
            results[decay].append(
                (result.metrics["test_accuracy"], result.metrics["macro_f1"], result.metrics["train_seconds"])
            )
            print(
                f"[bench] decay {decay:g} seed {seed}: accuracy {result.metrics['test_accuracy']:.4f} "
                f"macro F1 {result.metrics['macro_f1']:.4f}",
                flush=True,
            )

    print(
        f"\nMeasured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores ({platform.machine()}); ELPV "
        f"{args.fraction:.0%} of the labels ({per_class} per class), {args.size} px, EfficientNet-Lite0 (ImageNet), "
        f"{args.head_epochs} + {args.epochs} epochs, unfreeze {args.unfreeze}, fine_tune_lr {args.fine_tune_lr:g}; "
        f"seeds {seeds}"
    )
    print("| layer_lr_decay | test accuracy | macro F1 | per seed | training s |\n|---|---|---|---|---|")
    for decay in decays:
        acc, f1, seconds = (np.array(v) for v in zip(*results[decay]))
        spread = (
            (lambda v, scale: f" ± {scale * v.std(ddof=1):.{1 if scale == 100 else 3}f}")
            if len(seeds) > 1
            else (lambda v, scale: "")
        )
        print(
            f"| {decay:g} | {100 * acc.mean():.1f}%{spread(acc, 100)} | {f1.mean():.3f}{spread(f1, 1)} | "
            f"{', '.join(f'{100 * a:.1f}' for a in acc)} | {seconds.mean():.0f} |"
        )
    gain = 100 * (np.mean([r[0] for r in results[decays[-1]]]) - np.mean([r[0] for r in results[decays[0]]]))
    print(f"layer_lr_decay_gain_points={gain:.1f}")


if __name__ == "__main__":
    main()
