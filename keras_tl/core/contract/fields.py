"""What a config field takes: a check per kind of value (choices, ranges, types; booleans never pass
as numbers), `option(...)` that declares a field with its help and group, and the parsers of the
values that have a grammar (unfreeze policies, augmentation presets). Keras-free."""

import dataclasses
import math
from dataclasses import dataclass

from keras_tl.core.contract.choices import FIND
from keras_tl.core.contract.errors import ConfigError


class Check:
    """What values a field takes: `check(name, value)` raises `ConfigError` naming both; `describe()`
    says it in words (the reference, `--help`)."""

    optional = False

    def __call__(self, name, value):
        if value is None and self.optional:
            return
        if value is None or not self.valid(value):
            raise ConfigError(f"`{name}` must be {self.describe()}. Received: {name}={value!r}")

    def valid(self, value):
        raise NotImplementedError

    def describe(self):
        raise NotImplementedError

    def _or_none(self, text):
        return f"{text} or null" if self.optional else text


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Choice(Check):
    values: tuple

    def valid(self, value):
        return isinstance(value, str) and value in self.values

    def describe(self):
        return f"one of {list(self.values)}"


@dataclass(frozen=True)
class Integer(Check):
    low: int = 0
    high: int | None = None
    optional: bool = False

    def valid(self, value):
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and value >= self.low
            and (self.high is None or value <= self.high)
        )

    def describe(self):
        bound = f"an integer >= {self.low}" + (f" and <= {self.high}" if self.high is not None else "")
        return self._or_none(bound)


@dataclass(frozen=True)
class Number(Check):
    low: float
    high: float | None = None
    low_open: bool = False
    high_open: bool = True
    optional: bool = False

    def valid(self, value):
        if not _number(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def describe(self):
        if self.high is None:
            text = f"a finite number {'>' if self.low_open else '>='} {self.low:g}"
        else:
            text = (
                f"a number in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                f"{')' if self.high_open else ']'}"
            )
        return self._or_none(text)


@dataclass(frozen=True)
class Text(Check):
    optional: bool = False

    def valid(self, value):
        return isinstance(value, str) and bool(value)

    def describe(self):
        return self._or_none("a non-empty string")


@dataclass(frozen=True)
class Flag(Check):
    def valid(self, value):
        return isinstance(value, bool)

    def describe(self):
        return "true or false"


@dataclass(frozen=True)
class Switch(Check):
    """true, false or "auto"."""

    def valid(self, value):
        return isinstance(value, bool) or value == "auto"

    def describe(self):
        return "true, false or 'auto'"


# `head_epochs: auto`: phase 1 gets about this many optimizer steps, in this many epochs at least and at most.
AUTO_HEAD_STEPS, AUTO_HEAD_EPOCHS = 300, (5, 150)


def auto_head_epochs(strategy, steps_per_epoch=None):
    """What `head_epochs: auto` means for `steps_per_epoch` training batches: about `AUTO_HEAD_STEPS`
    steps of the frozen phase (cheap on cached features) within `AUTO_HEAD_EPOCHS`; the lower bound
    where the size is unknown or the `strategy` trains everything (`full`)."""
    low, high = AUTO_HEAD_EPOCHS
    if not steps_per_epoch or strategy == "full":
        return low
    return int(min(high, max(low, math.ceil(AUTO_HEAD_STEPS / steps_per_epoch))))


def concrete_autos(config, steps_per_epoch, default_fine_tune_lr):
    """`{field: value}` for `head_epochs: auto` and `fine_tune_lr: auto` made concrete (only the fields
    that are "auto"): `auto_head_epochs` and the modality's `default_fine_tune_lr`."""
    changes = {}
    if config.head_epochs == "auto":
        changes["head_epochs"] = auto_head_epochs(config.strategy, steps_per_epoch)
    if config.fine_tune_lr == "auto":
        changes["fine_tune_lr"] = default_fine_tune_lr
    return changes


@dataclass(frozen=True)
class Epochs(Check):
    """An integer >= 0, or "auto" (resolved from the training set's size)."""

    def valid(self, value):
        return value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)

    def describe(self):
        return "an integer >= 0 or 'auto'"


