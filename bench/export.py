"""Benchmark: TFLite variants and ONNX of the quickstart model vs the Keras model, and its SavedModel's size.

Prints, for float32 / float16 / dynamic-range / int8 TFLite and ONNX (ONNX Runtime): file size,
size ratio to float32 TFLite, test accuracy and its drop vs Keras, top-1 agreement with Keras (the
export's check), and batch-1 latency (median of LiteRT `invoke` / ONNX Runtime `run`) vs Keras
`predict` on one image; then the SavedModel's `variables/` bytes beside the model's parameter bytes.
The last line is `int8_size_ratio=<x>`.

    python bench/export.py [--run-dir RUNS/quickstart/transfer]

Without --run-dir it first runs the offline quickstart (about 4 minutes on 2 cores).
"""

import argparse
import json
import os
import time

import numpy as np

from keras_tl import quickstart, workflow


def keras_predict_latency_ms(model, image, repeats=30):
    x = image[None].astype(np.float32)
    model.predict(x, verbose=0)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(x, verbose=0)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-dir")
    parser.add_argument("--out", default="runs/bench_export")
    args = parser.parse_args()
    run_dir = args.run_dir
    if run_dir is None:
        quickstart.run(os.path.join(args.out, "quickstart"))
        run_dir = os.path.join(args.out, "quickstart", "transfer")
    task = workflow.load_run(run_dir)
    model, config = task.model, task.config
    with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
        keras_accuracy = json.load(f)["test_accuracy"]
    test = workflow.load_split(run_dir, "test")
    image = task.inputs(test.items[:1])[0]
    keras_ms = keras_predict_latency_ms(model, image)
    rows = []
    for quantize in ("none", "float16", "dynamic", "int8"):
        result = workflow.export_run(
            run_dir, "tflite", out=os.path.join(args.out, "exported_models"), name="quickstart", quantize=quantize
        )
        rows.append(
            (
                quantize,
                result.size_bytes,
                result.evaluation["test_accuracy"],
                result.check["top1_agreement"],
                result.evaluation["latency_ms_batch1"],
            )
        )
    onnx = workflow.export_run(run_dir, "onnx", out=os.path.join(args.out, "exported_models"), name="quickstart")
    rows.append(
        (
            "onnx",
            onnx.size_bytes,
            onnx.evaluation["test_accuracy"],
            onnx.check["top1_agreement"],
            onnx.evaluation["latency_ms_batch1"],
        )
    )
    saved = workflow.export_run(
        run_dir, "saved_model", out=os.path.join(args.out, "exported_models"), name="quickstart"
    )
    float32_size = rows[0][1]
    print(
        f"Keras model: test accuracy {keras_accuracy:.4f}, predict batch-1 {keras_ms:.2f} ms "
        f"({len(test)} test images, {config.backbone} at {config.image_size}px)"
    )
    print(
        f"{'variant':10}{'bytes':>12}{'size/f32':>10}{'accuracy':>10}{'drop pts':>10}{'agree':>8}"
        f"{'ms':>8}{'ms/keras':>10}"
    )
    for quantize, size, accuracy, agreement, ms in rows:
        print(
            f"{quantize:10}{size:>12,}{size / float32_size:>10.3f}{accuracy:>10.4f}"
            f"{100 * (keras_accuracy - accuracy):>10.2f}{agreement:>8.3f}{ms:>8.3f}{ms / keras_ms:>10.4f}"
        )
    storage = saved.check["storage"]
    print(
        f"SavedModel: variables/ {storage['variables_bytes']:,} bytes for {storage['parameter_bytes']:,} bytes of "
        f"parameters ({storage['variables_bytes'] / storage['parameter_bytes']:.3f}x), whole version {saved.size_bytes:,} bytes"
    )
    print(f"int8_size_ratio={rows[3][1] / float32_size:.3f}")


if __name__ == "__main__":
    main()
