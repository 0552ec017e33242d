"""The text modality plug-in: what text needs that the shared core does not know."""

import os

import numpy as np
import tensorflow as tf

from keras_tl.core import tflite_metadata
from keras_tl.core.modality import Modality
from keras_tl.core.task import Task
from keras_tl.text import backbones, data, export
from keras_tl.text.model import build_text_model


class TextModality(Modality):
    name = "text"
    unit = "texts"
    default_optimizer = "adamw"  # As transformer encoders are fine-tuned.
    default_schedule = "linear"  # Warmup + linear decay, as BERT was.
    tflite_quantizations = export.QUANTIZATIONS
    batchnorm = False  # Transformer encoders use LayerNorm.

    def check_config(self, config, spec, source=None):
        if config.augment != "none" or config.augmented_views:
            raise ValueError(f"Augmentation applies to images and audio, not text. Received: augment={config.augment!r}, "
                             f"augmented_views={config.augmented_views} for a text run.")
        if config.weights not in ("imagenet", "preset", "none"):
            raise ValueError("`weights` for a text encoder must be 'preset' (its pretrained weights) or "
                             f"'none' (random initialization). Received: weights={config.weights!r}")
        if spec.weights_from != "keras_hub":
            backbones.preset_path(spec)  # Fails now, with the install command, if the package is missing.
        if source is None:
            data.check_data_path(config.data)

    def resolve_config(self, config, spec):
        return {"weights": "preset" if config.weights == "imagenet" else config.weights, "image_size": None}

    def input_size(self, config):
        return f"{config.sequence_length} tokens"

    def is_source(self, source):
        return isinstance(source, data.TextSource)

    def load_source(self, config):
        return data.load_text_source(config.data, text_column=config.text_column, label_column=config.label_column)

    def build_task(self, spec, config, num_classes, class_names=(), head_kinds=None):
        model, preprocessor = build_text_model(
            spec, num_classes=num_classes, weights=config.weights, sequence_length=config.sequence_length,
            task=config.task, pooling=config.pooling, dense_units=config.dense_units, dropout=config.dropout,
            class_names=list(class_names), head_kinds=head_kinds)
        return Task(model, self, spec, preprocessor, list(class_names), config)

    def skeleton(self, spec, config):
        return backbones.load(spec, weights="none", sequence_length=config.sequence_length)[0]

    def dataset(self, task, split, config, *, training=False, seed=None, cache="memory"):
        return data.make_text_dataset(
            split, task.preprocessor, batch_size=config.batch_size, num_classes=len(task.class_names),
            task=task.kind, training=training, oversample=training and config.class_weight == "oversample",
            seed=config.seed if seed is None else seed, cache=cache not in (False, None, "none"))

    def feature_pass(self, task, split, config):
        """Texts by length (characters, a cheap stand-in for tokens), each batch trimmed to its
        longest row: the encoder's attention mask makes the features those of the padded pass (to
        float rounding) at a fraction of the positions, as most texts are far shorter than
        `sequence_length`."""
        order = np.argsort([len(t) for t in split.items], kind="stable")
        return order, data.make_text_dataset(
            split.subset(order), task.preprocessor, batch_size=config.batch_size, num_classes=len(task.class_names),
            task=task.kind, cache=False, trim=True)

    def read_items(self, items):
        items = list(items)
        empty = [i for i, t in enumerate(items) if not isinstance(t, str) or not t.strip()]
        if empty:
            raise ValueError(f"Expected non-empty texts. Received an empty one at position {empty[0]}.")
        return items

    def model_inputs(self, task, items):
        tokens = task.preprocessor(tf.constant(list(items)))
        return {k: np.asarray(v) for k, v in tokens.items()}

    def confident_errors(self, task, split, probabilities, path_stem):
        wrong = np.flatnonzero(probabilities.argmax(-1) != split.labels)
        worst = wrong[np.argsort(-probabilities[wrong].max(-1))][:20]
        names = task.class_names
        lines = ["# Most confidently wrong test texts", "", "| text | true | predicted | probability |",
                 "|---|---|---|---|"]
        for i in worst:
            text = split.items[i].replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {text[:200]} | {names[split.labels[i]]} | {names[probabilities[i].argmax()]} | "
                         f"{probabilities[i].max():.3f} |")
        path = f"{path_stem}.md"
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        return os.path.basename(path)

    def save_preprocessor(self, task, directory):
        task.preprocessor.save_to_preset(directory)

    def load_preprocessor(self, directory):
        return backbones.load_saved_preprocessor(directory)

    def serving_endpoints(self, task, info):
        return {"serving_default": (export.serving_function(task.model, task.preprocessor, info.class_names),
                                    "text: string [N] (raw UTF-8 text; tokenized in the graph)")}

    def endpoint_arguments(self, task, info):
        return {"serving_default": {"text": tf.constant(list(info.check_items))}}

    def card(self, task):
        return {"sequence_length": self.sequence_length(task)}

    def sequence_length(self, task):
        return int(task.model.input["token_ids"].shape[1])

    def tflite_signature(self, task):
        return export.tflite_signature(task.model, self.sequence_length(task))

    def tflite_input_metadata(self, task, inputs, info):
        """BERT tokenizer metadata (MediaPipe `TextClassifier` then takes raw strings) for a WordPiece
        encoder taking token ids, padding mask and segment ids; otherwise the inputs by name."""
        from keras_hub.tokenizers import WordPieceTokenizer

        tokenizer = getattr(task.preprocessor, "tokenizer", None)
        if isinstance(tokenizer, WordPieceTokenizer):
            bert = tflite_metadata.bert_inputs(inputs, tokenizer.get_vocabulary(), lowercase=tokenizer.lowercase)
            if bert is not None:
                return bert
        return super().tflite_input_metadata(task, inputs, info)

    def write_export_assets(self, task, directory):
        export.write_vocabulary(task.preprocessor, os.path.join(directory, "vocab.txt"))


MODALITY = TextModality()
