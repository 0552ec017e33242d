"""`auto.md`: what an `auto` run chose and why, in one page (`keras_tl.workflow.auto_run`)."""

import os

from keras_tl.workflow import head_search
from keras_tl.workflow.head_search import describe

CHOSEN_FILE = "chosen.yaml"


def write(out, state, figures):
    """`auto.md`: the ranking, every trial, the chosen config and the results, and the seconds spent."""
    stages = state["stages"]
    metrics, exported = stages["train"]["metrics"], stages["export"]
    best = stages["search"]["best"]
    lines = [
        "# keras-tl auto",
        "",
        f"Budget {state['request']['budget_seconds']:.0f} s; spent {figures['spent']:.0f} s "
        f"(x{figures['budget_overrun']:.2f}).",
        "",
        f"**Chosen:** {best['backbone']} with {describe(best['values'])}; phase 2 at "
        f"fine_tune_lr={stages['rate']['fine_tune_lr']:.2g} for {stages['train']['config']['fine_tune_epochs']} "
        f"epochs. Reproduce with `keras-tl train --config {CHOSEN_FILE} --out OTHER`.",
        "",
        f"**Test:** accuracy {100 * metrics['test_accuracy']:.1f}%, macro F1 {metrics['macro_f1']:.3f} "
        "(the search read only the training and validation splits).",
        "",
        f"**Export:** {exported['format']} at `{exported['path']}`"
        + (
            f", {exported['latency_ms_batch1']:.2f} ms batch-1 on this machine"
            if "latency_ms_batch1" in exported
            else ""
        )
        + ".",
        "",
        "## Ranking (LogME, frozen features)",
        "",
    ]
    with open(os.path.join(out, "rank.md"), encoding="utf-8") as f:
        lines += f.read().splitlines()[2:]
    lines += [
        "",
        "## Search trials (validation split; trial 0 of each backbone is the config as given)",
        "",
        "![trials](trials.png)",
        "",
        *head_search.table(stages["search"]["trials"]),
    ]
    with open(os.path.join(out, "auto.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
