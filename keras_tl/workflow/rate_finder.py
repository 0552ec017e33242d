"""`lr_find`: the learning-rate range test for a config's frozen phase or its unfrozen phase; and
`find_rates`, which turns `head_lr: find` / `fine_tune_lr: find` into numbers at the start of a run."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import keras

from keras_tl.core.contract.choices import FIND
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.data import multitask_labels
from keras_tl.core.evaluation import plots
from keras_tl.core.models import multitask
from keras_tl.core.models.classifier import Classifier
from keras_tl.core.models.heads import is_pretrained
from keras_tl.core.train import distribute, features, lr_finder
from keras_tl.core.train.training import Supervised, fine_tune, set_trainable
from keras_tl.core.utils import quiet
from keras_tl.core.utils.log import log
from keras_tl.workflow import rundir as run
from keras_tl.workflow.checks import prepare

if TYPE_CHECKING:
    from keras_tl.core.data import Source


PHASES = ("head", "fine_tune")


@quiet.tensorflow_started
def lr_find(
    config: TrainConfig,
    source: Source | None = None,
    *,
    phase: str = "head",
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    png: str | None = "lr_find.png",
) -> dict:
    """Sweeps the learning rate of one phase of `config` and suggests one (fastai's `lr_find`).

    Args:
        config: TrainConfig. Checked first, like `train`'s; nothing is written but the plot.
        source: a source from Python. Defaults to reading `config.data`.
        phase: str. "head": the new head on the frozen backbone (on cached features where `train`
            would cache them); suggests `head_lr`. "fine_tune": first trains the head as phase 1
            would (`head_epochs`), then sweeps with the `unfreeze` policy; suggests `fine_tune_lr`.
        min_lr, max_lr: float. The swept range. Defaults to 1e-7 and 10.
        steps: int. Training batches in the sweep. Defaults to 100.
        png: str. The plot to write (loss against rate, suggestion marked). Defaults to "lr_find.png".

    Returns:
        dict: "rates", "losses", "smoothed", "suggestion" (float), "setting" ("head_lr" or
        "fine_tune_lr"), "png".

    Example:
    >>> result = keras_tl.lr_find(keras_tl.TrainConfig(data="photos/", weights="pretrained"))
    >>> config = keras_tl.TrainConfig(data="photos/", weights="pretrained", head_lr=result["suggestion"])
    """
    if phase not in PHASES:
        raise ConfigError(f"`phase` must be one of {list(PHASES)}. Received: phase={phase!r}")
    if phase == "fine_tune" and config.head_lr == FIND:
        raise ConfigError(
            "lr_find(phase='fine_tune') trains the head first and needs a number for head_lr "
            "(run phase='head' to find one). Received: head_lr='find'"
        )
    modality, spec, source, splits, resolved = prepare(config, source)
    keras.utils.set_random_seed(resolved.seed)
    with distribute.precision(resolved.mixed_precision), distribute.scope(resolved.distribute):
        kinds = multitask_labels.kinds_for(resolved.problem, source.class_names, source.labels)
        classifier = Classifier.build(modality, spec, resolved, len(source.class_names), source.class_names, kinds)

        def train_dataset(seed=resolved.seed):
            return modality.dataset(classifier, splits["train"], resolved, training=True, seed=seed)

        val = modality.dataset(classifier, splits["val"], resolved)
        cached = features.cached_phase(classifier, resolved, splits, train_dataset)
        if phase == "head":
            set_trainable(classifier.model, None)
            fit_model, data = (cached.head, cached.train) if cached else (classifier.model, train_dataset())
        else:
            head_only = TrainConfig.from_dict({**resolved.to_dict(), "strategy": "feature_extraction"})
            fine_tune(classifier, train_dataset(), val, head_only, cached=cached)
            set_trainable(
                classifier.model, resolved.unfreeze, spec=spec, freeze_batchnorm=is_pretrained(resolved.weights)
            )
            fit_model, data = classifier.model, train_dataset(resolved.seed + 1)
        Supervised().compile(
            fit_model, learning_rate=min_lr, problem=classifier.problem, optimizer=resolved.optimizer, config=resolved
        )
        log.info(f"lr-find ({phase}): {steps} batches at rates {min_lr:g} to {max_lr:g}")
        data = multitask.targets_by_head(data, classifier.model)
        result = lr_finder.sweep(fit_model, data, min_lr=min_lr, max_lr=max_lr, steps=steps)
    setting = "head_lr" if phase == "head" else "fine_tune_lr"
    plots.lr_find(result, png, title=f"{resolved.backbone}: {setting} range test")
    log.info(f"suggested {setting}={result['suggestion']:.2g} (steepest fall of the smoothed loss); plot: {png}")
    return {**result, "setting": setting, "png": png}


FOUND_FILE = "lr_find.json"


def find_rates(config, source, run_dir):
    """`config` with `head_lr: find` / `fine_tune_lr: find` replaced by the range test's suggestions.

    Each sweep runs on a model and pipelines of its own (`lr_find`), so the run's own training,
    its seeds and its shuffle order are those of a run given the numbers. The suggestions and
    plots are kept in `run_dir` (`lr_find.json`, `lr_find_head.png`, `lr_find_fine_tune.png`);
    a resumed run reads them back instead of sweeping again.

    Returns:
        `(config, found)`: the config with numbers, and `{setting: rate}` of what was found.
    """
    wanted = [name for name in ("head_lr", "fine_tune_lr") if getattr(config, name) == FIND]
    if config.strategy != "two_phase" and "fine_tune_lr" in wanted:
        wanted.remove("fine_tune_lr")  # No phase 2: the setting is unused.
    if not wanted:  # (A "find" left for an unused phase 2 is never read.)
        return config, {}
    found = run.read_json(run_dir, FOUND_FILE, default={})
    if "head_lr" in wanted and "head_lr" not in found:
        found["head_lr"] = lr_find(config, source, phase="head", png=os.path.join(run_dir, "lr_find_head.png"))[
            "suggestion"
        ]
        run.write_json(run_dir, FOUND_FILE, found)
    head_lr = found.get("head_lr", config.head_lr)
    if "fine_tune_lr" in wanted and "fine_tune_lr" not in found:
        with_head = TrainConfig.from_dict({**config.to_dict(), "head_lr": head_lr})
        found["fine_tune_lr"] = lr_find(
            with_head, source, phase="fine_tune", png=os.path.join(run_dir, "lr_find_fine_tune.png")
        )["suggestion"]
        run.write_json(run_dir, FOUND_FILE, found)
    log.info(
        "learning rates from the range test: "
        + ", ".join(f"{k}={v:.3g}" for k, v in found.items())
        + f" ({os.path.join(run_dir, FOUND_FILE)})"
    )
    return TrainConfig.from_dict({**config.to_dict(), **found}), found
