"""Does MediaPipe Tasks' ImageClassifier run a keras-tl TFLite export as a phone app would, with the
labels keras-tl gives? Prints top-1 agreement on a run's whole test split.

Two ways to hand it the images:
- "as an app": the original image file, which MediaPipe decodes and resizes itself;
- "at model size": keras-tl's own decoded and resized uint8 image, so only the model and its
  metadata are compared.
Each against keras-tl's Keras model (`keras_tl.predict`) and against the same TFLite file run by
keras-tl with the LiteRT interpreter. Last line: `mediapipe_original_agreement=<x>`, the lowest
agreement with Keras of any file handed the original photos.

    keras-tl quickstart && python bench/mediapipe_agreement.py runs/quickstart exported_models/quickstart/tflite/*.tflite
"""

import argparse
import time

import numpy as np
import PIL.Image

from keras_tl import workflow
from keras_tl.core.export import litert


def classify(path, images):
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=path))
    rows = []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for image in images:
            if isinstance(image, str):  # as an app hands it a photo: RGB, original size
                image = np.asarray(PIL.Image.open(image).convert("RGB"))
            picture = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
            categories = classifier.classify(picture).classifications[0].categories
            rows.append([c.score for c in sorted(categories, key=lambda c: c.index)])
    return np.array(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("tflite", nargs="+")
    args = parser.parse_args()
    task = workflow.load_run(args.run_dir)
    test = workflow.load_split(args.run_dir, "test")
    keras_top = task.predict(test.items).argmax(1)
    resized = task.inputs(test.items)
    files = [item for item in test.items if isinstance(item, str)]
    print(f"{args.run_dir}: {len(test)} test items, classes {task.class_names}")
    print(
        "| TFLite file | handed to MediaPipe | agreement with Keras | agreement with keras-tl's LiteRT run | "
        "MediaPipe test accuracy | s |"
    )
    print("|---|---|---|---|---|---|")
    original = {}
    for path in args.tflite:
        litert_top = task.predict(test.items, runner=lambda x, path=path: litert.tflite_predict(path, x)).argmax(1)
        for how, images in (
            ("as an app (file)", files if len(files) == len(test) else None),
            ("at model size", resized),
        ):
            if images is None:
                continue
            started = time.perf_counter()
            top = classify(path, images).argmax(1)
            if images is files:
                original[path.rsplit("/", 1)[-1]] = float(np.mean(top == keras_top))
            print(
                f"| {path.rsplit('/', 1)[-1]} | {how} | {np.mean(top == keras_top):.3f} | "
                f"{np.mean(top == litert_top):.3f} | {np.mean(top == np.asarray(test.labels)):.3f} | "
                f"{time.perf_counter() - started:.1f} |"
            )
    print(f"Keras test accuracy: {np.mean(keras_top == np.asarray(test.labels)):.3f}")
    if original:  # The lowest agreement of any file handed the original photos, as an app does.
        worst = min(original, key=original.get)
        print(f"mediapipe_original_agreement={original[worst]:.3f} ({worst}; lowest of {len(original)} files)")


if __name__ == "__main__":
    main()
