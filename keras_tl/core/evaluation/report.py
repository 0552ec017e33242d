"""`report.md`: the human-readable page of a run, linking its plots."""

import os

from keras_tl.core.evaluation import operating_point


def _pct(x):
    return f"{100 * x:.1f}%"


def write_report(run_dir, config, metrics, plots, *, input_size, unit):
    """Writes `RUN_DIR/report.md` from the run's config, metrics and plot files; returns its path.

    Args:
        run_dir: str.
        config: TrainConfig. The resolved config.
        metrics: dict. As written to metrics.json (may hold "scratch" and "exports").
        plots: dict title -> PNG file name inside run_dir.
        input_size: str. What one input is, from the modality ("96px", "128 tokens").
        unit: str. What the examples are called ("images", "texts").
    """
    size = input_size
    lines = [
        f"# keras-tl run: {os.path.basename(os.path.normpath(run_dir))}",
        "",
        f"Backbone `{config.backbone}` (weights `{config.weights}`), {size}, "
        f"strategy `{config.strategy}` ({config.head_epochs} head + {config.fine_tune_epochs} fine-tune epochs, "
        f"unfreeze `{config.unfreeze}`), {metrics['train_examples']} training {unit}, "
        f"{metrics['train_seconds']} s.",
        *(["", f"Data licence: {metrics['data_licence']}."] if metrics.get("data_licence") else []),
        "",
        "## Test split",
        "",
        "| metric | value |",
        "|---|---|",
        f"| accuracy{' (all labels right)' if 'subset_accuracy' in metrics else ''}"
        f"{' (mean over heads)' if 'heads' in metrics else ''} | {_pct(metrics['accuracy'])} |",
    ]
    if "top_k_accuracy" in metrics:
        lines.append(f"| top-{metrics['top_k']} accuracy | {_pct(metrics['top_k_accuracy'])} |")
    if "threshold" in metrics:
        point = metrics.get("operating_point")
        below = f"; the operating point below decides at {point['threshold']:.4g}" if point else ""
        lines.append(f"| decision threshold of these figures | {metrics['threshold']} (the top class{below}) |")
    lines += [
        f"| macro precision | {metrics['macro_precision']:.3f} |",
        f"| macro recall | {metrics['macro_recall']:.3f} |",
        f"| macro F1 | {metrics['macro_f1']:.3f} |",
    ]
    for key, title in (
        ("weighted_f1", "weighted F1"),
        ("micro_f1", "micro F1"),
        ("hamming_accuracy", "label-wise (Hamming) accuracy"),
    ):
        if key in metrics:
            lines.append(f"| {title} | {metrics[key]:.3f} |")
    lines += [
        f"| examples | {metrics['num_examples']} |",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for name, row in metrics["per_class"].items():
        lines.append(f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |")
    if "operating_point" in metrics:
        point = metrics["operating_point"]
        ((goal, value),) = point["target"].items()
        lines += [
            "",
            f"### Operating point: {goal} {value} of `{point['positive_class']}`",
            "",
            f"Decision: {point['rule']} (chosen on the validation split"
            f"{'' if point['reached'] else '; the target was not reached there'}); `predict` and every export apply it.",
            "",
            "| split | at the threshold | positives |",
            "|---|---|---|",
            *(
                f"| {split} | {operating_point.describe(point[split])} | {point[split]['positives']} |"
                for split in ("validation", "test")
            ),
        ]
    if "heads" in metrics:
        lines += [
            "",
            "### Each head (on the test examples that label it)",
            "",
            "| head | accuracy | macro F1 | labelled examples |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {head} | {_pct(row['accuracy'])} | {row['macro_f1']:.3f} | {row['num_examples']} |"
            for head, row in metrics["heads"].items()
        ]
    scratch = metrics.get("scratch")
    if scratch:
        lines += [
            "",
            "## Transfer vs training from scratch",
            "",
            "Same architecture, same data and splits, same total epochs; the scratch model starts from "
            "random weights with everything trainable.",
            "",
            "| model | accuracy | macro F1 |",
            "|---|---|---|",
            f"| transfer | {_pct(metrics['accuracy'])} | {metrics['macro_f1']:.3f} |",
            f"| scratch | {_pct(scratch['test_accuracy'])} | {scratch['macro_f1']:.3f} |",
            f"| difference | {100 * metrics['transfer_minus_scratch']:+.1f} points | "
            f"{metrics['macro_f1'] - scratch['macro_f1']:+.3f} |",
        ]
    lines += ["", "## Plots", ""]
    for title, file in plots.items():
        shown = f"![{title}]({file})" if file.endswith(".png") else f"[{file}]({file})"
        lines += [f"### {title}", "", shown, ""]
    path = os.path.join(run_dir, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path
