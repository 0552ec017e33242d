"""What `auto`'s stages cost: the time budget (a clock that counts earlier, interrupted calls) and the
stages planned from measured speeds; the latency budget (an untrained export, timed in its runtime)."""

import contextlib
import json
import math
import os
import tempfile
import threading
import time

import keras
import numpy as np

from keras_tl.core.models.classifier import Classifier

RANGE_TEST_STEPS = 100
EXPORT_RESERVE = (20.0, 0.05)  # seconds kept for the export: at least 20 s, or 5% of the budget
SAFETY = 1.25  # measured stage costs are multiplied by this when planning


class Clock:
    """The budget: seconds spent by earlier (interrupted) calls count against it."""

    def __init__(self, budget, spent):
        self.budget = budget
        self.started = time.perf_counter() - spent

    def spent(self):
        return time.perf_counter() - self.started

    def left(self):
        return self.budget - self.spent()

    @contextlib.contextmanager
    def recorded(self, path, every=2.0):
        """Writes the seconds spent to `path` (JSON) every `every` seconds while the block runs, so the
        time of a call killed mid-stage counts against the budget when it resumes (`read`)."""
        stop = threading.Event()

        def write():
            tmp = f"{path}.tmp{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"spent": round(self.spent(), 1)}, f)
            os.replace(tmp, path)

        def beat():
            while not stop.wait(every):
                write()

        thread = threading.Thread(target=beat, name="keras_tl_clock", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
            write()

    @staticmethod
    def read(path):
        """The seconds a `recorded` clock last wrote to `path` (0 when there is none)."""
        try:
            with open(path, encoding="utf-8") as f:
                return float(json.load(f)["spent"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0


def costs(row, splits, batch_size, budget):
    """Planned seconds of the stages after the search, from the rank pass's measured speed (`row`:
    "build_seconds", "seconds_per_example"): building the model (and tracing it) once per stage, a
    training step at about 3 forward passes an example, one phase-2 epoch, the range test (its steps
    sized to a tenth of the budget, 20 to 100), and the export's reserve."""
    per_example, build = row["seconds_per_example"], row["build_seconds"]
    n_train, n_val, n_test = (len(splits[s]) for s in ("train", "val", "test"))
    step = 3 * per_example * batch_size
    steps = int(np.clip(0.1 * budget / max(step, 1e-9), 20, RANGE_TEST_STEPS))
    return {
        "range_test_steps": steps,
        "range_test": 2 * build + steps * step + (n_train + n_val) * per_example,
        "train": 2 * build + (n_train + n_val + n_test) * per_example,
        "epoch": math.ceil(n_train / batch_size) * step + n_val * per_example,
        "export": max(EXPORT_RESERVE[0], EXPORT_RESERVE[1] * budget),
    }


def untrained_latency_ms(modality, spec, config, class_names, split, target):
    """Batch-1 latency of a backbone's classifier exported to `target`, untrained: a trained head changes
    no shape, so it answers as fast. Timed in the target's runtime on the first item of `split`."""
    from keras_tl.core.export import formats as export
    from keras_tl.workflow.runs import artifact_latency_ms

    classifier = Classifier.build(modality, spec, config, len(class_names), class_names)
    items = split.subset(np.arange(min(2, len(split)))).items
    info = export.ExportInfo(name="latency", class_names=class_names, check_items=items, min_agreement=0.0)
    with tempfile.TemporaryDirectory(prefix="keras_tl_latency_") as folder:
        result = export.FORMATS[target](classifier, os.path.join(folder, "model"), info)
        latency = artifact_latency_ms(target, result.path, classifier, items[:1])
    keras.backend.clear_session()
    return latency
