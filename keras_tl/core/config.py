"""Run configuration: one dataclass, validated before any work starts.

Every default lives here, once, as a dataclass field. The CLI, YAML files and the Python API all
build a `TrainConfig`; `validate()` checks ranges and choices and names the bad value and what is
allowed. Checks that need other modules (is the backbone known, is the image size big enough for
it, does the data exist) are made by `keras_tl.workflow.check_config`, still before any work.

Every choice list lives here once and feeds validation, the CLI's `--help` and its error messages.
Keras-free, so `keras-tl --help` starts in well under a second.
"""

import dataclasses
import math
import re
from dataclasses import dataclass, field

import yaml
from keras_tl.core.errors import ConfigError

STRATEGIES = ("two_phase", "feature_extraction", "full")
TASKS = ("auto", "multiclass", "binary", "multilabel", "multitask")
POOLINGS = ("avg", "max", "cls")
SCHEDULES = ("auto", "cosine", "linear", "plateau", "constant")
OPTIMIZERS = ("auto", "adam", "adamw")
# The one registration line of a modality: each name is a package `keras_tl.<name>` with a
# `backbones` module (its registry entries) and a `modality` module (its plug-in object).
MODALITIES = ("image", "text", "audio")
MONITORS = ("val_loss", "val_accuracy")  # what "best epoch" means (weights kept, early stopping)
CLASS_WEIGHTS = ("none", "balanced", "oversample")
CACHES = ("memory", "disk", "none")
FIND = "find"  # head_lr / fine_tune_lr: chosen by the learning-rate range test at the start of a run
AUGMENT_ON = ("data", "model")
DISTRIBUTIONS = ("none", "mirrored", "multi_worker", "data_parallel")
EXPORT_FORMATS = ("keras", "saved_model", "tflite")
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
UNFREEZE_POLICIES = ("all", "top:N", "fraction:F", "blocks:K", "from:NAME")
MAX_SEED = 2**32 - 1
AUGMENT_LEVELS = ("none", "light", "standard", "strong")  # Each modality's presets fill in what each means.
DOMAIN_ADAPTATIONS = ("auto", "none", "adabn", "coral", "dann", "prior")  # keras_tl.core.adaptation
DEFAULT_ADAPTATION = "prior"  # what "auto" means when target data is given (bench/domain_adaptation.py)


def choices(values):
    """`a | b | c`: how `--help` and messages show a choice list."""
    return " | ".join(values)


