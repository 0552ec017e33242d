"""`keras-tl` command line: train, evaluate, predict, backbones, quickstart."""

import argparse
import dataclasses
import json
import os
import sys

# Before TensorFlow is imported: keep its C++ start-up chatter out of the user's terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Flags of `train` that map one-to-one onto TrainConfig fields (flag name = field with dashes).
_TRAIN_FLAGS = {
    "data": (str, "directory of class folders"),
    "out": (str, "run directory to write"),
    "backbone": (str, "backbone name (see `keras-tl backbones`) or KerasHub preset handle"),
    "weights": (str, "imagenet | none | path to a weights file | preset"),
    "image_size": (int, "square input side in pixels (default: the backbone's)"),
    "strategy": (str, "two_phase | feature_extraction | full"),
    "head_epochs": (int, "phase 1 epochs (frozen backbone)"),
    "epochs": (int, "phase 2 epochs (unfrozen backbone)"),
    "unfreeze": (str, "all | top:N | fraction:F | blocks:K | from:NAME"),
    "batch_size": (int, "batch size"),
    "head_lr": (float, "phase 1 learning rate"),
    "fine_tune_lr": (float, "phase 2 learning rate"),
    "schedule": (str, "cosine | plateau | constant"),
    "labels_per_class": (int, "use at most this many training images per class"),
    "augment": (str, "none | light | standard"),
    "task": (str, "auto | multiclass | binary"),
    "pooling": (str, "avg | max"),
    "dropout": (float, "dropout before the output layer"),
    "label_smoothing": (float, "label smoothing"),
    "class_weight": (str, "none | balanced"),
    "seed": (int, "random seed"),
}


def _parser():
    parser = argparse.ArgumentParser(
        prog="keras-tl", description="Transfer learning with Keras 3 and TensorFlow."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="fine-tune a backbone on a folder of class folders")
    train.add_argument("--config", help="YAML file of TrainConfig fields; flags override it")
    for name, (kind, help_text) in _TRAIN_FLAGS.items():
        train.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=help_text)
    train.add_argument("--mixed-precision", dest="mixed_precision", action="store_true", default=None)
    train.add_argument("--tensorboard", action="store_true", default=None)

    evaluate = sub.add_parser("evaluate", help="recompute a run's test metrics from its saved model")
    evaluate.add_argument("run_dir")

    predict = sub.add_parser("predict", help="top-k labels of image files with a run's model")
    predict.add_argument("run_dir")
    predict.add_argument("images", nargs="+")
    predict.add_argument("--top-k", type=int, default=3)

    listing = sub.add_parser("backbones", help="list the registered backbones")
    listing.add_argument("pattern", nargs="?", help="substring or shell wildcard, e.g. 'efficientnet*'")

    quick = sub.add_parser("quickstart", help="offline demo: transfer vs scratch on real digits")
    quick.add_argument("--out", default="runs/quickstart")
    quick.add_argument("--labels-per-class", type=int, default=10)
    return parser


def _train_config(args):
    from keras_tl.config import TrainConfig

    values = {}
    if args.config:
        if not os.path.isfile(args.config):
            raise ValueError(f"Config file not found: {args.config!r}")
        values.update(TrainConfig.from_yaml(args.config).to_dict())
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values.update({k: v for k, v in vars(args).items() if k in fields and v is not None})
    return TrainConfig.from_dict(values)


def main(argv=None):
    args = _parser().parse_args(argv)
    from keras_tl.backbones import WeightsUnavailableError

    try:
        return _run(args)
    except (ValueError, WeightsUnavailableError) as error:
        print(f"keras-tl {args.command}: error: {error}", file=sys.stderr)
        return 2


def _run(args):
    if args.command == "backbones":
        from keras_tl import backbones

        print(f"{'name':24}{'size':>6}{'min':>5}{'features':>10}  preprocessing")
        for name in backbones.names(args.pattern):
            spec = backbones.get(name)
            print(f"{spec.name:24}{spec.default_size:>6}{spec.min_size:>5}{spec.feature_dim:>10}"
                  f"  {spec.preprocessing}")
        return 0
    if args.command == "train":
        from keras_tl import workflow

        config = _train_config(args)
        result = workflow.train(config)
        print(f"run directory: {result.run_dir}  test_accuracy={result.metrics['test_accuracy']:.4f}"
              f"  macro_f1={result.metrics['macro_f1']:.4f}")
        return 0
    if args.command == "evaluate":
        from keras_tl import workflow
        from keras_tl.evaluate import format_metrics

        metrics = workflow.evaluate_run(args.run_dir)
        print(format_metrics(metrics))
        return 0
    if args.command == "predict":
        from keras_tl import workflow

        for path, top in zip(args.images, workflow.predict_files(args.run_dir, args.images, args.top_k)):
            print(json.dumps({"image": path, "top_k": [{"label": l, "probability": round(p, 4)}
                                                        for l, p in top]}))
        return 0
    if args.command == "quickstart":
        from keras_tl import quickstart

        quickstart.run(args.out, labels_per_class=args.labels_per_class)
        return 0
    raise AssertionError(args.command)  # argparse only lets known commands through.


if __name__ == "__main__":
    sys.exit(main())
