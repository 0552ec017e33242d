"""`auto`: from labelled data to a checked, exported model in one call, under a time budget.

The steps a careful practitioner takes, in order, each recorded in `auto.json` when it ends (a killed
`auto` resumes after the last one it finished, and its search after the last finished trial):

1. rank: LogME on one pass of frozen features, for every candidate with weights here and its
   random-weight twin (`keras_tl.rank`); the best `top` that beat their twin go on.
2. screen (only with `max_latency_ms`): each candidate exported to the target untrained, its batch-1
   latency measured in the target's runtime; slower candidates are dropped.
3. search: per candidate, the head on cached backbone features (KerasTuner's Bayesian optimization;
   a trial is phase 1 as `train` runs it, on the same features, and costs seconds). The first trial
   is the config as given, so the search can only improve on it on the validation split.
4. rate: the range test for phase 2 (`lr_find(phase="fine_tune")`), kept within 10x of the
   modality's own rate (phase 2 stays a low rate).
5. train: `keras_tl.train` on the chosen config (`chosen.yaml`, which `keras-tl train --config`
   reproduces), with as many phase-2 epochs as the budget left pays for.
6. export: to the target, checked against Keras, its batch-1 latency measured.

Modality-agnostic: the data, the backbones, the pipelines and the exports are the plug-ins'.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import TYPE_CHECKING

import keras
import numpy as np

from keras_tl.core.contract import registry
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.contract.errors import ConfigError, RunExistsError
from keras_tl.core.train import lr_finder
from keras_tl.core.utils import quiet
from keras_tl.core.utils.log import log
from keras_tl.workflow import auto_report, head_search, stage_costs
from keras_tl.workflow import rundir as run
from keras_tl.workflow.auto_report import CHOSEN_FILE
from keras_tl.workflow.checks import AUTO_STATE, check_auto, prepare, resolve_config
from keras_tl.workflow.head_search import describe

if TYPE_CHECKING:
    from keras_tl.core.data import Source

STATE_FILE = AUTO_STATE
CLOCK_FILE = "clock.json"  # the seconds spent, written every 2 s (a kill mid-stage still counts)
MODEL_DIR = "model"
RANK_EXAMPLES = 2000  # rank scores at most this many training + validation examples (drawn per class)


@dataclasses.dataclass
class AutoResult:
    """What `auto` returns.

    Attributes:
        run_dir: str. `auto.md`, `auto.json`, `chosen.yaml`, `rank.md`, `trials.png`, `search/`,
            `model/` (the trained run) and `exports/`.
        chosen: TrainConfig. The chosen config (`chosen.yaml`).
        metrics: dict. The trained run's test metrics.
        export: dict. The export's record: format, path, check, latency.
        trials: list of dict. Every search trial: backbone, values, validation accuracy and score, seconds.
        seconds: float. Wall-clock seconds of this call (and of earlier interrupted calls, `spent`).
        budget: float. The budget in seconds.
    """

    run_dir: str
    chosen: TrainConfig
    metrics: dict
    export: dict
    trials: list
    seconds: float
    budget: float


@quiet.tensorflow_started
def auto(
    config: TrainConfig,
    source: Source | None = None,
    *,
    budget: float | str = "10m",
    target: str = "tflite",
    max_latency_ms: float | None = None,
    backbones: list[str] | None = None,
    top: int = 2,
    max_trials: int = 30,
    overwrite: bool = False,
) -> AutoResult:
    """Ranks backbones, searches the head on cached features, fine-tunes and exports, in `budget`.

    Args:
        config: TrainConfig. Its data, split, seed, sizes and every setting the search leaves alone
            are used; `backbone` is chosen here; `out` receives the run directory (see `AutoResult`).
        source: a source from Python. Defaults to reading `config.data`.
        budget: seconds, or "600s", "10m", "1h". The whole call's wall-clock budget (at least 30 s).
            The plan is sized to it from measured costs; the last trial or epoch may run past it.
        target: str. "tflite", "saved_model" or "onnx": the export, checked against Keras.
        max_latency_ms: float. Keep only backbones whose exported artifact answers one example in at
            most this many milliseconds on this machine (measured). Defaults to no limit.
        backbones: list of str. The candidates. Defaults to every backbone of the data's modality whose
            weights are here (`keras-tl backbones --offline`).
        top: int. How many of the best-ranked candidates get a head search. Defaults to 2.
        max_trials: int. At most this many search trials per candidate. Defaults to 30.
        overwrite: bool. Replace an `auto` run already in `config.out`. Without it, the same request
            resumes an unfinished run, and a finished one is reported.

    Returns:
        An `AutoResult`.

    Example:
    >>> result = keras_tl.auto(keras_tl.TrainConfig(data="photos/", image_size=96, out="runs/auto"), budget="10m")
    >>> print(result.metrics["test_accuracy"], result.export["path"])
    """
    asked = dict(budget=budget, target=target, max_latency_ms=max_latency_ms, top=top, backbones=backbones)
    seconds, candidates, modality_name = check_auto(config, **asked, max_trials=max_trials, source=source)
    config = dataclasses.replace(config, modality=modality_name, backbone=candidates[0])
    request = {
        "config": config.to_dict(),
        "budget_seconds": seconds,
        "target": target,
        "max_latency_ms": max_latency_ms,
        "backbones": candidates,
        "top": top,
        "max_trials": max_trials,
    }
    if source is not None:  # A source from Python: resume only on the same data (chosen.yaml has no `data`).
        request["source"] = _fingerprint(source)
    with run.hold(config.out, marker=STATE_FILE):
        state = run.open_stages(config.out, STATE_FILE, request, overwrite=overwrite, last="report", report="auto.md")
        clock_file = os.path.join(config.out, CLOCK_FILE)
        spent = max(state["spent"], stage_costs.Clock.read(clock_file))
        with stage_costs.Clock(seconds, spent).recorded(clock_file) as clock:
            return _Auto(config, source, request, state, clock).run()


def _fingerprint(source):
    """What identifies a source from Python: its classes, its size and a digest of its labels."""
    import hashlib

    labels = np.ascontiguousarray(source.labels)
    return {
        "classes": list(source.class_names),
        "items": len(source.labels),
        "labels_sha256": hashlib.sha256(labels.tobytes() + str(labels.dtype).encode()).hexdigest()[:16],
    }


class _Auto:
    """One `auto` run: its stages in order, each skipped when `auto.json` has it."""

    def __init__(self, config, source, request, state, clock):
        self.config, self.request, self.state, self.clock = config, request, state, clock
        self.out = config.out
        self.modality, _, self.source, self.splits, self.resolved = prepare(config, source)
        if self.resolved.problem == "multitask":
            raise ConfigError(
                "`auto` searches single-head classifiers; the data has several heads ('head:class' labels): "
                "train it with `train`. Received: problem='multitask'"
            )
        self.stages = state["stages"]

    def save(self, stage, value):
        self.stages[stage] = value
        self.state["spent"] = round(self.clock.spent(), 1)
        run.write_json(self.out, STATE_FILE, self.state)

    def run(self):
        budget = self.clock.budget
        log.info(
            f"auto plan ({budget:.0f} s budget): rank {len(self.request['backbones'])} backbone(s) and their random "
            f"twins on at most {RANK_EXAMPLES:,} examples; "
            + (
                f"screen the best {self.request['top']} for {self.request['max_latency_ms']:g} ms; "
                if self.request["max_latency_ms"]
                else ""
            )
            + f"search the head of the best {min(self.request['top'], len(self.request['backbones']))} on cached features (up to "
            f"{self.request['max_trials']} trials each, in the time the later stages leave); a phase-2 range test "
            f"(20-{stage_costs.RANGE_TEST_STEPS} batches); the two-phase run; the {self.request['target']} export. Costs are "
            "measured as it goes, and printed before each stage."
        )
        ranked = self.stage("rank", self.rank)
        kept = self.stage("screen", lambda: self.screen(ranked)) if self.request["max_latency_ms"] else ranked
        search = self.stage("search", lambda: self.search(kept, ranked))
        rate = self.stage("rate", lambda: self.rate(search, ranked))
        trained = self.stage("train", lambda: self.train(search, rate, ranked))
        exported = self.stage("export", lambda: self.export())
        self.stage("report", lambda: self.report(search))
        return self.result(search, trained, exported)

    def stage(self, name, work):
        if name in self.stages:
            log.info(f"auto: {name} finished before ({STATE_FILE}); not run again")
            return self.stages[name]
        started = time.perf_counter()
        result = work()
        log.info(
            f"auto: {name} done in {time.perf_counter() - started:.1f} s ({self.clock.left():.0f} s of the budget left)"
        )
        self.save(name, result)
        return result

    # 1. rank ------------------------------------------------------------------------------------
    def rank(self):
        from keras_tl.workflow.ranking import rank

        log.info(f"auto [1/6] rank: {', '.join(self.request['backbones'])}")
        rows = rank(self.config, self.request["backbones"], self.source, out=self.out, max_examples=RANK_EXAMPLES)
        pretrained = [r for r in rows if r["pretrained"]]
        beating = [r for r in pretrained if not r["flag"]]
        if not beating:
            log.info("auto: no backbone's features beat its random twin's (negative transfer?); going on with the best")
        eligible = beating or pretrained  # In rank order; the screen goes down it.
        for row in eligible:  # What later stages are planned with: building the model, and a pass per example.
            row["build_seconds"] = row["seconds"] - row["pass_seconds"]
            row["seconds_per_example"] = row["pass_seconds"] / max(1, row["examples"])
        return {"rows": rows, "eligible": eligible, "kept": eligible[: self.request["top"]]}

    # 2. screen ----------------------------------------------------------------------------------
    def screen(self, ranked):
        limit = self.request["max_latency_ms"]
        log.info(
            f"auto [2/6] screen: batch-1 latency of each candidate's {self.request['target']} export, at most {limit:g} ms"
        )
        kept, measured = [], {}
        for row in ranked["eligible"]:  # In rank order, until `top` candidates answer in time.
            if len(kept) == self.request["top"]:
                break
            backbone = row["backbone"]
            measured[backbone] = latency = stage_costs.untrained_latency_ms(
                self.modality,
                registry.get(backbone, modality=self.modality.name),
                self.candidate_config(backbone),
                self.source.class_names,
                self.splits["val"],
                self.request["target"],
            )
            verdict = "kept" if latency <= limit else "dropped"
            log.info(f"auto: {row['backbone']} {latency:.2f} ms batch-1 ({self.request['target']}): {verdict}")
            if latency <= limit:
                kept.append({**row, "latency_ms": latency})
        if not kept:
            raise ConfigError(
                f"No candidate answers within max_latency_ms={limit:g} on this machine "
                f"(measured: {', '.join(f'{k} {v:.1f} ms' for k, v in measured.items())}). Raise the limit or "
                "name smaller backbones."
            )
        return {**ranked, "kept": kept, "latency_ms": measured}

    def candidate_config(self, backbone):
        return resolve_config(
            dataclasses.replace(self.config, backbone=backbone),
            self.modality,
            registry.get(backbone, modality=self.modality.name),
            self.resolved.problem,
            train_size=len(self.splits["train"]),
        )

    # 3. search ----------------------------------------------------------------------------------
    def search(self, kept, ranked):
        rows = kept["kept"]
        slowest = max(rows, key=lambda r: (r["seconds_per_example"], r["build_seconds"]))
        cost = stage_costs.costs(slowest, self.splits, self.config.batch_size, self.clock.budget)
        epochs = self.config.fine_tune_epochs if self.config.strategy == "two_phase" else 0
        range_test = cost["range_test"] if epochs and not self.rate_given() else 0.0
        later = stage_costs.SAFETY * (range_test + cost["train"] + epochs * cost["epoch"]) + cost["export"]
        window = max(0.1 * self.clock.budget, self.clock.left() - later)
        log.info(
            f"auto plan, from the rank pass's measured speed ({slowest['backbone']}): head search {window:.0f} s; "
            f"phase-2 range test ~{stage_costs.SAFETY * range_test:.0f} s; the run ~"
            f"{stage_costs.SAFETY * (cost['train'] + epochs * cost['epoch']):.0f} s ({epochs} phase-2 epochs at "
            f"~{stage_costs.SAFETY * cost['epoch']:.0f} s); export <= {cost['export']:.0f} s"
        )
        log.info(f"auto [3/6] search: {', '.join(r['backbone'] for r in rows)}")
        deadline = time.perf_counter() + window
        results = {}
        for i, row in enumerate(rows):
            share = (deadline - time.perf_counter()) / (len(rows) - i)
            backbone = row["backbone"]
            results[backbone] = head_search.search(
                self.candidate_config(backbone),
                registry.get(backbone, modality=self.modality.name),
                self.modality,
                self.splits,
                self.source.class_names,
                os.path.join(self.out, "search", backbone.replace("/", "_")),
                deadline=time.perf_counter() + share,
                max_trials=self.request["max_trials"],
            )
        best = max(results.values(), key=lambda r: r["score"])
        log.info(
            f"auto: chosen {best['backbone']} with {describe(best['values'])} (validation accuracy "
            f"{100 * best['val_accuracy']:.1f}%; the config as given: {100 * best['first_val_accuracy']:.1f}%)"
        )
        trials = [t for r in results.values() for t in r["trials"]]
        return {
            "best": best,
            "candidates": {k: {**v, "trials": len(v["trials"])} for k, v in results.items()},
            "trials": trials,
        }

    # 4. rate ------------------------------------------------------------------------------------
    def rate(self, search, ranked):
        from keras_tl.workflow.rate_finder import lr_find

        best = search["best"]
        chosen = self.chosen_config(best, fine_tune_lr="auto", fine_tune_epochs=self.config.fine_tune_epochs)
        default = self.config.fine_tune_lr if self.rate_given() else self.modality.default_fine_tune_lr
        if chosen.strategy != "two_phase" or not chosen.fine_tune_epochs or self.rate_given():
            return {"fine_tune_lr": default, "found": None, "default": default}
        row = next(r for r in ranked["kept"] if r["backbone"] == best["backbone"])
        steps = stage_costs.costs(row, self.splits, self.config.batch_size, self.clock.budget)["range_test_steps"]
        log.info(f"auto [4/6] rate: the phase-2 range test of {best['backbone']} ({steps} batches)")
        started = time.perf_counter()
        found = lr_find(
            chosen, self.source, phase="fine_tune", steps=steps, png=os.path.join(self.out, "lr_find_fine_tune.png")
        )
        seconds = time.perf_counter() - started
        keras.backend.clear_session()
        # The head is trained, so the loss starts low and its steepest fall is noise at the smallest rates:
        # a tenth of the rate at the lowest loss (fastai's `minimum`). The modality's rate (the Keras guide's,
        # BERT's) is the floor, a sweep of a few batches can raise it up to 10x.
        suggested = lr_finder.minimum_over_ten(found["rates"], found["losses"])
        rate = float(np.clip(suggested, default, default * 10))
        log.info(
            f"auto: phase 2 takes a tenth of the rate at the lowest loss ({10 * suggested:.2g}), between the "
            f"modality's {default:g} and 10x it: fine_tune_lr={rate:.2g}"
        )
        return {"fine_tune_lr": rate, "found": suggested, "default": default, "seconds": seconds}

    def rate_given(self):
        """A `fine_tune_lr` number in the config is kept: no range test."""
        return self.config.fine_tune_lr not in ("auto", "find")

    # 5. train -----------------------------------------------------------------------------------
    def train(self, search, rate, ranked):
        from keras_tl.workflow.training_run import train

        best = search["best"]
        if "chosen" in self.state:  # Chosen before a kill: the run in model/ resumes with this same config.
            chosen = TrainConfig.from_dict(self.state["chosen"])
            log.info(f"auto [5/6] train: {chosen.backbone}, resuming with {os.path.join(self.out, CHOSEN_FILE)}")
            return self.run_training(train, chosen)
        row = next(r for r in ranked["eligible"] if r["backbone"] == best["backbone"])
        cost = stage_costs.costs(row, self.splits, self.config.batch_size, self.clock.budget)
        # The range test measured what the rank pass predicted: scale the plan by it; phase 1 as the trials took.
        scale = float(np.clip(rate["seconds"] / cost["range_test"], 0.5, 4.0)) if rate.get("seconds") else 1.0
        phase1 = max(t["seconds"] for t in search["trials"] if t["backbone"] == best["backbone"])
        fixed = stage_costs.SAFETY * (scale * cost["train"] + phase1) + cost["export"]
        epoch = stage_costs.SAFETY * scale * cost["epoch"]
        affordable = max(0, int((self.clock.left() - fixed) / max(epoch, 1e-9)))
        epochs = min(self.config.fine_tune_epochs, affordable)
        if epochs < self.config.fine_tune_epochs and self.config.strategy == "two_phase":
            log.info(
                f"auto: the budget left ({self.clock.left():.0f} s) pays for {epochs} of {self.config.fine_tune_epochs} "
                f"phase-2 epochs (about {epoch:.0f} s each)"
            )
        chosen = self.chosen_config(best, fine_tune_lr=rate["fine_tune_lr"], fine_tune_epochs=epochs)
        chosen.save(os.path.join(self.out, CHOSEN_FILE))
        self.state["chosen"] = chosen.to_dict()
        run.write_json(self.out, STATE_FILE, self.state)
        log.info(f"auto [5/6] train: {chosen.backbone}, chosen config in {os.path.join(self.out, CHOSEN_FILE)}")
        if self.request.get("source"):
            log.info(f"auto: the data came from Python, so {CHOSEN_FILE} has no `data`: set it to reproduce the run")
        return self.run_training(train, chosen)

    def run_training(self, train, chosen):
        try:
            result = train(chosen, self.source)
            metrics = result.metrics
        except RunExistsError as error:  # Finished by an earlier call that was killed before recording it.
            if not error.finished:
                raise
            metrics = run.read_json(chosen.out, "metrics.json")
        keras.backend.clear_session()
        keep = ("test_accuracy", "macro_f1", "train_seconds", "phase_seconds")
        return {"config": chosen.to_dict(), "metrics": {k: metrics[k] for k in keep if k in metrics}}

    def chosen_config(self, best, *, fine_tune_lr, fine_tune_epochs):
        values = {
            **self.config.to_dict(),
            **best["values"],
            "backbone": best["backbone"],
            "fine_tune_lr": fine_tune_lr,
            "fine_tune_epochs": fine_tune_epochs,
            "out": os.path.join(self.out, MODEL_DIR),
        }
        if not fine_tune_epochs and values["strategy"] == "two_phase":
            values["strategy"] = "feature_extraction"
        return TrainConfig.from_dict(values)

    # 6. export ----------------------------------------------------------------------------------
    def export(self):
        from keras_tl.workflow.runs import artifact_latency_ms, export_run

        target = self.request["target"]
        log.info(f"auto [6/6] export: {target}, checked against Keras")
        model_dir = os.path.join(self.out, MODEL_DIR)
        result = export_run(model_dir, target, out=os.path.join(self.out, "exports"), name="auto")
        latency = (result.evaluation or {}).get("latency_ms_batch1")
        if latency is None:  # A SavedModel: its signature, timed as TensorFlow Serving would run it.
            latency = artifact_latency_ms(
                target, result.path, run.load_classifier(model_dir), run.load_split(model_dir, "test").items[:1]
            )
        limit = self.request["max_latency_ms"]
        if limit and latency is not None and latency > limit:
            log.info(
                f"auto: the trained export answers in {latency:.2f} ms, over the {limit:g} ms asked (machine load?)"
            )
        return {
            "format": target,
            "path": result.path,
            "size_bytes": result.size_bytes,
            "check": result.check,
            **({"latency_ms_batch1": latency} if latency is not None else {}),
            **({k: v for k, v in result.evaluation.items() if k != "latency_ms_batch1"} if result.evaluation else {}),
        }

    def report(self, search):
        """auto.md and trials.png; the last stage, so a kill before it ends leaves the run unfinished."""
        from keras_tl.core.evaluation import plots

        plots.search_trials(search["trials"], os.path.join(self.out, "trials.png"))
        spent = self.clock.spent()
        figures = {"spent": round(spent, 1), "budget_overrun": round(spent / self.clock.budget, 3)}
        auto_report.write(self.out, self.state, figures)
        return figures

    def result(self, search, trained, exported):
        metrics, figures = trained["metrics"], self.stages["report"]
        log.info(
            f"auto: {trained['config']['backbone']} test accuracy {metrics['test_accuracy']:.4f}, "
            f"{exported['format']} {exported['path']}"
            + (f" ({exported['latency_ms_batch1']:.2f} ms batch-1)" if "latency_ms_batch1" in exported else "")
            + f"; {figures['spent']:.0f} s of the {self.clock.budget:.0f} s budget; report "
            f"{os.path.join(self.out, 'auto.md')}"
        )
        return AutoResult(
            self.out,
            TrainConfig.from_dict(trained["config"]),
            metrics,
            exported,
            search["trials"],
            figures["spent"],
            self.clock.budget,
        )
