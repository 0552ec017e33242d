"""TFLite exports carry the metadata MediaPipe Tasks reads, and MediaPipe's ImageClassifier runs them
as they are: same labels, same scores as keras-tl. Binary models give one score per class."""

import os

import numpy as np
import pytest
from conftest import local_pretrained_weights, tiny_config

from keras_tl import datasets, workflow
from keras_tl._vendor import tflite_metadata_schema as fb
from keras_tl.core.export import litert, tflite_metadata
from keras_tl.core.models.heads import per_class_model
from keras_tl.image import export as image_export
from keras_tl.text import export as text_export


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two real digit runs (binary: 0 vs 1; three classes) from pretrained-like weights."""
    tmp = tmp_path_factory.mktemp("metadata_runs")
    weights = local_pretrained_weights(tmp)
    made = {}
    for name, digits in (("binary", [0, 1]), ("multiclass", [0, 1, 2])):
        config = tiny_config(
            tmp,
            weights=weights,
            head_epochs=3,
            fine_tune_epochs=1,
            head_lr=5e-3,
            fine_tune_lr=1e-4,
            out=str(tmp / name),
        )
        workflow.train(config, datasets.load_digits(digits))
        made[name] = str(tmp / name)
    return made


def _mediapipe_scores(path, images):
    """MediaPipe Tasks' ImageClassifier on uint8 RGB images: `(scores (N, C) by label index, top-1 names)`."""
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=path))
    with vision.ImageClassifier.create_from_options(options) as classifier:
        answers = [
            classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
            for image in images
        ]
    categories = [a.classifications[0].categories for a in answers]
    scores = np.array([[c.score for c in sorted(row, key=lambda c: c.index)] for row in categories])
    return scores, [row[0].category_name for row in categories]


def test_metadata_is_read_back_and_leaves_the_outputs_unchanged(runs, tmp_path):
    task = workflow.load_run(runs["multiclass"])
    result = workflow.export_run(runs["multiclass"], "tflite", out=str(tmp_path))
    with open(result.path, "rb") as f:
        exported = f.read()
    metadata, files = tflite_metadata.read(exported)
    assert metadata.name.decode() == "multiclass" and b"3 classes (0, 1, 2)" in metadata.description
    assert metadata.minParserVersion == b"1.0.0"
    (subgraph,) = metadata.subgraphMetadata
    (image,) = subgraph.inputTensorMetadata
    assert image.content.contentPropertiesType == fb.ContentProperties.ImageProperties
    assert image.content.contentProperties.colorSpace == fb.ColorSpaceType.RGB
    (normalization,) = image.processUnits
    assert list(normalization.options.mean) == [0.0] and list(normalization.options.std) == [1.0]
    (scores,) = subgraph.outputTensorMetadata
    assert scores.associatedFiles[0].type == fb.AssociatedFileType.TENSOR_AXIS_LABELS
    assert files == {"labels.txt": b"0\n1\n2\n"}

    bare = str(tmp_path / "bare.tflite")  # The same conversion without metadata: identical outputs.
    per_class_model(task.model).export(
        bare, format="litert", verbose=False, input_signature=[task.modality.tflite_signature(task)]
    )
    assert tflite_metadata.read(open(bare, "rb").read()) == (None, {})
    images = task.inputs(workflow.load_split(runs["multiclass"], "test").items[:8])
    np.testing.assert_array_equal(litert.tflite_predict(result.path, images), litert.tflite_predict(bare, images))

    again = tflite_metadata.populate(
        exported,
        tflite_metadata.metadata_buffer(
            tflite_metadata.About("renamed", "x"),
            inputs=tflite_metadata.Inputs([image_export.tflite_input(32)]),
            outputs=[tflite_metadata.scores_output(["a", "b", "c"])],
        ),
        {"labels.txt": b"a\nb\nc\n"},
    )
    metadata, files = tflite_metadata.read(again)  # Populating twice replaces, never stacks.
    assert metadata.name == b"renamed" and files == {"labels.txt": b"a\nb\nc\n"}
    with pytest.raises(ValueError, match="Not a TFLite flatbuffer"):
        tflite_metadata.populate(b"\0" * 16, b"", {})