@dataclass
class TrainConfig:
    """Everything a training run needs, with its defaults.

    Args:
        data: str. Images: a directory of class folders, a CSV manifest (`path,label[,split]`;
            labels joined by ";" for multi-label) or "tfds:NAME[:SPLIT]". Text: a `.csv` or
            `.jsonl` file (columns `text_column`, `label_column`), a directory of class folders of
            `.txt` files, or "tfds:NAME[:SPLIT]". Defaults to None (pass a source from Python).
        modality: str. "image", "text" or "auto" (text when `backbone` is a text encoder:
            `keras-tl backbones --text`). Defaults to "auto".
        backbone: str. A name from `keras-tl backbones` (images) or `keras-tl backbones --text`
            (text encoders, KerasHub text presets, local Hugging Face or KerasHub directories),
            or a KerasHub image preset handle. Defaults to "mobilenet_v2".
        weights: str. "imagenet", "none", a local weights file, or (KerasHub) "preset". For text
            encoders "imagenet" and "preset" both mean the preset's pretrained weights.
            Defaults to "imagenet".
        task: str. "auto" (from the data), "multiclass", "binary", "multilabel" or "multitask"
            (several heads: "head:class" class names, e.g. a manifest with `label:<head>` columns;
            `keras_tl.core.multitask`). Defaults to "auto".
        tasks: dict. Multi-task: `{head: loss weight}`, the heads to train (all when empty) and
            the weight of each head's masked cross-entropy. Defaults to {} (every head, weight 1).
        pooling: str. "avg" or "max" over the feature map (images) or the tokens (text, padding
            masked out), or "cls" (text: the first token). Defaults to "avg".
        sequence_length: int. Text: tokens per example after the preprocessor's truncation and
            padding. Defaults to 128.
        text_column, label_column: str. Text: the CSV columns / JSONL keys. Defaults to "text"
            and "label".
        clip_seconds: float. Audio: the length of one model window; longer files are cut into
            half-overlapping windows and their predictions averaged. None means 1 s.
        optimizer: str. "adam", "adamw" (decoupled weight decay `weight_decay`) or "auto": AdamW
            for text encoders, Adam for images. Defaults to "auto".
        schedule: str. "cosine" (warmup + cosine decay), "linear" (warmup + linear decay to 0,
            as BERT was fine-tuned), "plateau", "constant" or "auto": linear for text, cosine for
            images. Defaults to "auto".
        image_size: int. Side of the square model input; None means the backbone's default.
        strategy: str. "two_phase", "feature_extraction" (phase 1 only) or "full"
            (everything trainable from the start). Defaults to "two_phase".
        head_epochs: int. Phase 1 epochs (frozen backbone). Defaults to 5.
        epochs: int. Phase 2 epochs (unfrozen backbone). Defaults to 5.
        unfreeze: str. Phase 2 policy: "all", "top:N" (layers), "fraction:F",
            "blocks:K" or "from:NAME" (a layer name or block prefix). Defaults to "all".
        head_lr: float or "find". Phase 1 learning rate; "find" runs the range test
            (`keras_tl.lr_find`) at the start of the run and uses its suggestion (recorded in the
            run directory's `lr_find.json`). Defaults to 1e-3.
        fine_tune_lr: float or "find". Phase 2 learning rate, kept low; "find": as for `head_lr`,
            after a head-training pass. Defaults to 1e-5.
        layer_lr_decay: float in (0, 1]. Discriminative rates in phase 2: the top backbone block
            trains at `fine_tune_lr`, each block below at `layer_lr_decay` times the rate of the
            block above it (the head at `fine_tune_lr`). 1.0 means one rate. Defaults to 1.0.
        augment: str. "none", "light", "standard" or "strong". Images: flips, rotation, zoom, ...
            ("strong" adds RandAugment and MixUp; `AUGMENT_PRESETS`). Audio: gain, onset delay,
            polarity and background noise on the waveform (`AUDIO_AUGMENT_PRESETS`). Training split
            only; `augment_params` overrides single parameters of the preset.
        early_stopping_patience: int or None. Stop a phase after this many epochs without a better
            `monitor` value (the best epoch's weights are kept either way). None: no early stopping.
            Defaults to 3.
        monitor: str. What the best epoch is, whose weights the run keeps (over all phases) and
            early stopping watches: "val_loss" (lowest) or "val_accuracy" (highest; ties: lower
            loss). Prefer accuracy for a from-scratch network on few labels, whose near-uniform
            first epochs have the lowest loss. Defaults to "val_loss".
        class_weight: str. "balanced" class weights, "oversample" (equal class draws in tf.data)
            or "none". Defaults to "balanced".
        cache: str. Decoded images cached in "memory", on "disk" (in the run directory) or "none".
        compare_scratch: bool. Also train the same architecture from random weights with the same
            data and epoch budget, and report both. Defaults to False.
        deterministic: bool. Run TensorFlow ops deterministically
            (`tf.config.experimental.enable_op_determinism`; slower, for the process's lifetime).
            Defaults to False.
        feature_cache: bool. In the frozen phase of a pretrained backbone, compute the backbone's
            features once and train the head on them (much faster; the same head). Defaults to True.
        augmented_views: int. With augmentation on, the number of augmented copies of the training
            set whose features are cached; 0 runs the frozen phase on images. Defaults to 0.
        augment_on: str. "data" (tf.data, on the CPU) or "model" (the per-image augmentation
            layers run inside the model, on the accelerator; inactive at inference). Defaults to "data".
        jit_compile: bool or "auto". XLA-compile the train step. "auto" is Keras' choice: on
            for JAX and for TensorFlow on GPUs, off for TensorFlow on CPUs. Defaults to "auto".
        steps_per_execution: int. Batches per compiled call (fewer host round trips). Defaults to 1.
        domain_adaptation: str. "adabn", "coral", "dann", "prior" (`keras_tl.core.adaptation`), "none", "auto"
            (DEFAULT_ADAPTATION with target data). `target_data`: unlabelled data read as `data` is.
        adaptation_weight: float > 0. CORAL's loss weight, or DANN's largest reversal scale.
        distribute: str. "none", "mirrored" (all local GPUs, `tf.distribute.MirroredStrategy`),
            "multi_worker" (`MultiWorkerMirroredStrategy`, from `TF_CONFIG`) or "data_parallel"
            (JAX backend: `keras.distribution.DataParallel`). Defaults to "none".
    """

    data: str | None = None
    modality: str = "auto"
    out: str = "runs/run"
    backbone: str = "mobilenet_v2"
    weights: str = "imagenet"
    image_size: int | None = None
    task: str = "auto"
    tasks: dict = field(default_factory=dict)
    # head
    pooling: str = "avg"
    dense_units: list[int] = field(default_factory=list)
    dropout: float = 0.2
    # text
    sequence_length: int = 128
    text_column: str = "text"
    label_column: str = "label"
    # audio
    clip_seconds: float | None = None
    # training
    strategy: str = "two_phase"
    head_epochs: int = 5
    epochs: int = 5
    unfreeze: str = "all"
    batch_size: int = 32
    head_lr: float | str = 1e-3
    fine_tune_lr: float | str = 1e-5
    layer_lr_decay: float = 1.0
    optimizer: str = "auto"
    weight_decay: float = 0.01
    schedule: str = "auto"
    warmup_fraction: float = 0.1
    early_stopping_patience: int | None = 3
    monitor: str = "val_loss"
    class_weight: str = "balanced"
    label_smoothing: float = 0.0
    seed: int = 42
    mixed_precision: bool = False
    tensorboard: bool = False
    compare_scratch: bool = False
    deterministic: bool = False
    # data
    val_split: float = 0.15
    test_split: float = 0.15
    labels_per_class: int | None = None
    augment: str = "none"
    augment_params: dict = field(default_factory=dict)
    cache: str = "memory"
    # speed and scale
    feature_cache: bool = True
    augmented_views: int = 0
    augment_on: str = "data"
    jit_compile: bool | str = "auto"
    steps_per_execution: int = 1
    distribute: str = "none"
    # domain adaptation
    domain_adaptation: str = "auto"
    target_data: str | None = None
    adaptation_weight: float = 1.0

    def validate(self):
        """Checks types, ranges and choices; raises `ValueError` naming the bad field."""
        _choice("strategy", self.strategy, STRATEGIES)
        _choice("task", self.task, TASKS)
        _choice("pooling", self.pooling, POOLINGS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("modality", self.modality, ("auto",) + MODALITIES)
        _int_at_least("sequence_length", self.sequence_length, 8)
        for name in ("text_column", "label_column"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"`{name}` must be a non-empty string. Received: {name}={getattr(self, name)!r}")
        _choice("monitor", self.monitor, MONITORS)
        _choice("class_weight", self.class_weight, CLASS_WEIGHTS)
        _choice("cache", self.cache, CACHES)
        _choice("augment_on", self.augment_on, AUGMENT_ON)
        _choice("distribute", self.distribute, DISTRIBUTIONS)
        _choice("domain_adaptation", self.domain_adaptation, DOMAIN_ADAPTATIONS)
        if self.target_data is not None and (not isinstance(self.target_data, str) or not self.target_data):
            raise ConfigError(f"`target_data` must be a path (as `data`). Received: target_data={self.target_data!r}")
        if (isinstance(weight := self.adaptation_weight, bool) or not isinstance(weight, (int, float))
                or not math.isfinite(weight) or weight <= 0):
            raise ConfigError(f"`adaptation_weight` must be a positive number. Received: {self.adaptation_weight!r}")
        if self.jit_compile not in (True, False, "auto"):
            raise ConfigError(f"`jit_compile` must be true, false or 'auto'. Received: jit_compile={self.jit_compile!r}")
        for name in ("feature_cache", "mixed_precision", "compare_scratch", "tensorboard", "deterministic"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"`{name}` must be true or false. Received: {name}={getattr(self, name)!r}")
        _int_at_least("augmented_views", self.augmented_views, 0)
        _int_at_least("steps_per_execution", self.steps_per_execution, 1)
        if not isinstance(self.augment_params, dict):
            raise ConfigError(f"`augment_params` must be a mapping. Received: {self.augment_params!r}")
        _check_tasks(self.tasks, self.task)
        _choice("augment", self.augment, AUGMENT_LEVELS)  # Each modality checks the parameters (`check_config`).
        for name in ("head_epochs", "epochs"):
            _int_at_least(name, getattr(self, name), 0)
        _int_at_least("batch_size", self.batch_size, 1)
        _int_at_least("seed", self.seed, 0)
        if self.seed > MAX_SEED:
            raise ConfigError(f"`seed` must be at most {MAX_SEED} (2**32 - 1, what NumPy and TensorFlow seed with). "
                              f"Received: seed={self.seed}")
        if self.image_size is not None:
            _int_at_least("image_size", self.image_size, 1)
        if self.clip_seconds is not None and (not isinstance(self.clip_seconds, (int, float))
                                              or isinstance(self.clip_seconds, bool) or not self.clip_seconds > 0):
            raise ConfigError(f"`clip_seconds` must be a positive number of seconds (or null: the backbone's 1 s). "
                             f"Received: clip_seconds={self.clip_seconds!r}")
        if self.labels_per_class is not None:
            _int_at_least("labels_per_class", self.labels_per_class, 1)
        if self.early_stopping_patience is not None:
            _int_at_least("early_stopping_patience", self.early_stopping_patience, 1)
        for name in ("head_lr", "fine_tune_lr"):
            value = getattr(self, name)
            if value != FIND and (not isinstance(value, (int, float)) or isinstance(value, bool)
                                  or not math.isfinite(value) or value <= 0):
                raise ConfigError(f"`{name}` must be a finite positive number or '{FIND}' (the learning-rate range test "
                                 f"picks it). Received: {name}={value!r}")
        decay = self.layer_lr_decay
        if not isinstance(decay, (int, float)) or isinstance(decay, bool) or not 0 < decay <= 1:
            raise ConfigError(f"`layer_lr_decay` must be a number in (0, 1] (1.0: one rate for every block). "
                             f"Received: layer_lr_decay={decay!r}")
        if decay != 1.0 and self.strategy != "two_phase":
            raise ConfigError(f"`layer_lr_decay` sets the rates of phase 2, which only strategy='two_phase' has. "
                             f"Received: layer_lr_decay={decay!r} with strategy={self.strategy!r}")
        for name, upper in (("dropout", 1.0), ("label_smoothing", 1.0), ("warmup_fraction", 1.0),
                            ("weight_decay", 1.0)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value < upper:
                raise ConfigError(
                    f"`{name}` must be a number in [0, {upper}). Received: {name}={value!r}"
                )
        for name in ("val_split", "test_split"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ConfigError(f"`{name}` must be in (0, 1). Received: {name}={value!r}")
        if self.val_split + self.test_split >= 1:
            raise ConfigError(
                "`val_split + test_split` must leave images for training (< 1). "
                f"Received: val_split={self.val_split}, test_split={self.test_split}"
            )
        if not isinstance(self.dense_units, (list, tuple)) or not all(
            isinstance(u, int) and u > 0 for u in self.dense_units
        ):
            raise ConfigError(
                f"`dense_units` must be a list of positive integers. Received: {self.dense_units!r}"
            )
        parse_unfreeze(self.unfreeze)
        if self.strategy == "two_phase" and self.head_epochs == 0 and self.epochs == 0:
            raise ConfigError("`head_epochs` and `epochs` are both 0: nothing would be trained.")
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
            raise ConfigError(
                f"A config must be a mapping of field names to values. Received: {type(values).__name__}"
            )
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
        import os

        if not os.path.isfile(path):
            raise ConfigError(f"Config file not found: {path!r}. Expected a YAML file of TrainConfig fields.")
        try:
            with open(path, encoding="utf-8") as f:
                values = yaml.load(f, Loader=_Loader) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            mark = getattr(error, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(error, "problem", None) or str(error)
            raise ConfigError(f"{path!r} is not valid YAML: {where}{problem}. Expected a mapping of TrainConfig "
                              "fields, e.g. `backbone: mobilenet_v2`.") from None
        return cls.from_dict(values)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats: `1e-3`, `1E5` and `.5` are numbers, as people write them."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def augment_preset(presets, name, overrides, what):
    """Preset `name` of a modality's augmentation `presets` with `overrides` merged in; an unknown level or
    parameter is a `ConfigError` naming the allowed ones (`what`: "image augmentation", ...)."""
    if name not in presets:
        raise ConfigError(f"`augment` must be one of {list(presets)}. Received: augment={name!r}")
    unknown = sorted(set(overrides or {}) - set(presets["none"]))
    if unknown:
        raise ConfigError(f"Unknown {what} parameters {unknown} in `augment_params`. Allowed: {sorted(presets['none'])}")
    return {**presets[name], **(overrides or {})}


def _check_tasks(tasks, task):
    """`tasks`: `{head: loss weight}` of a multi-task run (the heads to train; {} means every head)."""
    if not isinstance(tasks, dict):
        raise ConfigError(f"`tasks` must be a mapping of head name to loss weight, e.g. {{grade: 1.0, cell_type: 0.5}}. "
                         f"Received: tasks={tasks!r}")
    for name, weight in tasks.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"`tasks` keys are head names (identifiers). Received: {name!r}")
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not weight > 0:
            raise ConfigError(f"`tasks` values are positive loss weights. Received: tasks[{name!r}]={weight!r}")
    if tasks and task not in ("auto", "multitask"):
        raise ConfigError(f"`tasks` names the heads of a multi-task run; task must be 'auto' or 'multitask'. "
                         f"Received: task={task!r}")


def parse_unfreeze(policy):
    """Parses an unfreeze policy string into `(kind, value)`.

    Args:
        policy: str. "all", "top:N", "fraction:F" (0 < F <= 1), "blocks:K" or "from:NAME".

    Returns:
        A tuple `(kind, value)`, e.g. `("top", 20)` or `("all", None)`.

    Example:
    >>> keras_tl.core.config.parse_unfreeze("fraction:0.25")
    ('fraction', 0.25)
    """
    allowed = '"all", "top:N", "fraction:F", "blocks:K" or "from:LAYER_OR_BLOCK"'
    if not isinstance(policy, str):
        raise ConfigError(f"`unfreeze` must be one of {allowed}. Received: unfreeze={policy!r}")
    if policy == "all":
        return ("all", None)
    kind, sep, value = policy.partition(":")
    if not sep or not value:
        raise ConfigError(f"`unfreeze` must be one of {allowed}. Received: unfreeze={policy!r}")
    try:
        if kind in ("top", "blocks", "fraction"):
            number = float(value) if kind == "fraction" else int(value)
            if not (0 < number <= 1 if kind == "fraction" else number >= 1):
                raise ValueError
            return (kind, number)
    except ValueError:
        raise ConfigError(
            f"`unfreeze` {kind}: needs a positive {'fraction <= 1' if kind == 'fraction' else 'integer'}. "
            f"Received: unfreeze={policy!r}"
        ) from None
    if kind == "from":
        return (kind, value)
    raise ConfigError(f"`unfreeze` must be one of {allowed}. Received: unfreeze={policy!r}")


def _choice(name, value, allowed):
    if value not in allowed:
        raise ConfigError(f"`{name}` must be one of {list(allowed)}. Received: {name}={value!r}")


def _int_at_least(name, value, minimum):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
