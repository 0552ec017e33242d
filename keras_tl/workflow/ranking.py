"""`rank`: score candidate backbones on a classifier from one pass of frozen features, before training any.

For each backbone (and, by default, its random-weight twin, so negative transfer shows), the
training and validation splits go once through the frozen backbone (the feature cache's extractor
and progress bar); LogME and a leave-one-out ridge linear probe score the features
(`keras_tl.core.evaluation.transferability`). The test split is never read. Any modality: the backbones come
from the one registry and the pass from their modality (`Modality.feature_pass`: texts go by length,
each batch cut after its longest row, so short texts cost their own length, not `sequence_length`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import keras
import numpy as np

from keras_tl.core import data
from keras_tl.core.contract import modality as modalities
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.evaluation import transferability
from keras_tl.core.models.classifier import Classifier
from keras_tl.core.models.heads import is_pretrained
from keras_tl.core.train import distribute, features
from keras_tl.core.utils import quiet
from keras_tl.core.utils.log import log
from keras_tl.workflow import rundir as run
from keras_tl.workflow.checks import check_config, prepare, resolve_config

if TYPE_CHECKING:
    from keras_tl.core.data import Source


@quiet.tensorflow_started
def rank(
    config: TrainConfig,
    names: Sequence[str],
    source: Source | None = None,
    *,
    random_twins: bool = True,
    out: str | None = None,
    max_examples: int | None = None,
) -> list[dict]:
    """Ranks backbones by LogME on `config`'s data, with a linear probe as a second opinion.

    Both scores come from one pass of the frozen backbone over the training and validation
    splits; nothing is trained.

    Args:
        config: TrainConfig. Its data, split, image size / sequence length, `weights` (for every
            backbone), `labels_per_class` and seed are used; nothing is trained.
        names: list of str. Backbone names (at least 1), all of one modality.
        source: a source from Python. Defaults to reading `config.data`.
        random_twins: bool. Also score each backbone with random weights (when `config.weights`
            is pretrained); a pretrained backbone whose LogME is not above its twin's is flagged
            (its features carry no more about this classifier than a random network's). Defaults to True.
        out: str. A folder to write `rank.md` and `rank.json` into. Defaults to writing nothing.
        max_examples: int. Score on at most this many training + validation examples, drawn per
            class (seeded, each class keeps `max_examples // classes`, so rare classes keep all they
            have): rank time falls in proportion, LogME's order usually holds (`bench/rank_vs_finetune.py`
            measures both). Defaults to all of them.

    Returns:
        A list of dict rows, best LogME first: "backbone", "weights", "logme", "probe_accuracy",
        "probe_se", "feature_dim", "examples", "seconds", "pass_seconds" (the feature pass alone), "flag".

    Example:
    >>> rows = keras_tl.rank(keras_tl.TrainConfig(data="photos/", weights="pretrained", image_size=96),
    ...                      ["efficientnet_lite0", "mobilenet_v2_torchvision"])
    """
    names = list(dict.fromkeys(names))
    if max_examples is not None and (
        isinstance(max_examples, bool) or not isinstance(max_examples, (int, np.integer)) or max_examples < 2
    ):
        raise ConfigError(f"`max_examples` must be an integer >= 2 (or None: all examples). Received: {max_examples!r}")
    if not names:
        raise ConfigError("`rank` needs at least 1 backbone name. Received: []")
    configs = [TrainConfig.from_dict({**config.to_dict(), "backbone": n}) for n in names]
    checked = [check_config(c, source) for c in configs]  # All, before any work.
    kinds = {n: modality.name for n, (modality, _) in zip(names, checked)}
    if len(set(kinds.values())) > 1:
        raise ConfigError(f"`rank` compares backbones of one modality. Received: {kinds}")
    specs = [spec for _, spec in checked]
    modality, _, source, splits, first = prepare(configs[0], source)  # The data and splits, once for all.
    labelled = _joined(splits["train"], splits["val"])  # What training may see; never the test split.
    if max_examples is not None and len(labelled.labels) > max_examples:
        labelled = _subsample(labelled, max_examples, len(source.class_names), first.seed)
    candidates = [(c, s, c.weights) for c, s in zip(configs, specs)]
    if random_twins and is_pretrained(config.weights):
        candidates += [(c, s, "none") for c, s in zip(configs, specs)]
    rows = []
    for candidate, spec, weights in candidates:
        started = time.perf_counter()
        resolved = resolve_config(
            TrainConfig.from_dict({**candidate.to_dict(), "weights": weights}), modality, spec, first.problem
        )
        log.info(f"rank: {candidate.backbone} ({_weights_name(weights)})")
        keras.utils.set_random_seed(resolved.seed)
        with distribute.precision(resolved.mixed_precision), distribute.scope(resolved.distribute):
            classifier = Classifier.build(modality, spec, resolved, len(source.class_names), source.class_names)
            extractor, _ = features.split_model(classifier.model)
            _, pipeline = modality.feature_pass(classifier, labelled, resolved)
            passed = time.perf_counter()
            ((x, targets),) = features.extract(
                extractor,
                [data.targets_as_inputs(pipeline)],
                descriptions=["training + validation features"],
                open_shapes=True,
            )
        # The labels that rode with each row: one per audio window, in a text pass's length order.
        labels = data.labels_of_targets(targets, resolved.problem)
        if len(x) <= x.shape[1]:
            log.info(
                f"rank: {len(x):,} examples for {x.shape[1]:,} feature dimensions: the features can fit "
                "any labelling, so LogME separates backbones less well (more labelled examples help)"
            )
        score = transferability.logme(x, labels)
        probe = transferability.linear_probe(x, labels) if labels.ndim == 1 else (None, None)
        rows.append(
            {
                "backbone": candidate.backbone,
                "weights": _weights_name(weights),
                "pretrained": is_pretrained(weights),
                "logme": score,
                "probe_accuracy": probe[0],
                "probe_se": probe[1],
                "feature_dim": int(x.shape[1]),
                "examples": int(len(x)),
                "seconds": time.perf_counter() - started,
                "pass_seconds": time.perf_counter() - passed,  # The features alone, without building the model.
                "flag": "",
            }
        )
        keras.backend.clear_session()
    _flag_negative_transfer(rows)
    rows.sort(key=lambda r: -r["logme"] if np.isfinite(r["logme"]) else np.inf)
    lines = table(rows)
    log.info("\n".join(lines))
    if out:
        os.makedirs(out, exist_ok=True)
        run.write_json(out, "rank.json", rows)
        with open(os.path.join(out, "rank.md"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return rows


def _joined(a, b):
    """One `Split` of `a` then `b` (items are arrays or lists)."""
    items = np.concatenate([a.items, b.items]) if isinstance(a.items, np.ndarray) else list(a.items) + list(b.items)
    return data.Split(items, np.concatenate([a.labels, b.labels]))


def _subsample(split, max_examples, num_classes, seed):
    """At most `max_examples` of `split`, `max_examples // num_classes` per class (stratified on each row's
    class, or its rarest label), seeded; prints what it kept."""
    per_class = max(1, max_examples // num_classes)
    keep = data.limit_per_class(data.strata(split.labels), np.arange(len(split.labels)), per_class, seed)
    log.info(
        f"rank: scoring {len(keep):,} of {len(split.labels):,} training + validation examples "
        f"(max_examples={max_examples}: at most {per_class:,} per class)"
    )
    return split.subset(keep)


def _weights_name(weights):
    return "random" if not is_pretrained(weights) else str(weights)


def _flag_negative_transfer(rows):
    """Marks each pretrained row whose LogME is not above its random-weight twin's."""
    random = {r["backbone"]: r for r in rows if not r["pretrained"]}
    for r in rows:
        twin = random.get(r["backbone"]) if r["pretrained"] else None
        if twin and r["logme"] <= twin["logme"]:
            r["flag"] = f"not above random weights ({twin['logme']:.3f}): negative transfer?"