@dataclass(frozen=True)
class Rate(Check):
    """A learning rate: a finite positive number, "find" (the range test picks it), or with `auto`,
    "auto" (the modality's default)."""

    auto: bool = False

    def valid(self, value):
        return value == FIND or (self.auto and value == "auto") or (_number(value) and value > 0)

    def describe(self):
        auto = ", 'auto' (the modality's default)" if self.auto else ""
        return f"a finite positive number{auto} or '{FIND}' (the learning-rate range test picks it)"


@dataclass(frozen=True)
class PositiveIntegers(Check):
    def valid(self, value):
        return isinstance(value, (list, tuple)) and all(
            isinstance(u, int) and not isinstance(u, bool) and u > 0 for u in value
        )

    def describe(self):
        return "a list of positive integers"


@dataclass(frozen=True)
class Mapping(Check):
    """A mapping; `values`, if given, checks each value (the per-head weights)."""

    values: Check | None = None

    def valid(self, value):
        return isinstance(value, dict) and all(
            isinstance(k, str) and (self.values is None or self.values.valid(v)) for k, v in value.items()
        )

    def describe(self):
        return "a mapping of names to " + (self.values.describe() if self.values else "values")


@dataclass(frozen=True)
class Unfreeze(Check):
    def __call__(self, name, value):
        parse_unfreeze(value)

    def describe(self):
        return '"all", "top:N" (layers), "fraction:F", "blocks:K" or "from:NAME" (a layer or block)'


def option(default, help, check, group):
    """A config field: its default, what it means (the reference and `--help`), what it takes, its group."""
    kwargs = {"default_factory": type(default)} if isinstance(default, (dict, list)) else {"default": default}
    return dataclasses.field(**kwargs, metadata={"help": help, "check": check, "group": group})


def augment_preset(presets, name, overrides, what):
    """Preset `name` of a modality's augmentation `presets` with `overrides` merged in; an unknown level or
    parameter is a `ConfigError` naming the allowed ones (`what`: "image augmentation", ...)."""
    if name not in presets:
        raise ConfigError(f"`augment` must be one of {list(presets)}. Received: augment={name!r}")
    unknown = sorted(set(overrides or {}) - set(presets["none"]))
    if unknown:
        raise ConfigError(
            f"Unknown {what} parameters {unknown} in `augment_params`. Allowed: {sorted(presets['none'])}"
        )
    return {**presets[name], **(overrides or {})}


def parse_unfreeze(policy):
    """Parses an unfreeze policy string into `(kind, value)`.

    Args:
        policy: str. "all", "top:N", "fraction:F" (0 < F <= 1), "blocks:K" or "from:NAME".

    Returns:
        A tuple `(kind, value)`, e.g. `("top", 20)` or `("all", None)`.

    Example:
    >>> keras_tl.core.contract.fields.parse_unfreeze("fraction:0.25")
    ('fraction', 0.25)
    """
    allowed = '"all", "top:N", "fraction:F", "blocks:K" or "from:LAYER_OR_BLOCK"'
    if not isinstance(policy, str):
        raise ConfigError(f"`unfreeze` must be one of {allowed}. Received: unfreeze={policy!r}")
    if policy == "all":
        return ("all", None)
    kind, sep, value = policy.partition(":")
    if not sep or not value:
        raise ConfigError(f"`unfreeze` must be one of {allowed}. Received: unfreeze={policy!r}")
    if kind in ("top", "blocks", "fraction"):
        try:
            number = float(value) if kind == "fraction" else int(value)
        except ValueError:
            number = None
        if number is None or not (0 < number <= 1 if kind == "fraction" else number >= 1):
            raise ConfigError(
                f"`unfreeze` {kind}: needs a positive {'fraction <= 1' if kind == 'fraction' else 'integer'}. "
                f"Received: unfreeze={policy!r}"
            )
        return (kind, number)
    if kind == "from":
        return (kind, value)
    raise ConfigError(f"`unfreeze` must be one of {allowed}. Received: unfreeze={policy!r}")
