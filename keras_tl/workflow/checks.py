"""What every whole-run function does first: check the config, load and split the data, resolve "auto".

Nothing here writes a file or trains; `train`, `compare_backbones`, `rank` and `lr_find` all start here.
"""

import dataclasses

import keras

from keras_tl.core import distribute, multitask, registry
from keras_tl.core import modality as modalities
from keras_tl.core.config import TrainConfig
from keras_tl.core.data import split_source
from keras_tl.core.training import unfreeze_start


def check_config(config, source=None):
    """Validates everything about a run before any work or file: fields, backbone, weights, unfreeze
    policy, data. Returns `(modality, spec)`."""
    config.validate()
    distribute.check(config.distribute)
    modality = modalities.of(config, source)
    spec = registry.get(config.backbone, modality=modality.name)
    modality.check_config(config, spec, source)
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


def resolve_task(config, num_classes, multilabel=False, multitask=False):
    """The concrete task ("multiclass", "binary", "multilabel", "multitask") of a config on data with
    `num_classes`; `multitask`: the data has "head:class" names (`keras_tl.core.multitask`)."""
    if multitask and config.task in ("auto", "multitask"):
        return "multitask"
    if config.task == "multitask":
        raise ValueError("task='multitask' needs data with several heads: 'head:class' class names with one "
                         "label (or none) per head, e.g. a manifest with label:<head> columns or "
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


def resolve_config(config, modality, spec, task):
    """The config with every "auto" made concrete (what config.yaml records)."""
    return TrainConfig.from_dict({
        **config.to_dict(), "modality": modality.name, "task": task,
        "optimizer": modality.default_optimizer if config.optimizer == "auto" else config.optimizer,
        "schedule": modality.default_schedule if config.schedule == "auto" else config.schedule,
        **modality.resolve_config(config, spec),
    })


def prepare(config, source=None):
    """Checks `config`, loads its data and splits it, as `train` does; writes nothing.

    Returns:
        `(modality, spec, source, splits, resolved)`: `resolved` has every "auto" made concrete.
    """
    modality, spec = check_config(config, source)
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
    return modality, spec, source, splits, resolve_config(config, modality, spec, task)


def select_heads(source, config):
    """A multi-task source keeping only the heads `config.tasks` names (all of them when it names none)."""
    if not (config.tasks and multitask.looks_multitask(source.class_names, source.labels)):
        return source
    class_names, labels = multitask.select(source.class_names, source.labels, config.tasks)
    return dataclasses.replace(source, class_names=class_names, labels=labels)
