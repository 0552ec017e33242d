"""The quickstart's figures as mean and spread over seeds (the README's table comes from here).

    python bench/quickstart_seeds.py [--seeds 0 1 2] [--out runs/quickstart_seeds]

Each seed is one whole `keras-tl quickstart` (its split, head initialization, shuffles and scratch
initialization all follow the seed). Prints one row per seed, then mean +/- sample standard
deviation and the [min, max] range, last lines `transfer_accuracy=`, `scratch_accuracy=`.
"""

import argparse
import os

import numpy as np

from keras_tl import quickstart


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="runs/quickstart_seeds")
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        result = quickstart.run(os.path.join(args.out, f"seed{seed}"), seed=seed)
        rows.append(
            (
                seed,
                result["transfer"]["test_accuracy"],
                result["transfer"]["macro_f1"],
                result["scratch"]["test_accuracy"],
                result["scratch"]["macro_f1"],
                result["export"]["test_accuracy"],
                result["seconds"],
            )
        )
    print(
        f"\n{'seed':>5}{'transfer acc':>14}{'macro F1':>10}{'scratch acc':>13}{'macro F1':>10}{'TFLite acc':>12}"
        f"{'seconds':>9}"
    )
    for row in rows:
        print(f"{row[0]:>5}{row[1]:>14.3f}{row[2]:>10.3f}{row[3]:>13.3f}{row[4]:>10.3f}{row[5]:>12.3f}{row[6]:>9.0f}")
    values = np.array([r[1:6] for r in rows])
    names = ["transfer_accuracy", "transfer_macro_f1", "scratch_accuracy", "scratch_macro_f1", "tflite_accuracy"]
    spread = values.std(0, ddof=1) if len(rows) > 1 else np.zeros(values.shape[1])
    for name, mean, sd, low, high in zip(names, values.mean(0), spread, values.min(0), values.max(0)):
        print(f"{name}={mean:.3f} +/- {sd:.3f} (n={len(rows)}, range {low:.3f}-{high:.3f})")


if __name__ == "__main__":
    main()
