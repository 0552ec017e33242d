"""What every whole-run function does first: check the config, load and split the data, resolve "auto".

Nothing here writes a file or trains; `train`, `compare_backbones`, `rank` and `lr_find` all start here.
`check_config` is keras-free, so the CLI answers a usage error before TensorFlow is imported;
`prepare` then does the checks that need the backbone and the data.
"""

import dataclasses
import math
import numbers

from keras_tl.core.contract import modality as modalities
from keras_tl.core.contract import registry
from keras_tl.core.contract.choices import DEFAULT_ADAPTATION, DOMAIN_ADAPTATIONS, EXPORT_FORMATS, QUANTIZATIONS
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.contract.fields import concrete_autos
from keras_tl.core.contract.files import check_own_folder
from keras_tl.core.evaluation import operating_point
from keras_tl.core.train import distribute


def check_config(config, source=None, target=None):
    """Validates what a run asks for before any work or file, without Keras: fields, backbone, weights
    (here, downloadable or installable), data path, domain adaptation (`target`: target-domain data
    from Python). Returns `(modality, spec)`."""
    config.validate()
    distribute.check(config.distribute)
    if source is not None:
        check_source(source)
    operating_point.check_config(config)
    modality = modalities.of(config, source)
    spec = registry.get(config.backbone, modality=modality.name)
    modality.check_config(config, spec, source)
    _check_adaptation(config, modality, target)
    _check_head_norm(config)
    if (
        config.strategy == "two_phase"
        and config.fine_tune_epochs
        and config.layer_lr_decay != 1.0
        and not spec.block_pattern
    ):
        raise ConfigError(
            f"layer_lr_decay needs a backbone with named blocks; {spec.name!r} has no block pattern. "
            f"Use layer_lr_decay=1.0 (one rate) with this backbone. Received: "
            f"layer_lr_decay={config.layer_lr_decay!r}"
        )
    return modality, spec


def splits_of(source, config):
    """`source`'s train/val/test splits as `config` asks (sizes, seed, labels per class)."""
    from keras_tl.core.data import split_source

    return split_source(
        source,
        val_split=config.val_split,
        test_split=config.test_split,
        seed=config.seed,
        labels_per_class=config.labels_per_class,
    )


def check_source(source):
    """A source from Python holds one array of items or a list of strings (file paths, texts), one per
    label: what a run directory can record without pickling (a list of arrays reached `splits.json`
    and failed there, after the run had started)."""
    import numpy as np

    items, labels = getattr(source, "items", None), getattr(source, "labels", None)
    if isinstance(items, np.ndarray) and items.dtype != object:
        odd = None
    elif isinstance(items, (list, tuple)):
        odd = next((type(i).__name__ for i in items if not isinstance(i, str)), None)
    else:
        odd = type(items).__name__
    if odd is not None:
        raise ConfigError(
            "A source's items must be one array (N, ...) or a list of strings (file paths, texts). Received: "
            f"{type(items).__name__} holding {odd}. For images in memory use "
            "keras_tl.image.data.from_arrays(np.stack(images), labels)."
        )
    if labels is None or len(labels) != len(items):
        raise ConfigError(
            f"A source needs one label per item. Received: {len(items)} items and "
            f"{'no' if labels is None else len(labels)} labels."
        )


def _check_head_norm(config):
    """`head_norm` standardizes with the cached training features' own statistics (set once, then
    fixed, as a linear probe's scaler): a run that caches no features would standardize with none."""
    if not config.head_norm:
        return
    uncached = {
        "feature_cache": not config.feature_cache,
        "weights": config.weights == "none",
        "strategy": config.strategy == "full",
        "head_epochs": config.head_epochs == 0,
        "augmented_views": config.augment != "none" and config.augmented_views == 0,
    }
    received = [f"{name}={getattr(config, name)!r}" for name, fails in uncached.items() if fails]
    if received:
        raise ConfigError(
            "`head_norm` standardizes with the cached training features' statistics, so it needs the "
            "frozen phase on cached features: feature_cache=True, pretrained weights, strategy "
            "'two_phase' or 'feature_extraction', head_epochs > 0 and, with augmentation, "
            f"augmented_views >= 1. Received: {', '.join(received)}"
        )