def test_a_binary_export_gives_one_score_per_class(runs, tmp_path):
    task = workflow.load_run(runs["binary"])
    assert task.model.output.shape[-1] == 1  # Training keeps one sigmoid.
    result = workflow.export_run(runs["binary"], "tflite", out=str(tmp_path))
    interpreter = litert.load(result.path)
    assert list(interpreter.get_output_details()[0]["shape"]) == [1, 2]
    images = task.inputs(workflow.load_split(runs["binary"], "test").items[:16])
    p = task.model.predict(images.astype("float32"), verbose=0)[:, 0]
    np.testing.assert_allclose(litert.tflite_predict(result.path, images), np.stack([1 - p, p], 1), atol=1e-4)


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
@pytest.mark.parametrize("quantize,int8_io", [("none", False), ("int8", False), ("int8", True)])
def test_mediapipe_image_classifier_runs_the_export_as_it_is(runs, tmp_path, kind, quantize, int8_io):
    run_dir = runs[kind]
    task = workflow.load_run(run_dir)
    result = workflow.export_run(
        run_dir, "tflite", out=str(tmp_path), quantize=quantize, int8_io=int8_io, min_agreement=0.6
    )  # A 4-epoch model: int8 may move near-ties.
    test = workflow.load_split(run_dir, "test")
    images = task.inputs(test.items)
    scores, names = _mediapipe_scores(result.path, images)
    assert scores.shape == (len(test), len(task.class_names))  # A label per score, binary included.
    runtime = task.predict(test.items, runner=lambda x: litert.tflite_predict(result.path, x))
    assert names == [task.class_names[i] for i in scores.argmax(1)]
    assert np.mean(scores.argmax(1) == runtime.argmax(1)) >= 0.98
    # int8: MediaPipe's kernels (XNNPACK) and the interpreter's may round an output one step (1/256) apart.
    np.testing.assert_allclose(scores, runtime, atol=2e-2 if int8_io else 8e-3 if quantize == "int8" else 1e-4)
    if quantize == "none":
        assert np.mean(scores.argmax(1) == task.predict(test.items).argmax(1)) >= 0.98
    assert os.path.isfile(os.path.join(os.path.dirname(result.path), "labels.txt"))


def test_bert_inputs_follow_the_interpreter_order_and_need_a_lowercasing_wordpiece():
    details = [
        {"name": f"serving_default_{n}:0", "shape": np.array([1, 16])}
        for n in ("segment_ids", "token_ids", "padding_mask")
    ]
    bert = text_export.tflite_bert_inputs(details, ["[PAD]", "cat"], lowercase=True)
    assert [t.name for t in bert.tensors] == ["segment_ids", "ids", "mask"]
    assert bert.process_units[0].optionsType == fb.ProcessUnitOptions.BertTokenizerOptions
    assert bert.files == {"vocab.txt": b"[PAD]\ncat\n"}
    blob = tflite_metadata.metadata_buffer(
        tflite_metadata.About("t", "d"), inputs=bert, outputs=[tflite_metadata.scores_output(["a", "b"])]
    )
    parsed = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAsModelMetadata(blob, 0))
    assert parsed.minParserVersion == b"1.1.0"  # BertTokenizerOptions came with schema 1.1.0
    assert text_export.tflite_bert_inputs(details, ["[PAD]"], lowercase=False) is None  # MediaPipe lower-cases
    assert text_export.tflite_bert_inputs(details[1:], ["[PAD]"], lowercase=True) is None  # no segment ids


def test_mediapipe_given_the_original_images_agrees_with_keras(runs, tmp_path):
    """An app hands MediaPipe the photo as it is and MediaPipe resizes it to the model's input; keras-tl
    resizes the same way (bilinear, no antialiasing, no half-pixel centres) in training and `predict`,
    so the labels and scores an app gets are the ones keras-tl measured. Originals here: the test
    digits at 96 px with detail to lose (smooth, then noise), three times the model's 32 px; with
    TensorFlow's default resize (half-pixel centres) 58% of the labels agreed, antialiased 44%."""
    from PIL import Image

    run_dir = runs["multiclass"]
    task = workflow.load_run(run_dir)
    result = workflow.export_run(run_dir, "tflite", out=str(tmp_path))
    small = task.inputs(workflow.load_split(run_dir, "test").items)
    rng = np.random.default_rng(0)
    paths, originals = [], []
    for i, image in enumerate(small):
        big = np.asarray(Image.fromarray(image).resize((96, 96), Image.BICUBIC), np.float32)
        big = np.clip(big + rng.normal(0, 40, big.shape), 0, 255).astype(np.uint8)
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(big).save(paths[-1])
        originals.append(big)
    keras_scores = task.predict(paths)
    scores, _ = _mediapipe_scores(result.path, originals)
    assert np.mean(scores.argmax(1) == keras_scores.argmax(1)) == 1.0
    np.testing.assert_allclose(scores, keras_scores, atol=1e-3)
