"""Benchmark: a pretrained text encoder vs a text CNN from scratch, with 1,000 labels.

Task: WordNet noun glosses -> their supersense (the 10 largest noun lexicographer classes,
63,245 glosses; Debian `wordnet-base`). One seeded stratified split: `--per-class` training
labels per class (default 100 = 1,000 labels), 50 per class for validation, `--test` held-out
glosses. Both models see exactly these texts.

- keras-tl two-phase: all-MiniLM-L6-v2 (`minilm_l6`, `keras-tl assets install`), mean pooling;
  phase 1 trains the head on cached features (30 epochs), phase 2 unfreezes the whole encoder
  (`--unfreeze all`, as BERT-style encoders are usually fine-tuned; `blocks:2` for the top two)
  for 3 epochs at 5e-5 (AdamW, warmup + linear decay).
- Scratch: TextVectorization (vocabulary from the training texts) -> Embedding(128) ->
  Conv1D(128, 5) -> global max pool -> dropout -> softmax, Adam, early stopping on validation.

Prints both test accuracies and, last, `minilm_minus_cnn_points=<points>` (goal: >= 15).

    python bench/text_transfer.py [--per-class 100] [--test 5000] [--epochs 3] [--fine-tune-lr 5e-5]
                                  [--unfreeze all] [--out runs/text_transfer]
"""

import argparse
import json
import os
import platform
import time
from types import SimpleNamespace

import keras
import numpy as np
from sklearn.metrics import f1_score

from keras_tl import datasets
from keras_tl.core import data as core_data
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.contract.errors import RunExistsError
from keras_tl.workflow import train


def split(source, per_class, val_per_class, test, seed):
    rng = np.random.default_rng(seed)
    test_idx = core_data.stratified_split(source.labels, 0.5, test / len(source.labels), seed)["test"]
    rest = np.setdiff1d(np.arange(len(source.labels)), test_idx)
    train_idx, val_idx = [], []
    for c in range(len(source.class_names)):
        idx = rng.permutation(rest[source.labels[rest] == c])
        train_idx.append(idx[:per_class])
        val_idx.append(idx[per_class : per_class + val_per_class])
    source.predefined = {
        "train": np.sort(np.concatenate(train_idx)),
        "val": np.sort(np.concatenate(val_idx)),
        "test": np.sort(test_idx),
    }
    return source


def text_cnn(source, splits, seed, epochs):
    keras.utils.set_random_seed(seed)
    texts = {s: np.asarray(splits[s].items, dtype=object) for s in splits}
    vectorize = keras.layers.TextVectorization(max_tokens=20000, output_sequence_length=64)
    vectorize.adapt(texts["train"])
    model = keras.Sequential(
        [
            keras.Input((64,), dtype="int64"),
            keras.layers.Embedding(vectorize.vocabulary_size(), 128),
            keras.layers.Dropout(0.2),
            keras.layers.Conv1D(128, 5, activation="relu", padding="same"),
            keras.layers.GlobalMaxPooling1D(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(len(source.class_names), activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = {s: vectorize(texts[s]).numpy() for s in texts}
    started = time.perf_counter()
    model.fit(
        x["train"],
        splits["train"].labels,
        validation_data=(x["val"], splits["val"].labels),
        epochs=epochs,
        batch_size=32,
        verbose=2,
        callbacks=[keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)],
    )
    seconds = time.perf_counter() - started
    predicted = model.predict(x["test"], verbose=0).argmax(-1)
    accuracy = float(np.mean(predicted == splits["test"].labels))
    return accuracy, float(f1_score(splits["test"].labels, predicted, average="macro")), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--test", type=int, default=5000)
    parser.add_argument("--head-epochs", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cnn-epochs", type=int, default=40)
    parser.add_argument("--fine-tune-lr", type=float, default=5e-5)
    parser.add_argument("--unfreeze", default="all")
    parser.add_argument("--out", default="runs/text_transfer")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    source = split(datasets.load_wordnet_glosses(), args.per_class, 50, args.test, args.seed)
    splits = core_data.split_source(source, val_split=0.1, test_split=0.1, seed=args.seed)
    print(
        f"WordNet noun supersenses: {len(source.class_names)} classes; train/val/test = "
        f"{len(splits['train'])}/{len(splits['val'])}/{len(splits['test'])}"
    )

    config = TrainConfig(
        backbone="minilm_l6",
        out=os.path.join(args.out, "minilm"),
        sequence_length=64,
        head_epochs=args.head_epochs,
        fine_tune_epochs=args.epochs,
        unfreeze=args.unfreeze,
        head_lr=3e-3,
        fine_tune_lr=args.fine_tune_lr,
        batch_size=32,
        seed=args.seed,
        early_stopping_patience=None,
    )
    try:
        result = train(config, source)
    except RunExistsError as error:  # a finished run of this config: read it, do not retrain
        if not error.finished:
            raise
        result = SimpleNamespace(metrics=json.loads(open(os.path.join(config.out, "metrics.json")).read()))
        print(f"[bench] reusing the finished run {config.out}")
    cnn_accuracy, cnn_f1, cnn_seconds = text_cnn(source, splits, args.seed, args.cnn_epochs)

    minilm = result.metrics["test_accuracy"]
    print(
        f"\nMeasured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores ({platform.machine()}); "
        f"{len(splits['train'])} training labels, {len(splits['test'])} test glosses"
    )
    print("| model | test accuracy | macro F1 | training s |\n|---|---|---|---|")
    print(
        f"| MiniLM-L6 two-phase ({args.head_epochs} + {args.epochs} epochs, unfreeze {args.unfreeze}, "
        f"fine_tune_lr {args.fine_tune_lr:g}) | {100 * minilm:.1f}% | "
        f"{result.metrics['macro_f1']:.3f} | {result.metrics['train_seconds']:.0f} |"
    )
    print(f"| text CNN from scratch | {100 * cnn_accuracy:.1f}% | {cnn_f1:.3f} | {cnn_seconds:.0f} |")
    print(f"phase seconds: {result.metrics['phase_seconds']}")
    print(f"minilm_minus_cnn_points={100 * (minilm - cnn_accuracy):.1f}")


if __name__ == "__main__":
    main()