def check_backbone(config, modality, spec):
    """The checks that need the backbone itself, still before any file: its pretrained weights are
    converted (once, before the seeded work) and block or layer names of the unfreeze policy exist."""
    modality.prepare_weights(spec, config.weights)
    if config.strategy == "two_phase" and config.fine_tune_epochs and config.unfreeze.startswith(("blocks:", "from:")):
        import keras

        from keras_tl.core.train.training import unfreeze_start

        # Block and layer names exist only on a built backbone: check them on a random-weight skeleton
        # now rather than after phase 1 has trained. Its layers must not shift the run's layer names.
        unfreeze_start(modality.skeleton(spec, config), config.unfreeze, spec)
        keras.backend.clear_session()


def adaptation_method(config, has_target=None):
    """The domain-adaptation method a config asks for ("none" or one of `DOMAIN_ADAPTATIONS`' methods).

    Args:
        config: TrainConfig.
        has_target: bool. Target data comes from Python (`keras_tl.train(..., target=...)`).
            Defaults to `config.target_data is not None`.
    """
    has_target = config.target_data is not None if has_target is None else has_target
    method = config.domain_adaptation
    if method == "auto":
        return DEFAULT_ADAPTATION if has_target else "none"
    if method != "none" and not has_target:
        raise ConfigError(
            f"domain_adaptation={method!r} needs unlabelled target-domain data: set `target_data` "
            f"(a folder or manifest) or pass `target=` to keras_tl.train. Received: target_data=None"
        )
    if method == "none" and has_target:
        raise ConfigError(
            "`target_data` is given but domain_adaptation='none': nothing would use it. Choose a method "
            f"({', '.join(DOMAIN_ADAPTATIONS[2:])}) or 'auto', or drop target_data."
        )
    return method


def _check_adaptation(config, modality, target):
    method = adaptation_method(config, has_target=target is not None or config.target_data is not None)
    if method == "none":
        return
    if method == "adabn" and not modality.batchnorm:
        raise ConfigError(
            f"domain_adaptation='adabn' re-estimates BatchNorm statistics; {modality.name} backbones "
            f"have none. Use 'prior', 'coral' or 'dann'. Received: "
            f"domain_adaptation={config.domain_adaptation!r}"
        )
    backbone_trains = config.strategy == "full" or (config.strategy == "two_phase" and config.fine_tune_epochs > 0)
    if method in ("coral", "dann") and not backbone_trains:
        raise ConfigError(
            f"domain_adaptation={method!r} aligns the features while the backbone trains (phase 2, or "
            f"strategy='full'); this run never trains it. Received: strategy={config.strategy!r}, "
            f"fine_tune_epochs={config.fine_tune_epochs!r}. Use 'adabn', or train the backbone."
        )
    if target is None:
        _check_target_path(config, modality)
    elif getattr(target, "modality", None) != modality.name:
        raise ConfigError(
            f"`target` must be a keras_tl.core.data.Source of {modality.unit} (modality={modality.name!r}) "
            f"like the training data. Received: {type(target).__name__} "
            f"(modality={getattr(target, 'modality', None)!r})"
        )


def _check_target_path(config, modality):
    target_config = TrainConfig.from_dict({**config.to_dict(), "data": config.target_data})
    modality.check_config(target_config, registry.get(config.backbone, modality=modality.name), None)


def load_target(config, modality, target=None):
    """The target-domain source: `target` (from Python) or `config.target_data` read as `data` is."""
    if target is not None:
        return target
    return modality.load_source(TrainConfig.from_dict({**config.to_dict(), "data": config.target_data}))


def resolve_problem(config, num_classes, multilabel=False, multitask=False):
    """The concrete problem ("multiclass", "binary", "multilabel", "multitask") of a config on data with
    `num_classes`; `multitask`: the data has "head:class" names (`keras_tl.core.models.multitask`)."""
    if multitask and config.problem in ("auto", "multitask"):
        return "multitask"
    if config.problem == "multitask":
        raise ConfigError(
            "problem='multitask' needs data with several heads: 'head:class' class names with "
            "labels (or none) per head, e.g. a manifest with label:<head> columns or "
            "keras_tl.core.data.multitask_labels.labels_from_columns."
        )
    if config.head_weights:
        raise ConfigError(
            f"`tasks` names heads of multi-task data, but the data has one label set. Received: "
            f"tasks={config.head_weights!r}"
        )
    if multilabel:
        if config.problem not in ("auto", "multilabel"):
            raise ConfigError(
                f"The data has several labels per example; problem must be 'auto' or "
                f"'multilabel'. Received: problem={config.problem!r}"
            )
        return "multilabel"
    if config.problem == "multilabel":
        raise ConfigError("problem='multilabel' needs multi-label data (e.g. a manifest with 'a;b' labels).")
    if config.problem == "auto":
        return "binary" if num_classes == 2 else "multiclass"
    if config.problem == "binary" and num_classes != 2:
        raise ConfigError(f"problem='binary' needs exactly 2 classes. Received: {num_classes} classes.")
    return config.problem


