"""How long the `keras-tl` command takes to answer: help, listings, usage errors, and one prediction.

    python bench/cli_startup.py [--repeats 3]

Each figure is the best of `--repeats` runs of a fresh `python -m keras_tl` process (wall clock, start
to exit), so Python's own start-up is included. It first trains a tiny real run (MobileNetV2 from
random weights on 24 digit images at 32 px, about a minute) for `predict RUN_DIR one.png` to load.
Prints one line per command, then `help_s=`, `backbones_s=`, `predict_one_image_s=`, and last
`slowest_usage_error_s=` (goals: help < 0.5 s, backbones < 2 s, predict < 5 s, usage errors < 1 s).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from keras_tl.cli import parser as cli_parser
from keras_tl.core.utils.private import subcommand_parsers

USAGE_ERRORS = [
    ["train", "--data", "/no/such/folder"],
    ["train", "--data", ".", "--backbone", "resnet9000"],
    ["train", "--data", ".", "--fine-tune-epochs", "-1"],
    ["train", "--head-lr=nan"],
    ["export", "no_run", "--keep-versions", "0"],
    ["predict", "no_run", "x.png"],
    ["rank", "--data", "/no/such/folder", "--backbones", "efficientnet_lite0"],
    ["nosuchcommand"],
]


def timed(argv, repeats, expect):
    """Best wall time of `keras-tl argv` over `repeats` runs; checks its exit code is in `expect`."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "keras_tl", *argv], capture_output=True, text=True)
        best = min(best, time.perf_counter() - started)
        if done.returncode not in expect:
            sys.exit(f"keras-tl {' '.join(argv)} exited {done.returncode}: {done.stderr[-500:]}")
    noise = [line for line in done.stderr.splitlines() if "keras-tl" not in line and "usage:" not in line]
    print(f"keras-tl {' '.join(argv)[:60]:60s} {best:6.3f} s  exit {done.returncode}  other stderr lines: {len(noise)}")
    return best


def tiny_run(folder):
    """A finished run on real data (digits) and one PNG to predict, from random weights: no download."""
    import numpy as np
    from PIL import Image

    import keras_tl
    from keras_tl import datasets

    source = datasets.load_digits([0, 1, 2])
    picked = np.concatenate([np.flatnonzero(source.labels == c)[:8] for c in range(3)])
    source = keras_tl.image.data.from_arrays(
        np.stack([np.asarray(source.items[i]) for i in picked]), source.labels[picked], source.class_names
    )
    config = keras_tl.TrainConfig(
        backbone="mobilenet_v2",
        weights="none",
        image_size=32,
        head_epochs=1,
        fine_tune_epochs=0,
        strategy="full",
        batch_size=8,
        out=os.path.join(folder, "run"),
        early_stopping_patience=None,
        val_split=0.25,
        test_split=0.25,
    )
    result = keras_tl.train(config, source)
    image = os.path.join(folder, "one.png")
    Image.fromarray(np.asarray(source.items[0]).astype(np.uint8)).save(image)
    return result.run_dir, image


def main():
    parser = argparse.ArgumentParser(description="Times keras-tl's answers.")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    commands = sorted(p.prog.split()[-1] for p in subcommand_parsers(cli_parser.build()))
    helps = [timed(["--help"], args.repeats, (0,))]
    helps += [timed([name, "--help"], args.repeats, (0,)) for name in commands]
    backbones = timed(["backbones"], args.repeats, (0,))
    errors = [timed(argv, args.repeats, (1, 2)) for argv in USAGE_ERRORS]
    with tempfile.TemporaryDirectory() as folder:
        run_dir, image = tiny_run(folder)
        predict = timed(["predict", run_dir, image], args.repeats, (0,))
    print(f"help_s={max(helps):.3f}")
    print(f"backbones_s={backbones:.3f}")
    print(f"predict_one_image_s={predict:.3f}")
    print(f"slowest_usage_error_s={max(errors):.3f}")


if __name__ == "__main__":
    main()
