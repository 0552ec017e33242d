"""`build_classifier`: a classifier on any backbone, by name, for any modality (the Python entry point
of the model side, without data or a run)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from keras_tl.core.contract import modality as modalities
from keras_tl.core.contract import registry
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.data import multitask_labels
from keras_tl.core.utils import quiet

if TYPE_CHECKING:
    from keras_tl.core.models.classifier import Classifier


@quiet.tensorflow_started
def build_classifier(
    backbone: str, num_classes: int, *, class_names: Sequence[str] | None = None, **fields: Any
) -> Classifier:
    """A `Classifier` (model + what feeds it raw items) on `backbone`, as `keras_tl.train` builds it.

    Args:
        backbone: str. A name from `keras-tl backbones`, a KerasHub preset name or handle, or a
            local preset folder.
        num_classes: int. Classes of the output (2 with `problem="binary"`: one sigmoid).
        class_names: list of str. Defaults to "0", "1", ... (multi-task: "head:class" names).
        **fields: any `keras_tl.TrainConfig` field that shapes the model: `weights` ("pretrained" by
            default, "none", or a weights file), `image_size`, `sequence_length`, `clip_seconds`,
            `pooling`, `dense_units`, `dropout`, `problem`, `augment` with `augment_on="model"`, ...

    Returns:
        A `keras_tl.Classifier`: `.model` (a `keras.Model` taking what the modality's pipeline gives),
        `.preprocessor` (text: the tokenizer), `.class_names`, `.predict(items)` on raw items.

    Example:
    >>> classifier = keras_tl.build_classifier("efficientnet_lite0", num_classes=2, image_size=96)
    >>> classifier.model.count_params()
    3414658
    """
    from keras_tl.workflow.checks import resolve_config

    if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool) or num_classes < 2:
        raise ConfigError(f"`num_classes` must be an integer >= 2. Received: num_classes={num_classes!r}")
    num_classes = int(num_classes)
    class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ConfigError(f"`class_names` must name the {num_classes} classes. Received: {len(class_names)} names")
    config = TrainConfig.from_dict({**fields, "backbone": backbone}).validate()
    modality = modalities.of(config)
    spec = registry.get(config.backbone, modality=modality.name)
    modality.prepare_weights(spec, config.weights)
    problem = config.problem
    if problem == "auto":  # As `train` resolves it: "head:class" names of 2+ heads make a multi-task model.
        problem = (
            "multitask"
            if multitask_labels.are_head_names(class_names)
            else "binary"
            if num_classes == 2
            else "multiclass"
        )
    resolved = resolve_config(config, modality, spec, problem)
    from keras_tl.core.models.classifier import Classifier

    return Classifier.build(modality, spec, resolved, num_classes, class_names)
