"""What every whole-run function does first: check the config, load and split the data, resolve "auto".

Nothing here writes a file or trains; `train`, `compare_backbones`, `rank` and `lr_find` all start here.
"""

import dataclasses

import keras

from keras_tl.core import distribute, multitask, registry
from keras_tl.core import modality as modalities
from keras_tl.core.config import DEFAULT_ADAPTATION, DOMAIN_ADAPTATIONS, TrainConfig
from keras_tl.core.data import split_source
from keras_tl.core.training import unfreeze_start


def check_config(config, source=None, target=None):
    """Validates everything about a run before any work or file: fields, backbone, weights, unfreeze
    policy, data, domain adaptation (`target`: target-domain data from Python). Returns `(modality, spec)`."""
    config.validate()
    distribute.check(config.distribute)
    modality = modalities.of(config, source)
    spec = registry.get(config.backbone, modality=modality.name)
    modality.check_config(config, spec, source)
    _check_adaptation(config, modality, target)
    if config.strategy == "two_phase" and config.epochs and config.layer_lr_decay != 1.0 and not spec.block_pattern:
        raise ValueError(f"layer_lr_decay needs a backbone with named blocks; {spec.name!r} has no block pattern. "
                         f"Use layer_lr_decay=1.0 (one rate) with this backbone. Received: "
                         f"layer_lr_decay={config.layer_lr_decay!r}")
    if config.strategy == "two_phase" and config.epochs and config.unfreeze.startswith(("blocks:", "from:")):
        # Block and layer names exist only on a built backbone: check them on a random-weight skeleton
        # now rather than after phase 1 has trained.
        unfreeze_start(modality.skeleton(spec, config), config.unfreeze, spec)
        keras.backend.clear_session()
    return modality, spec


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
        raise ValueError(f"domain_adaptation={method!r} needs unlabelled target-domain data: set `target_data` "
                         f"(a folder or manifest) or pass `target=` to keras_tl.train. Received: target_data=None")
    if method == "none" and has_target:
        raise ValueError("`target_data` is given but domain_adaptation='none': nothing would use it. Choose a method "
                         f"({', '.join(DOMAIN_ADAPTATIONS[2:])}) or 'auto', or drop target_data.")
    return method


def _check_adaptation(config, modality, target):
    method = adaptation_method(config, has_target=target is not None or config.target_data is not None)
    if method == "none":
        return
    if method == "adabn" and not modality.batchnorm:
        raise ValueError(f"domain_adaptation='adabn' re-estimates BatchNorm statistics; {modality.name} backbones "
                         f"have none. Use 'prior', 'coral' or 'dann'. Received: "
                         f"domain_adaptation={config.domain_adaptation!r}")
    backbone_trains = config.strategy == "full" or (config.strategy == "two_phase" and config.epochs > 0)
    if method in ("coral", "dann") and not backbone_trains:
        raise ValueError(f"domain_adaptation={method!r} aligns the features while the backbone trains (phase 2, or "
                         f"strategy='full'); this run never trains it. Received: strategy={config.strategy!r}, "
                         f"epochs={config.epochs!r}. Use 'adabn', or train the backbone.")
    if target is None:
        _check_target_path(config, modality)
    elif not modality.is_source(target):
        raise ValueError(f"`target` must be a {modality.name} source like the training data. "
                         f"Received: {type(target).__name__}")


def _check_target_path(config, modality):
    target_config = TrainConfig.from_dict({**config.to_dict(), "data": config.target_data})
    modality.check_config(target_config, registry.get(config.backbone, modality=modality.name), None)


def load_target(config, modality, target=None):
    """The target-domain source: `target` (from Python) or `config.target_data` read as `data` is."""
    if target is not None:
        return target
    return modality.load_source(TrainConfig.from_dict({**config.to_dict(), "data": config.target_data}))


def resolve_task(config, num_classes, multilabel=False, multitask=False):
    """The concrete task ("multiclass", "binary", "multilabel", "multitask") of a config on data with
    `num_classes`; `multitask`: the data has "head:class" names (`keras_tl.core.multitask`)."""
    if multitask and config.task in ("auto", "multitask"):
        return "multitask"
    if config.task == "multitask":
        raise ValueError("task='multitask' needs data with several heads: 'head:class' class names with "
                         "labels (or none) per head, e.g. a manifest with label:<head> columns or "
                         "keras_tl.core.multitask.labels_from_columns.")
    if config.tasks:
        raise ValueError(f"`tasks` names heads of multi-task data, but the data has one label set. Received: "
                         f"tasks={config.tasks!r}")
    if multilabel:
        if config.task not in ("auto", "multilabel"):
            raise ValueError(f"The data has several labels per example; task must be 'auto' or "
                             f"'multilabel'. Received: task={config.task!r}")
        return "multilabel"
    if config.task == "multilabel":
        raise ValueError("task='multilabel' needs multi-label data (e.g. a manifest with 'a;b' labels).")
    if config.task == "auto":
        return "binary" if num_classes == 2 else "multiclass"
    if config.task == "binary" and num_classes != 2:
        raise ValueError(f"task='binary' needs exactly 2 classes. Received: {num_classes} classes.")
    return config.task


def resolve_config(config, modality, spec, task, target=None):
    """The config with every "auto" made concrete (what config.yaml records); `target`: target-domain
    data from Python."""
    has_target = target is not None or config.target_data is not None
    return TrainConfig.from_dict({
        **config.to_dict(), "modality": modality.name, "task": task,
        "domain_adaptation": adaptation_method(config, has_target=has_target),
        "optimizer": modality.default_optimizer if config.optimizer == "auto" else config.optimizer,
        "schedule": modality.default_schedule if config.schedule == "auto" else config.schedule,
        **modality.resolve_config(config, spec),
    })


def prepare(config, source=None, target=None):
    """Checks `config`, loads its data and splits it, as `train` does; writes nothing.

    Returns:
        `(modality, spec, source, splits, resolved)`: `resolved` has every "auto" made concrete.
    """
    modality, spec = check_config(config, source, target)
    if source is None:
        source = modality.load_source(config)
    source = select_heads(source, config)
    splits = split_source(source, val_split=config.val_split, test_split=config.test_split, seed=config.seed,
                          labels_per_class=config.labels_per_class)
    task = resolve_task(config, len(source.class_names), multilabel=source.labels.ndim == 2,
                        multitask=multitask.looks_multitask(source.class_names, source.labels))
    if config.class_weight == "oversample" and task in ("multilabel", "multitask"):
        raise ValueError(f"class_weight='oversample' draws single-label classes equally often; a {task} run "
                         f"has several labels per example. Use 'balanced' (per head, in a multi-task run) or "
                         f"'none'. Received: class_weight='oversample'")
    return modality, spec, source, splits, resolve_config(config, modality, spec, task, target)


def select_heads(source, config):
    """A multi-task source keeping only the heads `config.tasks` names (all of them when it names none)."""
    if not (config.tasks and multitask.looks_multitask(source.class_names, source.labels)):
        return source
    class_names, labels = multitask.select(source.class_names, source.labels, config.tasks)
    return dataclasses.replace(source, class_names=class_names, labels=labels)
