"""Optimizers of a phase, with optional discriminative learning rates (a multiplier per variable).

Discriminative fine-tuning (Howard & Ruder, ULMFiT 2018; "layer-wise learning-rate decay" in BERT
fine-tuning): when the backbone is unfrozen, its earlier blocks, which hold the most general
features, move more slowly than the top ones. `layer_rate_multipliers` gives each backbone block
`decay ** (blocks above it)`; the head keeps the full rate. Keras optimizers have one rate, so
`DiscriminativeAdam` / `DiscriminativeAdamW` scale it per variable inside `update_step` (Adam's
update does not scale with the gradient, so scaling gradients would not do); AdamW's decoupled
weight decay is scaled by the same multiplier, as a per-group rate in PyTorch's AdamW would be.
"""

import keras

from keras_tl.core.contract import registry
from keras_tl.core.contract.errors import ConfigError


def layer_rate_multipliers(model, spec, decay):
    """`{variable path: multiplier}` for the backbone's variables: `decay ** k` for a layer `k` blocks
    below the top block (the layers before the first block, `decay ** blocks`).

    Args:
        model: keras.Model. A keras-tl model.
        spec: BackboneSpec. Its `block_pattern` says where the blocks start.
        decay: float in (0, 1]. Rate ratio between neighbouring blocks.

    Returns:
        `(multipliers, blocks)`: the dict and the block names, bottom first.
    """
    from keras_tl.core.models.heads import get_backbone  # Here: this module imports no Keras-importing keras_tl module.

    backbone = get_backbone(model)
    starts = registry.block_starts(backbone, spec)
    if not starts:
        raise ConfigError(
            f"layer_lr_decay needs a backbone with named blocks; {spec.name!r} has no block pattern. "
            "Use layer_lr_decay=1.0 (one rate) with this backbone."
        )
    multipliers = {}
    block = -1  # Layers before the first block: the stem.
    for index, layer in enumerate(backbone.layers):
        while block + 1 < len(starts) and index >= starts[block + 1][1]:
            block += 1
        for variable in layer.weights:
            multipliers[variable.path] = float(decay ** (len(starts) - 1 - block))
    return multipliers, [name for name, _ in starts]


class Discriminative:
    """Mixin: `lr_multipliers` ({variable path: float}) scale the rate (and decoupled weight decay)."""

    def __init__(self, *args, lr_multipliers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lr_multipliers = dict(lr_multipliers or {})
        self._index_multipliers = []

    def build(self, variables):
        super().build(variables)
        paths = [v.path for v in variables]
        if len(set(paths)) != len(paths):
            raise ConfigError(
                "Discriminative learning rates need unique variable paths; the model has repeats: "
                f"{sorted({p for p in paths if paths.count(p) > 1})[:5]}"
            )
        self._index_multipliers = [self.lr_multipliers.get(p, 1.0) for p in paths]

    def _multiplier(self, variable):
        return self._index_multipliers[self._get_variable_index(variable)]

    def _apply_weight_decay(self, variables):
        pass  # Applied per variable in `update_step`, with the variable's own rate.

    def update_step(self, gradient, variable, learning_rate):
        multiplier = self._multiplier(variable)
        learning_rate = keras.ops.cast(learning_rate, variable.dtype)
        if multiplier != 1.0:
            learning_rate = learning_rate * multiplier
        if self.weight_decay is not None and self._use_weight_decay(variable):
            wd = keras.ops.cast(self.weight_decay, variable.dtype)
            self.assign_sub(variable, variable * wd * learning_rate)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "lr_multipliers": self.lr_multipliers}


@keras.saving.register_keras_serializable(package="keras_tl")
class DiscriminativeAdam(Discriminative, keras.optimizers.Adam):
    """Adam with a learning-rate multiplier per variable (`lr_multipliers`: {variable path: float})."""


@keras.saving.register_keras_serializable(package="keras_tl")
class DiscriminativeAdamW(Discriminative, keras.optimizers.AdamW):
    """AdamW with a learning-rate (and weight-decay) multiplier per variable."""


def make(name, learning_rate, *, weight_decay=0.01, lr_multipliers=None):
    """The optimizer `name` ("adam" or "adamw"); with `lr_multipliers`, its discriminative twin.

    AdamW does not decay biases, LayerNorm and BatchNorm parameters (`bias`, `gamma`, `beta`).
    """
    if name not in ("adam", "adamw"):
        raise ConfigError(f"`optimizer` must be 'adam' or 'adamw'. Received: optimizer={name!r}")
    if name == "adamw":
        cls = DiscriminativeAdamW if lr_multipliers else keras.optimizers.AdamW
        extra = {"lr_multipliers": lr_multipliers} if lr_multipliers else {}
        optimizer = cls(learning_rate, weight_decay=weight_decay, **extra)
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        return optimizer
    if lr_multipliers:
        return DiscriminativeAdam(learning_rate, lr_multipliers=lr_multipliers)
    return keras.optimizers.Adam(learning_rate)
