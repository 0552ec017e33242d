"""One backbone registry for every modality: a dict of frozen specs filled by `register(...)`.

A modality's `backbones` module (`keras_tl.image.backbones`, `keras_tl.text.backbones`) registers
its specs when imported and may resolve names that are not registered (KerasHub handles, local
preset directories) through its `resolve(name, explicit)` function. Lookups are case- and
underscore-insensitive and load no weights. Nothing outside a registry branches on a backbone's name.

Keras-free: the modality modules are imported by name (`config.MODALITIES`), on first lookup.
"""

import fnmatch
import importlib
import re
from dataclasses import dataclass

from keras_tl.core.config import MODALITIES


@dataclass(frozen=True)
class BackboneSpec:
    """What keras-tl knows about a backbone before building it.

    Args:
        name: str. Registry name ("mobilenet_v2", "minilm_l6"), or the handle / directory it was
            resolved from.
        modality: str. One of `keras_tl.core.config.MODALITIES`.
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
    description: str = ""
    licence: str = ""


_REGISTRY: dict[str, BackboneSpec] = {}
_LOADED: set[str] = set()


def _key(name):
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _plugin(modality):
    """The modality's backbones module (imported once: importing it registers its specs)."""
    module = importlib.import_module(f"keras_tl.{modality}.backbones")
    _LOADED.add(modality)
    return module


def _load_all():
    for modality in MODALITIES:
        if modality not in _LOADED:
            _plugin(modality)


def register(spec):
    """Adds a spec; its name (case and `_` ignored) must be new and its modality known."""
    if spec.modality not in MODALITIES:
        raise ValueError(f"`modality` must be one of {list(MODALITIES)}. Received: modality={spec.modality!r}")
    key = _key(spec.name)
    if key in _REGISTRY:
        raise ValueError(f"Backbone {spec.name!r} is already registered.")
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
    >>> keras_tl.core.registry.get("mobilenet_v2").default_size
    224
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"A backbone name must be a non-empty string. Received: {name!r}")
    if modality is not None and modality not in MODALITIES:
        raise ValueError(f"`modality` must be one of {list(MODALITIES)}. Received: modality={modality!r}")
    _load_all()
    spec = _REGISTRY.get(_key(name))
    if spec is not None:
        if modality is not None and spec.modality != modality:
            raise ValueError(f"Backbone {name!r} is a {spec.modality} backbone; the run's modality is "
                             f"{modality!r}. Available {modality} backbones: {names(modality=modality)}")
        return spec
    for candidate in [modality] if modality else MODALITIES:
        spec = _plugin(candidate).resolve(name, explicit=modality is not None)
        if spec is not None:
            return spec
    raise ValueError(
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