def table(rows):
    """The ranked rows as Markdown lines."""
    lines = [
        f"# Backbone ranking by LogME (higher is better; {rows[0]['examples']:,} training + validation "
        f"examples, test split unused)",
        "",
        "| rank | backbone | weights | LogME | linear probe accuracy (leave-one-out) | features | seconds | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        probe = (
            "n/a" if r["probe_accuracy"] is None else f"{100 * r['probe_accuracy']:.1f}% ± {100 * r['probe_se']:.1f}"
        )
        lines.append(
            f"| {i} | {r['backbone']} | {r['weights']} | {r['logme']:.4f} | {probe} | "
            f"{r['feature_dim']:,} | {r['seconds']:.1f} | {r['flag']} |"
        )
    return lines


@quiet.tensorflow_started
def domain_shift(
    config: TrainConfig, target: Source | str, source: Source | None = None, *, max_examples: int = 2000
) -> dict:
    """How far target-domain data is from the training data, seen through the frozen backbone.

    The proxy A-distance (`keras_tl.core.adapt.adaptation.proxy_a_distance`; Ben-David et al. 2007):
    `2 (1 - 2 err)` with `err` the leave-one-out error of a linear classifier telling the training
    and validation examples from the target examples, on the backbone's pooled features; the two
    sets are subsampled to the same size (seeded). Nothing is trained and the test split is never
    read. Near 0: a linear probe cannot tell the domains apart. Near 2: they are linearly
    separable, so a model trained on one may fail on the other: label some target data, or adapt.

    Args:
        config: TrainConfig. Its backbone, weights, data, split and seed are used.
        target: str or source. The target domain: what `config.data` may be (a folder, a
            manifest), or a source from Python; its labels are not used.
        source: a source from Python for the training data. Defaults to reading `config.data`.
        max_examples: int. At most this many examples of each domain. Defaults to 2000.

    Returns:
        dict: "proxy_a_distance", "domain_probe_accuracy", "examples" (of each domain),
        "backbone", "weights", "feature_dim".

    Example:
    >>> keras_tl.domain_shift(keras_tl.TrainConfig(data="mono/", backbone="efficientnet_lite0",
    ...                                            weights="pretrained", image_size=96), "poly/")
    """
    from keras_tl.core.adapt.adaptation import proxy_a_distance

    # The target is this function's argument; a config's own target_data / domain_adaptation (a
    # training run's) play no part in measuring the shift.
    config = TrainConfig.from_dict({**config.to_dict(), "target_data": None, "domain_adaptation": "none"})
    if isinstance(target, (str, os.PathLike)):
        target_config = TrainConfig.from_dict({**config.to_dict(), "data": str(target)})
        check_config(target_config)  # The target path too, before any work.
    modality, spec, source, splits, resolved = prepare(config, source)
    if isinstance(target, (str, os.PathLike)):
        target = modality.load_source(target_config)
    elif modalities.source_modality(target) != modality.name:
        raise ConfigError(
            f"`target` must be a path or a {modality.name} source like the training data. "
            f"Received: {type(target).__name__}"
        )
    rng = np.random.default_rng(resolved.seed)
    domains = [_joined(splits["train"], splits["val"]), target.as_split()]
    count = min(len(domains[0].labels), len(domains[1].labels), max_examples)
    if count < 2:
        raise ConfigError(
            f"`domain_shift` needs at least 2 examples of each domain. Received: "
            f"{len(domains[0].labels)} training + validation, {len(domains[1].labels)} target"
        )
    domains = [d.subset(np.sort(rng.choice(len(d.labels), count, replace=False))) for d in domains]
    log.info(
        f"domain shift: {resolved.backbone} ({_weights_name(resolved.weights)}), {count:,} examples of each domain"
    )
    keras.utils.set_random_seed(resolved.seed)
    with distribute.precision(resolved.mixed_precision), distribute.scope(resolved.distribute):
        classifier = Classifier.build(modality, spec, resolved, len(source.class_names), source.class_names)
        extractor, _ = features.split_model(classifier.model)
        pipelines = [data.targets_as_inputs(modality.feature_pass(classifier, d, resolved)[1]) for d in domains]
        (a, _), (b, _) = features.extract(
            extractor, pipelines, descriptions=["training-data features", "target-data features"], open_shapes=True
        )
    keras.backend.clear_session()
    distance = proxy_a_distance(a, b)
    result = {
        "proxy_a_distance": distance,
        "domain_probe_accuracy": (distance / 2 + 1) / 2,
        "examples": int(count),
        "backbone": resolved.backbone,
        "weights": _weights_name(resolved.weights),
        "feature_dim": int(a.shape[1]),
    }
    verdict = (
        "the domains look alike to a linear probe"
        if distance < 0.5
        else "a moderate shift"
        if distance < 1.5
        else "a large shift: a model trained on one domain may fail on the other (label some target data, or adapt)"
    )
    log.info(
        f"proxy A-distance {distance:.2f} (0: alike, 2: linearly separable; a linear probe tells "
        f"the domains apart {100 * result['domain_probe_accuracy']:.1f}% of the time): {verdict}"
    )
    return result
