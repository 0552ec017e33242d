"""Benchmark: the text frozen phase's feature pass, trimmed (keras-tl) vs padded to sequence_length.

keras-tl computes the frozen encoder's features once for phase 1 (`features.cached_phase`). For text
it reads each split through `Modality.feature_pass`: texts sorted by length, each batch cut after
its longest row (rounded up to a multiple of 8), the rows put back in the split's order. The padded
pass runs every text at the full `sequence_length`. Both give the same features (the encoder's
attention mask ignores padding; masked mean pooling); this prints the time of each pass (best of
`--repeats`, alternated), their ratio and the largest feature difference.

Data: WordNet noun glosses (Debian `wordnet-base`), `--train` training and `--val` validation
glosses drawn stratified with one seed; all-MiniLM-L6-v2 (`keras-tl assets install`).

    python bench/text_feature_cache.py [--train 1000] [--val 500] [--sequence-length 128] [--repeats 2]

Its last line is `text_feature_cache_speedup=<padded s / trimmed s>`.
"""

import argparse
import os
import platform
import time

import numpy as np

from keras_tl import datasets
from keras_tl.core import data as core_data
from keras_tl.core.contract import modality as modalities
from keras_tl.core.contract import registry
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.models.classifier import Classifier
from keras_tl.core.train import features


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--val", type=int, default=500)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    glosses = datasets.load_wordnet_glosses()
    per_class = -(-(args.train + args.val) // len(glosses.class_names))
    picked = core_data.limit_per_class(glosses.labels, np.arange(len(glosses.labels)), per_class, seed=0)
    picked = np.random.default_rng(0).permutation(picked)[: args.train + args.val]
    texts = [glosses.items[i] for i in picked]
    splits = {
        "train": core_data.Split(texts[: args.train], glosses.labels[picked[: args.train]]),
        "val": core_data.Split(texts[args.train :], glosses.labels[picked[args.train :]]),
    }
    text = modalities.get("text")
    config = TrainConfig(
        backbone="minilm_l6",
        weights="pretrained",
        sequence_length=args.sequence_length,
        batch_size=args.batch_size,
        problem="multiclass",
        head_epochs=1,
        out="never",
    )
    task = Classifier.build(
        text, registry.get("minilm_l6", modality="text"), config, len(glosses.class_names), glosses.class_names
    )
    extractor, _ = features.split_model(task.model)

    def padded():
        return features.extract(
            extractor,
            [
                core_data.targets_as_inputs(text.dataset(task, splits[s], config, cache="none"))
                for s in ("train", "val")
            ],
        )

    def trimmed():
        cached = features.cached_phase(task, config, splits, train_dataset=None)
        return [(np.concatenate([x for x, _ in cached.val.as_numpy_iterator()]), None)]

    seconds = {"padded": [], "trimmed": []}
    results = {}
    for _ in range(args.repeats):
        for name, run in (("padded", padded), ("trimmed", trimmed)):
            started = time.perf_counter()
            results[name] = run()
            seconds[name].append(time.perf_counter() - started)
    difference = float(np.abs(results["padded"][1][0] - results["trimmed"][0][0]).max())
    best = {name: min(s) for name, s in seconds.items()}
    print(
        f"\nWordNet glosses, {args.train} training + {args.val} validation, all-MiniLM-L6-v2, sequence_length "
        f"{args.sequence_length}, batch {args.batch_size}; best of {args.repeats}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    for name in ("padded", "trimmed"):
        print(f"{name:8} feature pass: {best[name]:.1f} s (runs: {', '.join(f'{s:.1f}' for s in seconds[name])})")
    print(f"largest difference of a validation feature: {difference:.2e}")
    print(f"text_feature_cache_speedup={best['padded'] / best['trimmed']:.2f}")


if __name__ == "__main__":
    main()
