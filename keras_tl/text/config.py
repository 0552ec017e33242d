"""The text modality's share of the config: its own fields, which `keras_tl.TrainConfig` gathers
(`keras_tl.core.contract.config.with_plugin_fields`). Keras-free: the CLI reads them before TensorFlow."""

from keras_tl.core.contract.fields import Integer, Text, option

FIELDS = {
    "sequence_length": (
        int,
        option(128, "Text: tokens per example after truncation and padding.", Integer(8), "model"),
    ),
    "text_column": (str, option("text", "Text: the CSV column / JSONL key of the text.", Text(), "data")),
    "label_column": (str, option("label", "Text: the CSV column / JSONL key of the label.", Text(), "data")),
}
