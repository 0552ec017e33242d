"""Run configuration: one dataclass, declared field by field and validated before any work starts.

Each field is declared once (`option(...)`: default, meaning, values); from it come `validate()`, the
CLI's flags and the configuration reference (`reference()`). Checks that need other modules (backbone,
weights, data) are the plug-ins', made by `keras_tl.workflow.checks.check_config` before any work.
Keras-free, so `keras-tl --help` starts at once.
"""

import dataclasses
import importlib
import os
import re
from dataclasses import dataclass

import yaml

from keras_tl.core.contract.choices import (
    AUGMENT_LEVELS,
    AUGMENT_ON,
    BALANCES,
    CACHES,
    DISTRIBUTIONS,
    DOMAIN_ADAPTATIONS,
    FIND,
    MAX_SEED,
    MODALITIES,
    MONITORS,
    OPTIMIZERS,
    POOLINGS,
    PRETRAINED,
    PROBLEMS,
    SCHEDULES,
    STRATEGIES,
    choices,
)
from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.contract.fields import (
    Choice,
    Epochs,
    Flag,
    Integer,
    Mapping,
    Number,
    PositiveIntegers,
    Rate,
    Switch,
    Text,
    Unfreeze,
    option,
)


def with_plugin_fields(cls):
    """Adds each modality plug-in's own fields to `cls` before `@dataclass` makes it: a plug-in declares
    them in its Keras-free `keras_tl.<modality>.config.FIELDS` (`{name: (type, option(...))}`), so the
    core names none of them. A plug-in field that clashes with another is refused at import."""
    for name in MODALITIES:
        declared = getattr(importlib.import_module(f"keras_tl.{name}.config"), "FIELDS", {})
        for field_name, (annotation, field) in declared.items():
            if field_name in cls.__annotations__:
                raise TypeError(f"The {name} plug-in declares config field {field_name!r}, which exists already.")
            cls.__annotations__[field_name] = annotation
            setattr(cls, field_name, field)
    return cls


