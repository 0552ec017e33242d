"""An operating point on ELPV: "miss at most 5% of defective cells".

Trains the quickstart's transfer arm (ImageNet EfficientNet-Lite0 at 96 px, 100 labels per class, two
phases) with `target_recall=0.95, positive_class="defective"`, or reads a finished run at `--out`, and
prints the defective class's precision and recall on the validation and test splits at the chosen
threshold and at the top class (0.5), with the recall's sampling error.

    keras-tl assets install && python bench/operating_point.py [--out runs/elpv_recall95] [--seed 0]

Last line: `elpv_test_recall_at_target_095=<x>`.
"""

import argparse

from keras_tl import datasets, workflow
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.contract.errors import RunExistsError
from keras_tl.core.evaluation import operating_point


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/elpv_recall95")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target-recall", type=float, default=0.95)
    args = parser.parse_args()
    config = TrainConfig(
        out=args.out,
        backbone="efficientnet_lite0",
        weights="pretrained",
        image_size=96,
        strategy="two_phase",
        head_epochs=15,
        fine_tune_epochs=5,
        head_lr=1e-3,
        fine_tune_lr=1e-4,
        seed=args.seed,
        batch_size=32,
        early_stopping_patience=None,
        labels_per_class=100,
        target_recall=args.target_recall,
        positive_class="defective",
    )
    try:
        workflow.train(config, datasets.load_elpv())
    except RunExistsError as error:
        if not error.finished:
            raise
    classifier = workflow.load_run(args.out)
    point = classifier.operating_point
    print(f"threshold on p(defective): {point['threshold']:.4f} (chosen on validation for recall {args.target_recall})")
    for split in ("val", "test"):
        data = workflow.load_split(args.out, split)
        probabilities = classifier.predict(data.items)
        for name, threshold in (("top class", 0.5), ("operating point", point["threshold"])):
            figures = operating_point.measure(
                {**point, "threshold": threshold}, data.labels, probabilities, classifier.class_names
            )
            print(
                f"{split:4s} {name:15s} {operating_point.describe(figures)}  "
                f"({figures['positives']} defective of {figures['n']})"
            )
    print(f"elpv_test_recall_at_target_{str(args.target_recall).replace('.', '')}={point['test']['recall']:.4f}")


if __name__ == "__main__":
    main()
