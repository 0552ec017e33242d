"""`lr_find`: the learning-rate range test for a config's frozen phase or its unfrozen phase."""

import keras

from keras_tl.core import distribute, features, lr_finder
from keras_tl.core.config import TrainConfig
from keras_tl.core.data import split_source
from keras_tl.core.heads import is_pretrained
from keras_tl.core.training import Supervised, fine_tune, set_trainable
from keras_tl.workflow.training_run import check_config, resolve_config, resolve_task

PHASES = ("head", "fine_tune")


def lr_find(config, source=None, *, phase="head", min_lr=1e-7, max_lr=10.0, steps=100, png="lr_find.png"):
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
    >>> result = keras_tl.lr_find(keras_tl.TrainConfig(data="photos/", weights="imagenet"))
    >>> config = keras_tl.TrainConfig(data="photos/", weights="imagenet", head_lr=result["suggestion"])
    """
    if phase not in PHASES:
        raise ValueError(f"`phase` must be one of {list(PHASES)}. Received: phase={phase!r}")
    modality, spec = check_config(config, source)
    source = source if source is not None else modality.load_source(config)
    splits = split_source(source, val_split=config.val_split, test_split=config.test_split, seed=config.seed,
                          labels_per_class=config.labels_per_class)
    kind = resolve_task(config, len(source.class_names), multilabel=source.labels.ndim == 2)
    resolved = resolve_config(config, modality, spec, kind)
    keras.utils.set_random_seed(resolved.seed)
    with distribute.precision(resolved.mixed_precision), distribute.scope(resolved.distribute):
        task = modality.build_task(spec, resolved, len(source.class_names), source.class_names)

        def train_dataset(seed=resolved.seed):
            return modality.dataset(task, splits["train"], resolved, training=True, seed=seed)

        val = modality.dataset(task, splits["val"], resolved)
        cached = features.cached_phase(task, resolved, splits, train_dataset,
                                       modality.dataset(task, splits["train"], resolved), val)
        if phase == "head":
            set_trainable(task.model, None)
            fit_model, data = (cached.head, cached.train) if cached else (task.model, train_dataset())
        else:
            head_only = TrainConfig.from_dict({**resolved.to_dict(), "strategy": "feature_extraction"})
            fine_tune(task, train_dataset(), val, head_only, cached=cached)
            set_trainable(task.model, resolved.unfreeze, spec=spec, freeze_batchnorm=is_pretrained(resolved.weights))
            fit_model, data = task.model, train_dataset(resolved.seed + 1)
        Supervised().compile(fit_model, learning_rate=min_lr, task=task.kind, optimizer=resolved.optimizer,
                             config=resolved)
        print(f"[keras-tl] lr-find ({phase}): {steps} batches at rates {min_lr:g} to {max_lr:g}")
        result = lr_finder.sweep(fit_model, data, min_lr=min_lr, max_lr=max_lr, steps=steps)
    setting = "head_lr" if phase == "head" else "fine_tune_lr"
    lr_finder.plot(result, png, title=f"{resolved.backbone}: {setting} range test")
    print(f"[keras-tl] suggested {setting}={result['suggestion']:.2g} (steepest fall of the smoothed loss); "
          f"plot: {png}")
    return {**result, "setting": setting, "png": png}