def resolve_config(config, modality, spec, problem, target=None, train_size=None):
    """The config with every "auto" made concrete (what config.yaml records); `target`: target-domain
    data from Python; `train_size`: the training split's size (for `head_epochs: auto`)."""
    has_target = target is not None or config.target_data is not None
    steps = -(-train_size // config.batch_size) if train_size else None
    return TrainConfig.from_dict(
        {
            **config.to_dict(),
            "modality": modality.name,
            "problem": problem,
            "domain_adaptation": adaptation_method(config, has_target=has_target),
            "optimizer": modality.default_optimizer if config.optimizer == "auto" else config.optimizer,
            "schedule": modality.default_schedule if config.schedule == "auto" else config.schedule,
            **concrete_autos(config, steps, modality.default_fine_tune_lr),
            **modality.resolve_config(config, spec),
        }
    )


def prepare(config, source=None, target=None):
    """Checks `config`, loads its data and splits it, as `train` does; writes nothing.

    Returns:
        `(modality, spec, source, splits, resolved)`: `resolved` has every "auto" made concrete.
    """
    from keras_tl.core.data import multitask_labels

    modality, spec = check_config(config, source, target)
    check_backbone(config, modality, spec)
    if source is None:
        source = modality.load_source(config)
    source = select_heads(source, config)
    splits = splits_of(source, config)
    problem = resolve_problem(
        config,
        len(source.class_names),
        multilabel=source.labels.ndim == 2,
        multitask=multitask_labels.looks_multitask(source.class_names, source.labels),
    )
    operating_point.check(config, source.class_names, problem)
    operating_point.check_validation(config, source.class_names, splits["val"].labels)
    if problem == "multitask":
        multitask_labels.check_every_head_labelled(source.class_names, splits["val"].labels)
    if config.balance == "oversample" and problem in ("multilabel", "multitask"):
        raise ConfigError(
            f"balance='oversample' draws single-label classes equally often; a {problem} run "
            f"has several labels per example. Use 'class_weights' (per head, in a multi-task run) or "
            f"'none'. Received: balance='oversample'"
        )
    resolved = resolve_config(config, modality, spec, problem, target, train_size=len(splits["train"]))
    return modality, spec, source, splits, resolved


def select_heads(source, config):
    """A multi-task source keeping only the heads `config.head_weights` names (all of them when it names none)."""
    from keras_tl.core.data import multitask_labels

    if not (config.head_weights and multitask_labels.looks_multitask(source.class_names, source.labels)):
        return source
    class_names, labels = multitask_labels.select(source.class_names, source.labels, config.head_weights)
    return dataclasses.replace(source, class_names=class_names, labels=labels)


def check_export_name(name):
    """Returns `name` if it is a safe model (folder) name, else raises `ValueError`."""
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise ConfigError(f"`name` must be letters, digits, '-', '_' or '.'. Received: name={name!r}")
    return name


def check_export(format, quantize, int8_io=False, keep_versions=None):
    """Raises `ConfigError` for an impossible export request, before anything is loaded or written."""
    if format not in EXPORT_FORMATS:
        raise ConfigError(f"`format` must be one of {list(EXPORT_FORMATS)}. Received: format={format!r}")
    if quantize not in QUANTIZATIONS:
        raise ConfigError(f"`quantize` must be one of {list(QUANTIZATIONS)}. Received: quantize={quantize!r}")
    if quantize != "none" and format != "tflite":
        raise ConfigError(f"Quantization applies to TFLite only. Received: format={format!r}, quantize={quantize!r}")
    if int8_io and quantize != "int8":
        raise ConfigError(f"`int8_io` (uint8 input/output) needs quantize='int8'. Received: quantize={quantize!r}")
    if keep_versions is not None and (
        isinstance(keep_versions, bool) or not isinstance(keep_versions, int) or keep_versions < 1
    ):
        raise ConfigError(
            f"`keep_versions` must be an integer >= 1 (the new version is always kept), or None to keep "
            f"every version. Received: keep_versions={keep_versions!r}"
        )


def check_top_k(top_k):
    """Raises `ConfigError` unless `top_k` (labels per item in `predict`) is an integer >= 1."""
    if not isinstance(top_k, numbers.Integral) or isinstance(top_k, bool) or top_k < 1:
        raise ConfigError(f"`top_k` must be an integer >= 1. Received: top_k={top_k!r}")


def check_top(names, top=None):
    """Raises `ConfigError` unless `names` holds 2+ backbones and `top` (if given) is 1..len(names)."""
    if len(names) < 2:
        raise ConfigError(f"`compare` needs at least 2 backbones. Received: {names}")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= len(names)):
        raise ConfigError(f"`top` must be between 1 and {len(names)} (the backbones given). Received: top={top!r}")


