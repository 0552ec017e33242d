"""Every export format round-trips and agrees with Keras; SavedModel versions are atomic."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import fake_tf_serving, local_grpc_serving, local_pretrained_weights, tiny_config

import keras_tl
from keras_tl import datasets, workflow
from keras_tl.cli import main
from keras_tl.core.export import formats as export
from keras_tl.core.export import litert, serving


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export_run")
    weights = local_pretrained_weights(tmp)
    config = tiny_config(
        tmp,
        weights=weights,
        head_epochs=3,
        fine_tune_epochs=1,
        head_lr=5e-3,
        fine_tune_lr=1e-4,
        out=str(tmp / "digits3"),
    )
    workflow.train(config, datasets.load_digits([0, 1, 2]))
    return str(tmp / "digits3")


def _test_images(run_dir, n=8):
    task = workflow.load_run(run_dir)
    return task.model, task.inputs(workflow.load_split(run_dir, "test").items[:n])


def test_keras_format_round_trips(run_dir, tmp_path):
    result = workflow.export_run(run_dir, "keras", out=str(tmp_path))
    assert result.path == str(tmp_path / "digits3" / "keras" / "digits3.keras")
    assert result.check["top1_agreement"] == 1.0 and result.check["max_abs_diff"] == 0.0
    assert (tmp_path / "digits3" / "keras" / "labels.txt").read_text().split() == ["0", "1", "2"]


def test_saved_model_contract_versions_and_signatures(run_dir, tmp_path):
    first = workflow.export_run(run_dir, "saved_model", out=str(tmp_path), name="digits")
    second = workflow.export_run(run_dir, "saved_model", out=str(tmp_path), name="digits")
    assert (first.version, second.version) == (1, 2)
    assert sorted(os.listdir(tmp_path / "digits")) == ["1", "2"]  # No temporary folder left.
    version_dir = tmp_path / "digits" / "2"
    assert (version_dir / "labels.txt").read_text().split() == ["0", "1", "2"]
    card = json.loads((version_dir / "model_card.json").read_text())
    assert card["classes"] == ["0", "1", "2"] and card["input_size"] == 32 and "test_accuracy" in card["test_metrics"]
    # Each weight stored once (Keras 3.15's `track(model)` stored two copies: keras-team/keras#23553).
    assert 0.9 * first.check["storage"]["parameter_bytes"] < first.check["storage"]["variables_bytes"], (
        first.check
    )  # All are there
    assert first.check["storage"]["variables_bytes"] < 1.1 * first.check["storage"]["parameter_bytes"] + 16384, (
        first.check
    )
    assert first.check["storage"]["parameter_bytes"] > 1_000_000  # The MobileNetV2 backbone, not only the head.
    for check in ("serving_default", "serving_images"):
        assert first.check[check]["top1_agreement"] == 1.0
        assert first.check[check]["max_abs_diff"] < 1e-4

    loaded = tf.saved_model.load(str(version_dir), tags=["serve"])
    assert set(loaded.signatures) == {"serving_default", "serving_images"}
    by_bytes = loaded.signatures["serving_default"]
    (spec,) = by_bytes.structured_input_signature[1].values()
    assert (spec.name, spec.dtype, spec.shape.as_list()) == ("image_bytes", tf.string, [None])
    outputs = by_bytes.structured_outputs
    assert outputs["probabilities"].dtype == tf.float32 and outputs["labels"].dtype == tf.string
    assert outputs["top_classes"].dtype == tf.int32
    (images_spec,) = loaded.signatures["serving_images"].structured_input_signature[1].values()
    assert images_spec.shape.as_list() == [None, 32, 32, 3] and images_spec.dtype == tf.float32

    model, images = _test_images(run_dir, 2)
    reference = model.predict(images, verbose=0)
    jpeg = tf.io.encode_jpeg(images[0], quality=100).numpy()
    png = tf.io.encode_png(images[1]).numpy()
    answer = by_bytes(image_bytes=tf.constant([jpeg, png]))
    probabilities = answer["probabilities"].numpy()
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities[1], reference[1], atol=1e-4)  # PNG is lossless.
    decoded = tf.io.decode_jpeg(jpeg).numpy()[None]  # JPEG is not: compare on its decoded pixels.
    np.testing.assert_allclose(probabilities[0], model.predict(decoded, verbose=0)[0], atol=1e-4)
    labels = [l.decode() for l in answer["labels"].numpy()]
    assert labels == [str(i) for i in probabilities.argmax(-1)]

    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
        by_bytes(image_bytes=tf.constant([b"this is not an image"]))


def test_keep_versions_prunes_the_oldest(run_dir, tmp_path):
    for _ in range(3):
        result = workflow.export_run(run_dir, "saved_model", out=str(tmp_path), name="m", keep_versions=2)
    assert sorted(os.listdir(tmp_path / "m")) == ["2", "3"]
    assert result.check["pruned_versions"] == [1]


def test_failed_export_leaves_no_version_and_keeps_the_previous(run_dir, tmp_path, monkeypatch):
    workflow.export_run(run_dir, "saved_model", out=str(tmp_path), name="m")
    before = sorted(os.listdir(tmp_path / "m" / "1"))

    def crash(*args, **kwargs):
        raise RuntimeError("disk full (simulated) after the SavedModel was half written")

    monkeypatch.setattr(export, "check_saved_model", crash)
    with pytest.raises(RuntimeError, match="simulated"):
        workflow.export_run(run_dir, "saved_model", out=str(tmp_path), name="m")
    assert os.listdir(tmp_path / "m") == ["1"]
    assert sorted(os.listdir(tmp_path / "m" / "1")) == before
    assert tf.saved_model.load(str(tmp_path / "m" / "1")).signatures["serving_default"] is not None


def test_disagreeing_export_is_refused_and_not_published(run_dir, tmp_path, monkeypatch):
    """A TFLite file that really disagrees (converted from a model whose output classes are rotated,
    run by LiteRT) is refused at the default bar; the check was only shown with `min_agreement=1.01`."""
    import keras

    real = export.per_class_model

    def rotated_classes(model):
        converted = keras.models.clone_model(real(model))
        converted.set_weights(real(model).get_weights())
        output = converted.get_layer("predictions")
        kernel, bias = output.get_weights()
        output.set_weights([np.roll(kernel, 1, axis=-1), np.roll(bias, 1)])
        return converted

    monkeypatch.setattr(export, "per_class_model", rotated_classes)
    with pytest.raises(export.ExportCheckError, match="Not published") as refused:
        workflow.export_run(run_dir, "tflite", out=str(tmp_path))
    assert "needed 98%" in str(refused.value)
    folder = tmp_path / "digits3" / "tflite"
    assert not [f for f in os.listdir(folder) if f.endswith(".tflite") or f.startswith(".")]  # No temporary left.


@pytest.mark.parametrize("quantize", ["none", "float16", "dynamic", "int8"])
def test_tflite_variants_agree_and_are_evaluated(run_dir, tmp_path, quantize):
    result = workflow.export_run(run_dir, "tflite", out=str(tmp_path), quantize=quantize, min_agreement=0.6)
    assert os.path.isfile(result.path) and result.path.endswith(f"digits3_{quantize}.tflite")
    if quantize == "none":
        assert result.check["max_abs_diff"] < 1e-4 and result.check["top1_agreement"] == 1.0
    record = json.loads(open(os.path.join(run_dir, "exports.json")).read())[-1]
    assert record["quantize"] == quantize and record["test_accuracy"] > 1 / 3  # 3 classes: above chance
    assert record["latency_ms_batch1"] > 0
    assert {k: record[k] for k in result.evaluation} == result.evaluation


def test_onnx_export_is_checked_by_onnx_runtime_and_published_atomically(run_dir, tmp_path):
    import onnxruntime

    result = workflow.export_run(run_dir, "onnx", out=str(tmp_path), name="digits")
    folder = tmp_path / "digits" / "onnx"
    assert result.path == str(folder / "digits.onnx")
    assert sorted(os.listdir(folder)) == ["digits.onnx", "labels.txt", "model_card.json"]  # No temporary left.
    assert result.check["top1_agreement"] == 1.0 and result.check["max_abs_diff"] < 1e-4
    card = json.loads((folder / "model_card.json").read_text())
    assert card["inputs"][0]["shape"][1:] == [32, 32, 3] and card["inputs"][0]["dtype"] == "tensor(float)"
    assert card["classes"] == ["0", "1", "2"] and card["runtime_check"]["runtime"] == "onnxruntime"
    assert os.stat(result.path).st_mode & 0o044 == 0o044  # Group and others read it (a server as another user).

    # Independently of keras-tl's runner: ONNX Runtime on the test images gives Keras' probabilities.
    model, images = _test_images(run_dir, 8)
    session = onnxruntime.InferenceSession(result.path, providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    (probabilities,) = session.run(None, {name: images.astype(np.float32)})
    np.testing.assert_allclose(probabilities, model.predict(images, verbose=0), atol=1e-4)
    record = json.loads(open(os.path.join(run_dir, "exports.json")).read())[-1]
    assert record["format"] == "onnx" and record["test_accuracy"] > 1 / 3 and record["latency_ms_batch1"] > 0
    assert record["labels"] == ["0", "1", "2"] and record["input"]["shape"] == [32, 32, 3]
    assert record["input"]["value_range"] == [0, 255] and "without antialiasing" in record["input"]["resize"]


def test_onnx_export_that_disagrees_is_not_published(run_dir, tmp_path, monkeypatch):
    from keras_tl.core.export import onnx

    monkeypatch.setattr(onnx, "onnx_predict", lambda path, x, **kw: np.roll(_probabilities_of(run_dir, x), 1, axis=1))
    with pytest.raises(export.ExportCheckError, match="Not published"):
        workflow.export_run(run_dir, "onnx", out=str(tmp_path), name="digits")
    assert not os.path.exists(tmp_path / "digits" / "onnx" / "digits.onnx")
    assert not [e for e in os.listdir(tmp_path / "digits" / "onnx") if e.startswith(".")]  # No temporary left.


def test_onnx_without_its_packages_says_how_to_install(run_dir, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # What `import tf2onnx` meets when it is not installed.
    with pytest.raises(keras_tl.ExportError, match=r'needs tf2onnx \(pip install "keras-tl\[onnx\]"\)'):
        workflow.export_run(run_dir, "onnx", out=str(tmp_path), name="digits")
    assert not os.path.exists(tmp_path / "digits" / "onnx" / "digits.onnx")


def _probabilities_of(run_dir, inputs):
    return workflow.load_run(run_dir).model.predict(inputs, verbose=0)


def test_int8_io_and_size(run_dir, tmp_path, capfd):
    float32 = workflow.export_run(run_dir, "tflite", out=str(tmp_path), quantize="none")
    capfd.readouterr()
    int8 = workflow.export_run(run_dir, "tflite", out=str(tmp_path), quantize="int8", int8_io=True, min_agreement=0.6)
    out, err = capfd.readouterr()  # The converter's native line ("fully_quantize: 0, inference_type: 6") stays out.
    assert "fully_quantize" not in out + err and "inference_type" not in out + err
    interpreter = litert.load(int8.path)
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8
    assert interpreter.get_output_details()[0]["dtype"] == np.uint8
    assert int8.size_bytes < 0.35 * float32.size_bytes


def test_rest_client_against_local_server_answering_with_the_signature(run_dir, tmp_path, capsys):
    import base64

    result = workflow.export_run(run_dir, "saved_model", out=str(tmp_path), name="digits")
    signature = tf.saved_model.load(result.path).signatures["serving_default"]

    def answer(instances):
        data = tf.constant([base64.b64decode(i["b64"]) for i in instances])
        return {k: v.numpy() for k, v in signature(image_bytes=data).items()}

    with fake_tf_serving(answer) as (url, bodies):
        model, images = _test_images(run_dir, 2)
        files = []
        for i, image in enumerate(images):
            path = tmp_path / f"img{i}.png"
            path.write_bytes(tf.io.encode_png(image).numpy())
            files.append(str(path))
        answers = serving.predict(url, "digits", files, version=1)
        path, body = bodies[-1]
        assert path == "/v1/models/digits/versions/1:predict"
        assert body["signature_name"] == "serving_default" and set(body["instances"][0]) == {"b64"}
        reference = model.predict(images, verbose=0)
        np.testing.assert_allclose([a["probabilities"] for a in answers], reference, atol=1e-4)
        assert [a["labels"] for a in answers] == [str(i) for i in reference.argmax(-1)]
        assert main(["predict", "--server", url, "--model", "digits", files[0]]) == 0
        line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert line["labels"] == answers[0]["labels"]


def test_grpc_client_against_local_prediction_service(run_dir, tmp_path, capsys):
    """`predict --server grpc://...` and `serving.predict` over TF Serving's gRPC API, against a local
    `PredictionService` that runs the exported SavedModel's signature."""
    result = workflow.export_run(run_dir, "saved_model", out=str(tmp_path), name="digits")
    model, images = _test_images(run_dir, 3)
    files = []
    for i, image in enumerate(images):
        path = tmp_path / f"img{i}.png"
        path.write_bytes(tf.io.encode_png(image).numpy())
        files.append(str(path))
    with local_grpc_serving("digits", result.path) as (address, requests):
        answers = serving.predict(address, "digits", files, version=1)
        request = requests[-1]
        assert (request.model_spec.name, request.model_spec.signature_name, request.model_spec.version.value) == (
            "digits",
            "serving_default",
            1,
        )
        assert tf.make_ndarray(request.inputs["image_bytes"]).shape == (3,)
        reference = model.predict(images, verbose=0)
        np.testing.assert_allclose([a["probabilities"] for a in answers], reference, atol=1e-4)
        assert [a["labels"] for a in answers] == [str(i) for i in reference.argmax(-1)]
        assert main(["predict", "--server", address, "--model", "digits", files[0]]) == 0
        line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert line["image"] == files[0] and line["labels"] == answers[0]["labels"]
        with pytest.raises(keras_tl.ServingError, match="NOT_FOUND.*'nope'"):
            serving.predict(address, "nope", files[:1])
    with pytest.raises(ConnectionError, match="Cannot reach TF Serving"):
        serving.predict(address, "digits", files[:1], timeout=5)


def test_models_config_lists_saved_model_exports(run_dir, tmp_path):
    workflow.export_run(run_dir, "saved_model", out=str(tmp_path), name="a")
    workflow.export_run(run_dir, "tflite", out=str(tmp_path), name="b")  # No integer version: not served.
    text = serving.models_config(str(tmp_path))
    assert 'name: "a"' in text and 'base_path: "/models/a"' in text and 'model_platform: "tensorflow"' in text
    assert 'name: "b"' not in text


def test_cli_export(run_dir, tmp_path, capsys):
    assert main(["export", run_dir, "--format", "saved_model", "--out", str(tmp_path), "--name", "cli"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["version"] == 1 and os.path.isdir(printed["path"])
    assert main(["export", run_dir, "--format", "keras", "--quantize", "int8", "--out", str(tmp_path)]) == 2
    assert "Quantization applies to TFLite only" in capsys.readouterr().err
