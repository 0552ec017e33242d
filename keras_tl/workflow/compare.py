"""Rank several backbones under one config and budget: a table and an accuracy-vs-latency plot."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from keras_tl.core.contract import modality as modalities
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.evaluation import plots
from keras_tl.core.export import formats as export
from keras_tl.core.utils import quiet
from keras_tl.core.utils.log import log
from keras_tl.workflow import rundir as run
from keras_tl.workflow.checks import check_config, check_top
from keras_tl.workflow.ranking import rank
from keras_tl.workflow.runs import export_run
from keras_tl.workflow.training_run import train

if TYPE_CHECKING:
    from keras_tl.core.data import Source


@quiet.tensorflow_started
def compare_backbones(
    config: TrainConfig,
    names: Sequence[str],
    source: Source | None = None,
    *,
    overwrite: bool = False,
    top: int | None = None,
) -> list[dict]:
    """Trains each backbone under one config and budget; writes a ranked table and a Pareto plot.

    Every config is checked before the first one trains; each trained model is exported to float32
    TFLite (checked against Keras) for its size and batch-1 latency. Works for any modality
    (all backbones must be of one).

    Args:
        config: TrainConfig. Shared by every backbone; `config.out` receives one run directory per
            backbone plus `compare.md`, `compare.json` and `pareto.png`.
        names: list of str. Backbone names (at least 2).
        source: a source from Python. Defaults to reading `config.data`.
        overwrite: bool. Replace runs already in `config.out/<backbone>`. Defaults to False.
        top: int. Rank `names` first (`keras_tl.rank`: LogME on frozen features, seconds per
            backbone) and fine-tune only the `top` best (at most all of them). Defaults to fine-tuning all,
            unranked.

    Returns:
        The table rows, best test accuracy first (ties: lower Keras latency first).

    Example:
    >>> rows = keras_tl.compare_backbones(config, ["mobilenet_v2", "efficientnet_b0"])
    """
    check_top(names, top)
    configs = [
        TrainConfig.from_dict({**config.to_dict(), "backbone": n, "out": os.path.join(config.out, n.replace("/", "_"))})
        for n in names
    ]
    kinds = {n: modalities.of(c, source).name for n, c in zip(names, configs)}
    if len(set(kinds.values())) > 1:
        raise ConfigError(f"`compare` ranks backbones of one modality. Received: {kinds}")
    checked = [check_config(c, source) for c in configs]  # Every config, before the first one trains.
    if source is None:
        source = checked[0][0].load_source(config)
    if top is not None:
        ranked = rank(config, names, source, random_twins=False, out=config.out)
        kept = [r["backbone"] for r in ranked[:top]]
        log.info(f"compare --top {top}: fine-tuning {kept} (best LogME of {len(names)})")
        configs = [c for c in configs if c.backbone in kept]
    rows = []
    for c in configs:
        result = train(c, source, overwrite=overwrite)
        exported = export_run(result.run_dir, "tflite", out=os.path.join(result.run_dir, "exports"))
        sample = result.classifier.inputs(run.load_split(result.run_dir, "test").items[:1])
        rows.append(
            {
                "backbone": c.backbone,
                "test_accuracy": result.metrics["test_accuracy"],
                "macro_f1": result.metrics["macro_f1"],
                "params": int(result.model.count_params()),
                "model_mb": exported.size_bytes / 2**20,
                "keras_mb": os.path.getsize(os.path.join(result.run_dir, run.MODEL_FILE)) / 2**20,
                "keras_latency_ms": export.keras_latency_ms(result.model, sample),
                "tflite_latency_ms": exported.evaluation["latency_ms_batch1"],
                "train_seconds": result.metrics["train_seconds"],
            }
        )
    rows.sort(key=lambda r: (-r["test_accuracy"], r["keras_latency_ms"]))
    os.makedirs(config.out, exist_ok=True)
    run.write_json(config.out, "compare.json", rows)
    plots.pareto(rows, os.path.join(config.out, "pareto.png"))
    header = (
        "| rank | backbone | test accuracy | macro F1 | parameters | TFLite MB | .keras MB | "
        "Keras batch-1 ms | TFLite batch-1 ms | training s |"
    )
    lines = [
        f"# Backbone comparison ({config.image_size or 'default'}px, {config.head_epochs} + "
        f"{config.fine_tune_epochs} epochs, weights `{config.weights}`)",
        "",
        header,
        "|" + "---|" * 10,
    ]
    for position, r in enumerate(rows, 1):
        lines.append(
            f"| {position} | {r['backbone']} | {100 * r['test_accuracy']:.1f}% | {r['macro_f1']:.3f} | "
            f"{r['params']:,} | {r['model_mb']:.2f} | {r['keras_mb']:.2f} | {r['keras_latency_ms']:.2f} | "
            f"{r['tflite_latency_ms']:.2f} | {r['train_seconds']:.0f} |"
        )
    lines += ["", "![accuracy vs latency](pareto.png)", ""]
    with open(os.path.join(config.out, "compare.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    log.info("\n".join(lines[2:-2]))
    return rows
