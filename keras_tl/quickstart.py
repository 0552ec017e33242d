"""The offline quickstart: real transfer on real images that scikit-learn ships.

1. Pretrain a small Keras Applications backbone from scratch on a source task (digits 0-4).
2. Save its backbone weights: these are the "pretrained weights" of the story.
3. Fine-tune them in two phases on a target task (digits 5-9) with a few labels per class.
4. Train the same architecture from random weights on the same labels and budget.
5. Print transfer vs scratch accuracy on the held-out test split.

Everything goes through the public API a user calls: `TrainConfig`, `train`,
`save_backbone_weights`.
"""

import os
import time

from keras_tl import datasets
from keras_tl.config import TrainConfig
from keras_tl.workflow import save_backbone_weights, train

SOURCE_DIGITS = [0, 1, 2, 3, 4]
TARGET_DIGITS = [5, 6, 7, 8, 9]


def run(out="runs/quickstart", *, labels_per_class=10, backbone="mobilenet_v2", image_size=48,
        source_epochs=15, head_epochs=15, epochs=10, seed=0):
    """Runs the quickstart and returns `{"transfer": metrics, "scratch": metrics, "seconds": s}`.

    Args:
        out: str. Parent folder of the three run directories (source, transfer, scratch).
        labels_per_class: int. Training labels per target class. Defaults to 10.
        backbone: str. A small Keras Applications backbone. Defaults to "mobilenet_v2".
        image_size: int. Defaults to 48 (the digits are 8x8 scans, upsampled; at 48px the
            backbone keeps a 2x2 feature map).
        source_epochs, head_epochs, epochs: int. The epoch budgets; scratch gets
            `head_epochs + epochs`, the same as transfer's two phases together.
        seed: int.
    """
    started = time.perf_counter()
    common = dict(backbone=backbone, image_size=image_size, seed=seed, batch_size=32,
                  early_stopping_patience=None, dropout=0.2, class_weight="none")

    print("== 1/3 source task: digits 0-4, backbone trained from scratch ==")
    source = train(
        TrainConfig(out=os.path.join(out, "source"), weights="none", strategy="full",
                    head_epochs=source_epochs, epochs=0, head_lr=2e-3, **common),
        datasets.load_digits(SOURCE_DIGITS),
    )
    weights = save_backbone_weights(source.model, os.path.join(out, "source_backbone.weights.h5"))

    target = datasets.load_digits(TARGET_DIGITS)
    print(f"== 2/3 target task: digits 5-9, {labels_per_class} labels per class, transfer ==")
    transfer = train(
        TrainConfig(out=os.path.join(out, "transfer"), weights=weights, strategy="two_phase",
                    head_epochs=head_epochs, epochs=epochs, head_lr=1e-2, fine_tune_lr=1e-4,
                    labels_per_class=labels_per_class, **common),
        target,
    )
    print("== 3/3 same architecture, same labels and epochs, from scratch ==")
    scratch = train(
        TrainConfig(out=os.path.join(out, "scratch"), weights="none", strategy="full",
                    head_epochs=head_epochs, epochs=epochs, head_lr=2e-3,
                    labels_per_class=labels_per_class, **common),
        target,
    )
    seconds = time.perf_counter() - started
    t, s = transfer.metrics, scratch.metrics
    print("\n== keras-tl quickstart: digits 0-4 -> digits 5-9 ==")
    print(f"backbone {backbone} at {image_size}px; {labels_per_class} training labels per target class; "
          f"test split of {t['num_examples']} images")
    print(f"{'':10}{'accuracy':>10}{'macro F1':>10}")
    print(f"{'transfer':10}{t['test_accuracy']:>10.3f}{t['macro_f1']:>10.3f}")
    print(f"{'scratch':10}{s['test_accuracy']:>10.3f}{s['macro_f1']:>10.3f}")
    print(f"transfer - scratch: {100 * (t['test_accuracy'] - s['test_accuracy']):+.1f} points")
    print(f"total time {seconds:.0f} s; run directories under {out}/")
    return {"transfer": t, "scratch": s, "seconds": seconds}
