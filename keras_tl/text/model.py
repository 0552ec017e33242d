"""The text transfer model: token ids -> encoder (inference mode) -> pooled tokens -> new head.

The model takes the preprocessor's token dict (`token_ids`, `padding_mask`, and `segment_ids`
where the encoder uses them); the preprocessor itself runs in tf.data for training and in the
exported SavedModel's graph for serving (`keras_tl.text.modality`), so a served model takes raw
strings. As for images, the layer named "backbone" is the encoder, the pooled features come out
of the layer named "head_pool" (so the frozen phase can cache them: `keras_tl.core.train.features`), and the
layer named "predictions" is the output (a multi-task model: one "predictions_<head>" layer per head).
"""

import keras
import tensorflow as tf

from keras_tl.core.contract import registry
from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.models.heads import POOL_LAYER, HeadSpec, backbone_layer, is_pretrained
from keras_tl.core.utils import quiet
from keras_tl.text import backbones
from keras_tl.text.layers import TokenPooling


@quiet.tensorflow_started
def build_text_model(
    backbone,
    *,
    num_classes=None,
    head=None,
    weights="pretrained",
    sequence_length=128,
    pooling="avg",
    **head_options,
):
    """Builds a text classifier on a pretrained encoder; returns `(model, preprocessor)`.

    With pretrained weights the encoder runs in inference mode (`keras_tl.core.models.layers.InferenceMode`),
    frozen or not (`keras_tl.core.models.heads.backbone_layer`): its dropout stays off, as the backbone's BatchNorm does for images, and the
    frozen phase's features are the same every epoch (which is what makes caching them exact).

    Args:
        backbone: str or BackboneSpec. See `keras-tl backbones --text`.
        num_classes: int.
        head: HeadSpec. The whole head instead of `num_classes` and `**head_options`.
        weights: str. "pretrained" (the preset's) or "none" (random initialization).
        sequence_length: int. Tokens per example. Defaults to 128.
        pooling: str. "avg" (masked mean over tokens), "max" or "cls" (first token).
        **head_options: the head's `problem`, `dense_units`, `dropout` (0.1), `class_names`,
            `head_kinds` (`keras_tl.core.models.heads.HeadSpec`).

    Returns:
        `(model, preprocessor)`: the `keras.Model` (token dict -> probabilities) and the
        preset's `keras_hub.models.TextClassifierPreprocessor` (strings -> token dict).

    Example:
    >>> model, preprocessor = keras_tl.text.model.build_text_model("minilm_l6", num_classes=4)
    >>> model.predict(preprocessor(["a bird in the hand"]))
    """
    spec = registry.get(backbone, modality="text") if isinstance(backbone, str) else backbone
    new_head = HeadSpec.of(head, num_classes, {"dropout": 0.1, **head_options} if head is None else head_options)
    encoder, preprocessor = backbones.load(spec, weights=weights, sequence_length=sequence_length)
    keys = sorted(preprocessor(tf.constant(["x"])).keys())
    inputs = {k: keras.Input((sequence_length,), dtype="int32", name=k) for k in keys}
    wanted = encoder.input if isinstance(encoder.input, dict) else {"token_ids": encoder.input}
    missing = sorted(set(wanted) - set(inputs))
    if missing:
        raise ConfigError(f"The preprocessor of {spec.name!r} does not produce {missing}, which the encoder needs.")
    encoder_inputs = {k: inputs[k] for k in wanted}
    if isinstance(encoder.output, dict):
        # BERT-style encoders also output a pooled [CLS] vector through their own Dense pooler;
        # keras-tl pools the token outputs itself, so the encoder is cut to its token outputs and
        # the unused pooler neither trains nor appears in the saved model.
        encoder = keras.Model(encoder.input, encoder.output["sequence_output"], name=encoder.name)
    x = backbone_layer(encoder, encoder_inputs, is_pretrained(weights))
    pooled = TokenPooling(pooling, name=POOL_LAYER)(x, padding_mask=inputs["padding_mask"])
    outputs = new_head(pooled)
    name = "keras_tl_text_" + "".join(c if c.isalnum() else "_" for c in spec.name)[-40:]
    return keras.Model(inputs, outputs, name=name), preprocessor