def parse_budget(value):
    """Seconds from `600`, `"600"`, `"600s"`, `"10m"` or `"1h"`; a one-line error otherwise."""
    text = str(value).strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(text[-1:], None)
    number = text[:-1] if scale else text
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        seconds = float("nan")
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds < 30:
        raise ConfigError(
            f"`budget` must be a time of at least 30 s: seconds (600) or with a unit (600s, 10m, 1h). "
            f"Received: budget={value!r}"
        )
    return seconds


AUTO_STATE = "auto.json"  # the file that makes a folder an `auto` run's


def check_auto(config, *, budget, target, max_latency_ms, top, backbones, max_trials=30, source=None):
    """Everything `auto` (`keras_tl.workflow.auto_run`) is asked, checked before any work (keras-free:
    the CLI calls it before TensorFlow).

    Returns:
        `(seconds, candidates, modality name)`.
    """
    seconds = parse_budget(budget)
    if target not in EXPORT_FORMATS or target == "keras":
        raise ConfigError(
            f"`target` must be one of {[f for f in EXPORT_FORMATS if f != 'keras']}. Received: target={target!r}"
        )
    if max_latency_ms is not None and (
        isinstance(max_latency_ms, bool) or not isinstance(max_latency_ms, (int, float)) or not max_latency_ms > 0
    ):
        raise ConfigError(f"`max_latency_ms` must be a number > 0. Received: max_latency_ms={max_latency_ms!r}")
    for name, value in (("top", top), ("max_trials", max_trials)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")
    check_own_folder(config.out, AUTO_STATE)
    if config.weights == "none":
        raise ConfigError(
            f"`auto` fine-tunes pretrained backbones (and compares each with its random twin). Received: "
            f"weights={config.weights!r}"
        )
    if config.problem == "multitask":
        raise ConfigError("`auto` searches single-head classifiers. Received: problem='multitask'")
    _check_auto_search(config)
    if target == "onnx":  # Its converter and runtime are an extra: known before any work, not after training.
        import importlib.util

        missing = [m for m in ("tf2onnx", "onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(
                f"target='onnx' needs {', '.join(missing)}: pip install \"keras-tl[onnx]\". Received: target='onnx'"
            )
    name = _modality_name(config, backbones, source)
    candidates = list(dict.fromkeys(backbones or registry.offline(modality=name)))
    if not candidates:
        raise ConfigError(
            f"`auto` found no {name} backbone whose weights are on this machine. Run `keras-tl assets install`, "
            "or name backbones to download (`backbones=[...]`, `--backbones a,b`)."
        )
    for candidate in candidates:  # Every candidate, before any work, as the run in `out`/model it may become.
        check_config(dataclasses.replace(config, backbone=candidate, modality=name, out=f"{config.out}/model"), source)
    return seconds, candidates, name


def _check_auto_search(config):
    """`auto` searches the head on cached features and picks `head_lr` itself: a config that caches none,
    or asks the range test for `head_lr`, is refused before any work."""
    refused = {
        "strategy": config.strategy == "full",
        "head_epochs": config.head_epochs == 0,
        "feature_cache": not config.feature_cache,
        "augmented_views": config.augment != "none" and config.augmented_views == 0,
        "head_lr": config.head_lr == "find",
    }
    received = [f"{name}={getattr(config, name)!r}" for name, fails in refused.items() if fails]
    if received:
        raise ConfigError(
            "`auto` searches the head (head_lr included) on cached backbone features: it needs strategy "
            "'two_phase' or 'feature_extraction', head_epochs > 0, feature_cache=True, with augmentation "
            f"augmented_views >= 1, and head_lr a number (its first trial). Received: {', '.join(received)}"
        )


def _modality_name(config, backbones, source):
    """The modality of the request: the config's, the source's, the backbones', or the data's files."""
    if config.modality != "auto":
        return config.modality
    if source is not None:
        return modalities.source_modality(source)
    if backbones:
        kinds = {registry.get(b).modality for b in backbones}
        if len(kinds) > 1:
            raise ConfigError(f"`auto` compares backbones of one modality. Received: {sorted(kinds)}")
        return kinds.pop()
    return modalities.guess(config.data)
