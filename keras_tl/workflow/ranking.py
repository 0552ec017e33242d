"""`rank`: score candidate backbones on a task from one pass of frozen features, before training any.

For each backbone (and, by default, its random-weight twin, so negative transfer shows), the
training and validation splits go once through the frozen backbone (the feature cache's extractor
and progress bar); LogME and a leave-one-out ridge linear probe score the features
(`keras_tl.core.transferability`). The test split is never read. Any modality: the backbones come
from the one registry and the pipelines from their modality.
"""

import os
import time

import keras
import numpy as np

from keras_tl.core import data, distribute, features, run, transferability
from keras_tl.core.config import TrainConfig
from keras_tl.core.heads import is_pretrained
from keras_tl.workflow.checks import check_config, prepare, resolve_config


def rank(config, names, source=None, *, random_twins=True, out=None):
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
            (its features carry no more about this task than a random network's). Defaults to True.
        out: str. A folder to write `rank.md` and `rank.json` into. Defaults to writing nothing.

    Returns:
        A list of dict rows, best LogME first: "backbone", "weights", "logme", "probe_accuracy",
        "probe_se", "feature_dim", "examples", "seconds", "flag".

    Example:
    >>> rows = keras_tl.rank(keras_tl.TrainConfig(data="photos/", weights="imagenet", image_size=96),
    ...                      ["efficientnet_lite0", "mobilenet_v2_torchvision"])
    """
    names = list(dict.fromkeys(names))
    if not names:
        raise ValueError("`rank` needs at least 1 backbone name. Received: []")
    configs = [TrainConfig.from_dict({**config.to_dict(), "backbone": n}) for n in names]
    checked = [check_config(c, source) for c in configs]  # All, before any work.
    kinds = {n: modality.name for n, (modality, _) in zip(names, checked)}
    if len(set(kinds.values())) > 1:
        raise ValueError(f"`rank` compares backbones of one modality. Received: {kinds}")
    specs = [spec for _, spec in checked]
    modality, _, source, splits, first = prepare(configs[0], source)  # The data and splits, once for all.
    labelled = _joined(splits["train"], splits["val"])  # What training may see; never the test split.
    candidates = [(c, s, c.weights) for c, s in zip(configs, specs)]
    if random_twins and is_pretrained(config.weights):
        candidates += [(c, s, "none") for c, s in zip(configs, specs)]
    rows = []
    for candidate, spec, weights in candidates:
        started = time.perf_counter()
        resolved = resolve_config(TrainConfig.from_dict({**candidate.to_dict(), "weights": weights}), modality, spec,
                                  first.task)
        print(f"[keras-tl] rank: {candidate.backbone} ({_weights_name(weights)})")
        keras.utils.set_random_seed(resolved.seed)
        with distribute.precision(resolved.mixed_precision), distribute.scope(resolved.distribute):
            task = modality.build_task(spec, resolved, len(source.class_names), source.class_names)
            extractor, _ = features.split_model(task.model)
            pipeline = data.targets_as_inputs(modality.dataset(task, labelled, resolved, cache="none"))
            (x, _), = features.extract(extractor, [pipeline], descriptions=["training + validation features"])
        labels = labelled.labels
        if len(x) <= x.shape[1]:
            print(f"[keras-tl] rank: {len(x):,} examples for {x.shape[1]:,} feature dimensions: the features can fit "
                  "any labelling, so LogME separates backbones less well (more labelled examples help)")
        score = transferability.logme(x, labels)
        probe = transferability.linear_probe(x, labels) if labels.ndim == 1 \
            else (None, None)
        rows.append({"backbone": candidate.backbone, "weights": _weights_name(weights),
                     "pretrained": is_pretrained(weights), "logme": score,
                     "probe_accuracy": probe[0], "probe_se": probe[1],
                     "feature_dim": int(x.shape[1]), "examples": int(len(x)),
                     "seconds": time.perf_counter() - started, "flag": ""})
        keras.backend.clear_session()
    _flag_negative_transfer(rows)
    rows.sort(key=lambda r: -r["logme"] if np.isfinite(r["logme"]) else np.inf)
    lines = table(rows)
    print("\n".join(lines))
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
    lines = [f"# Backbone ranking by LogME (higher is better; {rows[0]['examples']:,} training + validation "
             f"examples, test split unused)", "",
             "| rank | backbone | weights | LogME | linear probe accuracy (leave-one-out) | features | seconds | note |",
             "|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        probe = "n/a" if r["probe_accuracy"] is None else \
            f"{100 * r['probe_accuracy']:.1f}% ± {100 * r['probe_se']:.1f}"
        lines.append(f"| {i} | {r['backbone']} | {r['weights']} | {r['logme']:.4f} | {probe} | "
                     f"{r['feature_dim']:,} | {r['seconds']:.1f} | {r['flag']} |")
    return lines
