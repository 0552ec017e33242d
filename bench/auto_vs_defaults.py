"""Benchmark: `keras_tl.auto` under a time budget against `keras_tl.train` with its defaults.

On each offline real data set and seed, on the same splits (the config's seed splits them):
- defaults: `train` with the default config and the data set's usual backbone (ELPV: the quickstart's
  EfficientNet-Lite0 at 96 px, 100 labels per class; animal silhouettes: EfficientNet-Lite0 at 32 px;
  WordNet glosses: MiniLM-L6, 64 tokens);
- auto: `auto` with `--budget` (default 10 minutes) over every backbone of the modality whose weights
  are here, exported to TFLite and checked;
- grid (with `--grid`): the best, on the validation split, of a manual grid run for as long as `auto`
  ran (backbone x head_lr x fine_tune_lr, in that order, each a whole `train`); its test accuracy.

Each arm's figures are kept in OUT/<data set>/<seed>/<arm>.json; a rerun reads them back.

Needs `keras-tl assets install` and `apt-get install wordnet-base`.

    python bench/auto_vs_defaults.py [--datasets elpv,animals,wordnet] [--seeds 0,1,2] [--budget 10m]
                                     [--grid] [--out runs/auto_vs_defaults]

Prints a row per (data set, seed); the last lines are `auto_minus_defaults_points=<mean>` (test accuracy,
auto - defaults, in points, over every row) and `auto_budget_overrun=<max>` (seconds / budget).
"""

import argparse
import json
import os
import platform
import time

import numpy as np

import keras_tl
from keras_tl import datasets
from keras_tl.core import data as core_data
from keras_tl.core.contract import registry
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.data import Source
from keras_tl.workflow.checks import parse_budget

SETTINGS = {  # data set -> (default backbone, config fields)
    "elpv": ("efficientnet_lite0", {"image_size": 96, "labels_per_class": 100}),
    "animals": ("efficientnet_lite0", {"image_size": 32}),
    "wordnet": ("minilm_l6", {"sequence_length": 64}),
}
POOL = 2000  # examples kept of the silhouettes and the glosses (stratified)
GRID = {"head_lr": (1e-3, 3e-3), "fine_tune_lr": ("auto", "find")}


def load(name, seed):
    if name == "elpv":
        return datasets.load_elpv()
    source = {"animals": datasets.load_animal_silhouettes, "wordnet": datasets.load_wordnet_glosses}[name]()
    keep = core_data.limit_per_class(
        source.labels, np.arange(len(source.labels)), POOL // len(source.class_names), seed
    )
    items = [source.items[i] for i in keep] if source.modality == "text" else source.items[keep]
    return Source(source.class_names, items, source.labels[keep], licence=source.licence, modality=source.modality)


def cached(path, work):
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    result = work()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    return result


def defaults(name, seed, source, folder):
    backbone, fields = SETTINGS[name]
    config = TrainConfig(backbone=backbone, seed=seed, out=os.path.join(folder, "defaults"), **fields)
    started = time.perf_counter()
    result = keras_tl.train(config, source)
    return {"test_accuracy": result.metrics["test_accuracy"], "seconds": time.perf_counter() - started}


def automatic(name, seed, source, folder, budget):
    _, fields = SETTINGS[name]
    config = TrainConfig(seed=seed, out=os.path.join(folder, "auto"), **fields)
    result = keras_tl.auto(config, source, budget=budget)
    return {
        "test_accuracy": result.metrics["test_accuracy"],
        "seconds": result.seconds,
        "budget": result.budget,
        "overrun": result.seconds / result.budget,
        "backbone": result.chosen.backbone,
        "trials": len(result.trials),
        "latency_ms": result.export.get("latency_ms_batch1"),
    }


def grid(name, seed, source, folder, seconds):
    """Whole `train` runs over the grid until `seconds` are spent; the best by validation accuracy."""
    _, fields = SETTINGS[name]
    modality = source.modality
    backbones = registry.offline(modality=modality)
    started, runs = time.perf_counter(), []
    for backbone in backbones:
        for head_lr in GRID["head_lr"]:
            for fine_tune_lr in GRID["fine_tune_lr"]:
                if runs and time.perf_counter() - started >= seconds:
                    break
                out = os.path.join(folder, "grid", f"{backbone}_{head_lr:g}_{fine_tune_lr}")
                config = TrainConfig(
                    backbone=backbone, seed=seed, head_lr=head_lr, fine_tune_lr=fine_tune_lr, out=out, **fields
                )
                result = keras_tl.train(config, source)
                history = result.histories.get("phase2") or result.histories["phase1"]
                runs.append(
                    {
                        "run": os.path.basename(out),
                        "val_accuracy": max(history["val_accuracy"]),
                        "test_accuracy": result.metrics["test_accuracy"],
                    }
                )
    best = max(runs, key=lambda r: r["val_accuracy"])
    return {**best, "runs": len(runs), "seconds": time.perf_counter() - started}


def measure(name, seed, args, budget):
    """One (data set, seed) row: each arm measured, or read back."""
    folder = os.path.join(args.out, name, str(seed))
    source = load(name, seed)
    row = {
        "data": name,
        "seed": seed,
        "defaults": cached(os.path.join(folder, "defaults.json"), lambda: defaults(name, seed, source, folder)),
        "auto": cached(
            os.path.join(folder, f"auto_{budget:.0f}s.json"), lambda: automatic(name, seed, source, folder, budget)
        ),
    }
    if args.grid:
        row["grid"] = cached(
            os.path.join(folder, f"grid_{budget:.0f}s.json"),
            lambda: grid(name, seed, source, folder, row["auto"]["seconds"]),
        )
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="elpv,animals,wordnet")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budget", default="10m")
    parser.add_argument("--grid", action="store_true", help="also the manual grid of the same cost")
    parser.add_argument("--out", default="runs/auto_vs_defaults")
    args = parser.parse_args()
    budget = parse_budget(args.budget)
    rows = []
    for name in args.datasets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            rows.append(measure(name, seed, args, budget))
    print(
        f"# auto ({budget:.0f} s budget) vs train defaults; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    print("| data | seed | defaults | auto | auto - defaults | auto backbone | trials | seconds | overrun | grid |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        d, a = r["defaults"], r["auto"]
        grid_cell = f"{100 * r['grid']['test_accuracy']:.1f}% ({r['grid']['runs']} runs)" if "grid" in r else "not run"
        print(
            f"| {r['data']} | {r['seed']} | {100 * d['test_accuracy']:.1f}% | {100 * a['test_accuracy']:.1f}% | "
            f"{100 * (a['test_accuracy'] - d['test_accuracy']):+.1f} | {a['backbone']} | {a['trials']} | "
            f"{a['seconds']:.0f} | {a['overrun']:.2f} | {grid_cell} |"
        )
    gains = [100 * (r["auto"]["test_accuracy"] - r["defaults"]["test_accuracy"]) for r in rows]
    for name in dict.fromkeys(r["data"] for r in rows):
        mine = [g for g, r in zip(gains, rows) if r["data"] == name]
        print(f"{name}: auto - defaults {np.mean(mine):+.1f} points (worst {min(mine):+.1f}, {len(mine)} seeds)")
    print(f"auto_minus_defaults_points={np.mean(gains):+.1f} (sd {np.std(gains):.1f}, {len(gains)} rows)")
    print(f"auto_budget_overrun={max(r['auto']['overrun'] for r in rows):.2f}")


if __name__ == "__main__":
    main()
