"""Benchmark: the Keras transfer-learning guide's recipe vs keras-tl, same data, model and epochs.

The recipe (keras.io/guides/transfer_learning, written out plainly below): a frozen
`keras.applications` backbone called with `training=False`, float32 images from the host, `fit`
for the frozen epochs, then `trainable = True`, recompile at 1e-5 and `fit` again. keras-tl runs
the same two phases through `keras_tl.train`: phase 1 on cached backbone features (computed once),
uint8 images to the model. Both start from the same backbone weights file and see the same
train/val/test split of scikit-learn's digits (all ten classes) resized to `--size`.

Prints each side's phase-1 wall time (incl. validation; keras-tl's incl. computing the features),
phase-2 throughput (training images per second incl. validation) and test accuracy. Last line:
`phase1_speedup=<recipe phase-1 seconds / keras-tl phase-1 seconds>`.

    python bench/recipe_vs_keras_tl.py [--weights FILE] [--size 96] [--head-epochs 10] [--epochs 2]

`--weights` is a MobileNetV2 backbone weights file; by default a randomly initialised backbone
with BatchNorm statistics of the training images is saved and used (the timing story is the
same; the accuracies are then those of random convolutional features, and it says so).
"""

import argparse
import os
import tempfile
import time

import keras
import tensorflow as tf

from keras_tl import datasets
from keras_tl.core import data as core_data
from keras_tl.core.contract import registry
from keras_tl.core.contract.config import TrainConfig
from keras_tl.image import backbones
from keras_tl.workflow import train


def recipe(weights, splits, size, num_classes, head_epochs, epochs, batch_size, seed):
    """The Keras guide's two phases, as its readers write them."""
    keras.utils.set_random_seed(seed)

    def dataset(split, shuffle):
        images = tf.image.resize(split.items.astype("float32"), (size, size)).numpy()  # float32 on the host
        targets = keras.utils.to_categorical(split.labels, num_classes)
        ds = tf.data.Dataset.from_tensor_slices((images, targets))
        if shuffle:
            ds = ds.shuffle(len(images), seed=seed)
        return ds.batch(batch_size).cache().prefetch(tf.data.AUTOTUNE)

    started = time.perf_counter()  # Phase 1 includes preparing the data, as keras-tl's does.
    train_ds, val_ds = dataset(splits["train"], True), dataset(splits["val"], False)
    base_model = keras.applications.MobileNetV2(weights=None, input_shape=(size, size, 3), include_top=False)
    base_model.load_weights(weights)
    base_model.trainable = False
    inputs = keras.Input(shape=(size, size, 3))
    x = keras.layers.Rescaling(scale=1 / 127.5, offset=-1)(inputs)
    x = base_model(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)

    model.compile(optimizer=keras.optimizers.Adam(), loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(train_ds, epochs=head_epochs, validation_data=val_ds, verbose=2)
    phase1 = time.perf_counter() - started

    base_model.trainable = True
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="categorical_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(train_ds, epochs=head_epochs + epochs, initial_epoch=head_epochs, validation_data=val_ds, verbose=2)
    phase2 = time.perf_counter() - started
    accuracy = model.evaluate(dataset(splits["test"], False), verbose=0)[1]
    return phase1, phase2, accuracy


def random_weights(train_split, size, seed):
    """A randomly initialised MobileNetV2 backbone whose BatchNorm statistics are those of the
    training images (one training-mode pass, momentum 0), saved as a weights file."""
    keras.utils.set_random_seed(seed)
    preprocess, base = backbones.build(registry.get("mobilenet_v2"), "none", size)
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    images = tf.image.resize(train_split.items[:256].astype("float32"), (size, size))
    base(preprocess(images), training=True)
    path = os.path.join(tempfile.mkdtemp(), "random_mobilenet_v2.weights.h5")
    base.save_weights(path)
    print(
        "weights: random MobileNetV2 backbone, BatchNorm statistics from the training images "
        "(no ImageNet offline; pass --weights for real ones)"
    )
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="MobileNetV2 backbone weights file (default: random init, saved)")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", default="runs/bench_recipe")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    source = datasets.load_digits()
    splits = core_data.split_source(source, val_split=0.15, test_split=0.15, seed=args.seed)
    weights = args.weights or random_weights(splits["train"], args.size, args.seed)
    num_classes = len(source.class_names)
    print(
        f"data: digits, {num_classes} classes, train/val/test {len(splits['train'])}/"
        f"{len(splits['val'])}/{len(splits['test'])} at {args.size}px; {args.head_epochs} frozen + "
        f"{args.epochs} unfrozen epochs, batch {args.batch_size}"
    )

    r1, r2, r_acc = recipe(
        weights, splits, args.size, num_classes, args.head_epochs, args.epochs, args.batch_size, args.seed
    )
    config = TrainConfig(
        out=args.out,
        backbone="mobilenet_v2",
        weights=weights,
        image_size=args.size,
        head_epochs=args.head_epochs,
        fine_tune_epochs=args.epochs,
        batch_size=args.batch_size,
        head_lr=1e-3,
        fine_tune_lr=1e-5,
        schedule="constant",
        early_stopping_patience=None,
        balance="none",
        dropout=0.2,
        seed=args.seed,
    )
    result = train(config, source, overwrite=True)  # both sides are timed afresh on every run
    k1, k2 = result.metrics["phase_seconds"]["phase1"], result.metrics["phase_seconds"]["phase2"]
    k_acc = result.metrics["test_accuracy"]

    images = len(splits["train"]) * args.epochs
    print(f"\n{'':10}{'phase 1 s':>11}{'phase 2 img/s':>15}{'test accuracy':>15}")
    print(f"{'recipe':10}{r1:>11.1f}{images / r2:>15.1f}{r_acc:>15.3f}")
    print(f"{'keras-tl':10}{k1:>11.1f}{images / k2:>15.1f}{k_acc:>15.3f}")
    print(f"phase2_throughput_ratio={r2 / k2:.2f}")
    print(f"phase1_speedup={r1 / k1:.2f}")


if __name__ == "__main__":
    main()