@dataclass
@with_plugin_fields
class TrainConfig:
    """Everything a training run needs, with its defaults; every field is described in
    `docs/guides/configuration.md` (generated from the declarations below: `reference()`)."""

    data: str | None = option(
        None,
        "What to train on. Images: a folder of class folders, a .csv manifest "
        "(`path,label[,split]`) or `tfds:NAME[:SPLIT]`. Text: a .csv or .jsonl file, a folder of "
        "class folders of .txt files or `tfds:NAME`. Audio: a folder of class folders of audio "
        "files or a .csv manifest. Null: a source passed from Python.",
        Text(optional=True),
        "data",
    )
    modality: str = option(
        "auto", "`image`, `text`, `audio`, or `auto` (the backbone's).", Choice(("auto",) + MODALITIES), "data"
    )
    out: str = option("runs/run", "The run directory to write.", Text(), "data")
    backbone: str = option(
        "mobilenet_v2",
        "A name from `keras-tl backbones`, a KerasHub preset name or handle, or a "
        "local KerasHub preset / Hugging Face checkpoint folder.",
        Text(),
        "model",
    )
    weights: str = option(
        PRETRAINED,
        f"`{PRETRAINED}` (the backbone's own: ImageNet, the preset's, aiSFX's), `none` "
        "(random), or a `.weights.h5` / Keras Applications `.h5` file of the backbone.",
        Text(),
        "model",
    )
    image_size: int | None = option(
        None,
        "Images (and audio on image backbones): the side of the square input; null is the backbone's.",
        Integer(1, optional=True),
        "model",
    )
    problem: str = option(
        "auto",
        "`multiclass`, `binary`, `multilabel`, `multitask` (several heads: `head:class` "
        "labels), or `auto` (from the data).",
        Choice(PROBLEMS),
        "model",
    )
    head_weights: dict = option(
        {},
        "Multi-task: `{head: loss weight}`, the heads to train and the weight of each "
        "one's loss ({}: every head, weight 1).",
        Mapping(Number(0.0, low_open=True)),
        "model",
    )
    pooling: str = option(
        "avg",
        "`avg` or `max` over the feature map, the time axis (audio) or the tokens "
        "(text, padding masked out), or `cls` (text: the first token).",
        Choice(POOLINGS),
        "model",
    )
    dense_units: list = option([], "Hidden Dense + ReLU layers of the head, e.g. [256].", PositiveIntegers(), "model")
    dropout: float = option(0.2, "Dropout before the output layer.", Number(0.0, 1.0), "model")
    head_norm: bool = option(
        False, "Standardize the pooled features with the cached training features' statistics.", Flag(), "model"
    )
    strategy: str = option(
        "two_phase",
        "`two_phase` (frozen backbone, then unfrozen), `feature_extraction` (phase "
        "1 only) or `full` (everything trainable from the start).",
        Choice(STRATEGIES),
        "training",
    )
    head_epochs: int | str = option(
        "auto",
        "Phase 1 epochs: the new head on the frozen backbone. `auto`: about 300 optimizer steps (5 to 150 "
        "epochs: a head on a few labels needs many epochs of one or two steps), early stopping ends it sooner.",
        Epochs(),
        "training",
    )
    fine_tune_epochs: int = option(5, "Phase 2 epochs: the backbone unfrozen by `unfreeze`.", Integer(0), "training")
    unfreeze: str = option(
        "all",
        "What phase 2 unfreezes: `all`, `top:N` (layers), `fraction:F`, `blocks:K` (the "
        "backbone's named blocks) or `from:NAME` (a layer or block).",
        Unfreeze(),
        "training",
    )
    batch_size: int = option(32, "The global batch size.", Integer(1), "training")
    head_lr: float | str = option(
        1e-3,
        f"Phase 1 learning rate, or `{FIND}` (the range test picks it at the start of the run).",
        Rate(),
        "training",
    )
    fine_tune_lr: float | str = option(
        "auto",
        f"Phase 2 learning rate, kept low, or `{FIND}`; `auto`: the modality's (images 1e-5, text 3e-5, audio 1e-4).",
        Rate(auto=True),
        "training",
    )
    layer_lr_decay: float = option(
        1.0,
        "Phase 2: each backbone block below the top trains at this times the rate of the block above (1.0: one rate).",
        Number(0.0, 1.0, low_open=True, high_open=False),
        "training",
    )
    optimizer: str = option(
        "auto", "`adam`, `adamw`, or `auto` (AdamW for text, Adam otherwise).", Choice(OPTIMIZERS), "training"
    )
    weight_decay: float = option(0.01, "AdamW's decoupled weight decay.", Number(0.0, 1.0), "training")
    schedule: str = option(
        "auto",
        "`cosine` (warmup + cosine decay), `linear` (warmup + linear decay), `plateau`, "
        "`constant`, or `auto` (linear for text, cosine otherwise).",
        Choice(SCHEDULES),
        "training",
    )
    warmup_fraction: float = option(
        0.1, "The share of a phase's steps spent warming the rate up.", Number(0.0, 1.0), "training"
    )
    early_stopping_patience: int | None = option(
        3,
        "Stop a phase after this many epochs without a better `monitor`, and at least 40 optimizer "
        "steps' worth (null: never).",
        Integer(1, optional=True),
        "training",
    )
    monitor: str = option(
        "val_loss",
        "The best epoch, whose weights the run keeps and early stopping watches: "
        "`val_loss` (lowest) or `val_accuracy` (highest; prefer it from scratch on few labels).",
        Choice(MONITORS),
        "training",
    )
    balance: str = option(
        "class_weights",
        "Class imbalance: `class_weights` (balanced, counted on the rows the model "
        "trains on), `oversample` (equal class draws) or `none`.",
        Choice(BALANCES),
        "training",
    )
    label_smoothing: float = option(0.0, "Label smoothing of the cross-entropy.", Number(0.0, 1.0), "training")
    target_recall: float | None = option(
        None,
        "Binary: the decision threshold is chosen on the validation split for this recall of "
        "`positive_class` (e.g. 0.95: miss at most 5%); `predict` and exports apply it.",
        Number(0.0, 1.0, True, False, True),
        "training",
    )
    target_precision: float | None = option(
        None, "Binary: as `target_recall`, for this precision.", Number(0.0, 1.0, True, False, True), "training"
    )
    positive_class: str | None = option(
        None, "The class a target is about (null: the second class).", Text(optional=True), "training"
    )
    seed: int = option(
        42, "Seeds the split, the head's initialization, shuffles and augmentation.", Integer(0, MAX_SEED), "training"
    )
    deterministic: bool = option(
        False, "TensorFlow op determinism: bit-identical reruns on one machine (slower).", Flag(), "training"
    )
    compare_scratch: bool = option(
        False,
        "Also train the same architecture from random weights with the same data and epochs, and report both.",
        Flag(),
        "training",
    )
    tensorboard: bool = option(False, "Write TensorBoard logs into the run directory.", Flag(), "training")
    val_split: float = option(
        0.15,
        "The validation share of the data (when it brings no validation split).",
        Number(0.0, 1.0, low_open=True),
        "data",
    )
    test_split: float = option(
        0.15, "The test share of the data (when it brings no test split).", Number(0.0, 1.0, low_open=True), "data"
    )
    labels_per_class: int | None = option(
        None, "Keep at most this many training examples per class (null: all).", Integer(1, optional=True), "data"
    )
    augment: str = option(
        "none",
        "Training-split augmentation: `none`, `light`, `standard` or `strong` (each "
        "modality's presets: images flip, rotate, zoom, ...; audio delays, inverts, adds noise).",
        Choice(AUGMENT_LEVELS),
        "data",
    )
    augment_params: dict = option(
        {}, "Overrides of the augmentation preset's parameters, e.g. {rotation: 0.2}.", Mapping(), "data"
    )
    cache: str = option(
        "memory", "Decoded training data kept in `memory`, on `disk` (run folder) or `none`.", Choice(CACHES), "speed"
    )
    feature_cache: bool = option(
        True, "Train the frozen phase's head on backbone features computed once.", Flag(), "speed"
    )
    augmented_views: int = option(
        0,
        "With augmentation, the augmented copies of the training set whose features are "
        "cached (0: the frozen phase runs on the data).",
        Integer(0),
        "speed",
    )
    augment_on: str = option(
        "data",
        "`data` (augment in tf.data) or `model` (the per-image layers inside the model, on the accelerator).",
        Choice(AUGMENT_ON),
        "speed",
    )
    mixed_precision: bool = option(
        False, "Mixed float16 (GPUs) or bfloat16 (CPUs) compute; outputs stay float32.", Flag(), "speed"
    )
    jit_compile: bool | str = option(
        "auto", "XLA-compile the train step (`auto`: Keras' choice, on for JAX and TensorFlow GPUs).", Switch(), "speed"
    )
    steps_per_execution: int = option(1, "Batches per compiled call.", Integer(1), "speed")
    distribute: str = option(
        "none",
        "`mirrored` (all local GPUs or CPUs), `multi_worker` (from `TF_CONFIG`), `data_parallel` (JAX) or `none`.",
        Choice(DISTRIBUTIONS),
        "speed",
    )
    domain_adaptation: str = option(
        "auto",
        "`prior`, `adabn`, `coral`, `dann`, `none`, or `auto` (`prior` when `target_data` is given, else `none`).",
        Choice(DOMAIN_ADAPTATIONS),
        "domains",
    )
    target_data: str | None = option(
        None, "Unlabelled target-domain data to adapt to, read as `data` is.", Text(optional=True), "domains"
    )
    adaptation_weight: float = option(
        1.0, "CORAL's loss weight, or DANN's largest gradient-reversal scale.", Number(0.0, low_open=True), "domains"
    )

    def validate(self):
        """Checks every field against its declaration, then the fields against each other; raises
        `ConfigError` naming the field, what it takes and what it got. Returns the config."""
        for f in dataclasses.fields(self):
            f.metadata["check"](f.name, getattr(self, f.name))
        if self.weights in ("imagenet", "preset"):
            raise ConfigError(
                f"`weights` is 'pretrained' for every backbone's own pretrained weights (ImageNet, a KerasHub "
                f"preset's, aiSFX's), 'none' or a weights file. Received: weights={self.weights!r}"
            )
        if self.head_weights and self.problem not in ("auto", "multitask"):
            raise ConfigError(
                f"`head_weights` weighs the heads of a multi-task run; `problem` must be 'auto' or "
                f"'multitask'. Received: problem={self.problem!r}"
            )
        for head in self.head_weights:
            if not head.isidentifier():
                raise ConfigError(f"`head_weights` keys are head names (identifiers). Received: {head!r}")
        if self.val_split + self.test_split >= 1:
            raise ConfigError(
                "`val_split + test_split` must leave examples for training (< 1). "
                f"Received: val_split={self.val_split}, test_split={self.test_split}"
            )
        if self.layer_lr_decay != 1.0 and self.strategy != "two_phase":
            raise ConfigError(
                f"`layer_lr_decay` sets the rates of phase 2, which only strategy='two_phase' has. "
                f"Received: layer_lr_decay={self.layer_lr_decay!r} with strategy={self.strategy!r}"
            )
        if self.strategy == "two_phase" and self.head_epochs == 0 and self.fine_tune_epochs == 0:
            raise ConfigError("`head_epochs` and `fine_tune_epochs` are both 0: nothing would be trained.")
        return self

    def to_dict(self):
        return dataclasses.asdict(self)

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(self.to_dict(), f, sort_keys=False)

    @classmethod
    def from_dict(cls, values):
        """Builds a config from a mapping, rejecting unknown keys by name."""
        if not isinstance(values, dict):
            raise ConfigError(f"A config must be a mapping of field names to values. Received: {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"Unknown config keys: {unknown}. Allowed: {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path):
        """Reads a config from a YAML file: a mapping of field names to values.

        Numbers are read as YAML 1.2 reads them (`1e-3` is a number, not the string YAML 1.1 makes
        of it); a malformed file is a `ConfigError` naming the line and column.
        """
        if not os.path.isfile(path):
            raise ConfigError(f"Config file not found: {path!r}. Expected a YAML file of TrainConfig fields.")
        try:
            with open(path, encoding="utf-8") as f:
                values = yaml.load(f, Loader=_Loader) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            mark = getattr(error, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(error, "problem", None) or str(error)
            raise ConfigError(
                f"{path!r} is not valid YAML: {where}{problem}. Expected a mapping of TrainConfig "
                "fields, e.g. `backbone: mobilenet_v2`."
            ) from None
        return cls.from_dict(values)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats: `1e-3`, `1E5` and `.5` are numbers, as people write them."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)

GROUPS = {
    "data": "Data",
    "model": "Model",
    "training": "Training",
    "speed": "Speed and scale",
    "domains": "Domain adaptation",
}


def reference():
    """The configuration reference (`docs/guides/configuration.md`): every field, its flag, default,
    values and meaning, by group; a test checks the committed file is this text."""
    lines = [
        "# Configuration reference",
        "",
        "Every field of `keras_tl.TrainConfig`, the same in Python, YAML (`keras-tl train --config run.yaml`)",
        "and on the command line (the field with dashes: `head_lr` is `--head-lr`; a true/false field is",
        "`--x` / `--no-x`; a mapping is `--x name=value,...`; a list `--x 256,128`). Generated from the",
        "declarations in `keras_tl/core/contract/config.py`.",
        "",
        "A YAML file holds any of them (`keras-tl train --config run.yaml --data photos/`; flags override it):",
        "",
        "```yaml",
        "backbone: efficientnet_lite0",
        "weights: pretrained",
        "image_size: 96",
        "head_epochs: 10",
        "fine_tune_epochs: 3",
        "head_lr: 1e-3",
        "fine_tune_lr: 1e-4",
        "augment: light",
        "augment_params: {rotation: 0.2}",
        "monitor: val_accuracy",
        "```",
        "",
    ]
    for group, title in GROUPS.items():
        lines += [f"## {title}", "", "| field | flag | default | takes | meaning |", "|---|---|---|---|---|"]
        for f in dataclasses.fields(TrainConfig):
            if f.metadata["group"] != group:
                continue
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            lines.append(
                f"| `{f.name}` | `--{f.name.replace('_', '-')}` | `{_shown(default)}` | "
                f"{f.metadata['check'].describe()} | {f.metadata['help']} |"
            )
        lines.append("")
    return "\n".join(lines)


def _shown(value):
    """A default as YAML spells it (`null`, `true`, `[]`, `0.001`)."""
    if value is None or isinstance(value, (bool, dict, list)):
        return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    return str(value)


__all__ = ["TrainConfig", "choices", "reference"]
