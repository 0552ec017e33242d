"""Choosing a backbone before training: LogME, the linear probe, `keras-tl rank`, `compare --top`."""

import json
import os

import numpy as np
import pytest
from conftest import tiny_bert_preset, tiny_texts, write_image_folder

import keras_tl
from keras_tl import datasets
from keras_tl.cli import main as cli
from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.data import Source
from keras_tl.core.evaluation import transferability
from keras_tl.core.models.classifier import Classifier
from keras_tl.text import data as text_data
from keras_tl.workflow import ranking


def paper_logme(features, labels, tolerance=0.01, max_iterations=11):
    """LogME transcribed line by line from the authors' numpy code (github.com/thuml/LogME, LogME.py,
    `each_evidence` and `LogME`): one class at a time, the eigendecomposition of F^T F by SVD."""
    f = features.astype(np.float64).T  # (D, N)
    fh = f.T
    d, n = f.shape
    v, s, vh = np.linalg.svd(f @ fh, full_matrices=True)
    evidences = []
    for k in range(labels.max() + 1):
        y_ = (labels == k).astype(np.float64)
        alpha, beta = 1.0, 1.0
        lam = alpha / beta
        tmp = vh @ (f @ y_)
        for _ in range(max_iterations):
            gamma = (s / (s + lam)).sum()
            m = v @ (tmp * beta / (alpha + beta * s))
            alpha_de = (m * m).sum()
            alpha = gamma / alpha_de
            beta_de = ((y_ - fh @ m) ** 2).sum()
            beta = (n - gamma) / beta_de
            new_lam = alpha / beta
            if np.abs(new_lam - lam) / lam < tolerance:
                break
            lam = new_lam
        evidence = (
            d / 2.0 * np.log(alpha)
            + n / 2.0 * np.log(beta)
            - 0.5 * np.sum(np.log(alpha + beta * s))
            - beta / 2.0 * beta_de
            - alpha / 2.0 * alpha_de
            - n / 2.0 * np.log(2 * np.pi)
        )
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def _informative(n=300, d=24, k=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    features = rng.normal(size=(n, d))
    features[:, :k] += 2.0 * np.eye(k)[labels]
    return features, labels


@pytest.mark.parametrize("n,d,k", [(300, 24, 4), (60, 150, 3), (120, 120, 2), (500, 8, 7), (78, 1280, 3)])
def test_logme_equals_the_papers_code(n, d, k):
    features, labels = _informative(n, d, k, seed=n)
    # The reference code's stopping rule reproduces its numbers; iterated to convergence, the same
    # transcription and the vectorized one agree as well.
    assert transferability.logme(features, labels, tolerance=0.01, max_iterations=11) == pytest.approx(
        paper_logme(features, labels), abs=1e-6
    )
    assert transferability.logme(features, labels) == pytest.approx(
        paper_logme(features, labels, tolerance=1e-10, max_iterations=1000), abs=1e-6
    )


def test_logme_is_finite_when_the_features_fit_every_label():
    # Fewer examples than features: the features fit every label exactly, the evidence grows without
    # bound as beta -> infinity, and iterating to convergence stepped into inf/NaN (seen on a random
    # EfficientNet-Lite0 with 78 digit images); the iteration now keeps each class's last finite state.
    rng = np.random.default_rng(1)
    features, labels = rng.normal(size=(30, 64)).astype(np.float32), rng.integers(0, 3, 30)
    with np.errstate(all="ignore"):  # The reference iterated to the end diverges: NaN.
        assert np.isnan(paper_logme(features, labels, tolerance=1e-10, max_iterations=1000))
    assert np.isfinite(transferability.logme(features, labels))
    assert transferability.logme(features, labels, tolerance=0.01, max_iterations=11) == pytest.approx(
        paper_logme(features, labels), abs=1e-6
    )  # Where the reference stays finite, the same value.


def test_logme_properties():
    features, labels = _informative()
    score = transferability.logme(features, labels)
    shuffled = transferability.logme(features, np.random.default_rng(1).permutation(labels))
    noise = transferability.logme(np.random.default_rng(2).normal(size=features.shape), labels)
    assert score > shuffled + 0.05 and score > noise + 0.05
    for scale in (1e-3, 10.0, 1e4):  # Invariant to the features' scale (at convergence).
        assert transferability.logme(scale * features, labels) == pytest.approx(score, abs=1e-6)
    # Multi-hot rows: each label column is one target, as the one-hot columns of int labels are.
    assert transferability.logme(features, np.eye(4)[labels]) == pytest.approx(score, abs=1e-12)
    assert transferability.logme(np.zeros((10, 3)), np.arange(10) % 2) == -np.inf  # ranks last
    with pytest.raises(ValueError, match="NaN/inf"):
        transferability.logme(np.full((10, 3), np.nan), np.arange(10) % 2)
    with pytest.raises(ValueError, match="one row per label"):
        transferability.logme(features[:10], labels)
    with pytest.raises(ValueError, match="class indices"):
        transferability.logme(features, labels.astype(float))


def test_linear_probe_is_exact_leave_one_out_and_kendall_tau_is_scipys():
    from scipy.stats import kendalltau
    from sklearn.linear_model import Ridge

    features, labels = _informative(n=60, d=12, k=3)
    x = (features - features.mean(0)) / features.std(0)
    targets = np.eye(3)[labels]
    eigenvalues = np.linalg.svd(x, compute_uv=False) ** 2
    for ridge in (0.01, 1.0, 100.0):  # Each example predicted by a probe fitted to the other 59.
        hits = []
        for i in range(len(x)):
            keep = np.arange(len(x)) != i
            probe = Ridge(alpha=ridge * eigenvalues.mean()).fit(x[keep], targets[keep])
            hits.append(probe.predict(x[i : i + 1]).argmax() == labels[i])
        accuracy, error = transferability.linear_probe(features, labels, ridges=(ridge,))
        assert accuracy == pytest.approx(np.mean(hits), abs=1e-12)
        assert error == pytest.approx(np.sqrt(accuracy * (1 - accuracy) / 60))
    accuracy, _ = transferability.linear_probe(*_informative())
    chance, _ = transferability.linear_probe(np.random.default_rng(3).normal(size=(300, 24)), _informative()[1])
    assert accuracy > 0.7 > 0.4 > chance  # 4 balanced classes: chance is 0.25.
    with pytest.raises(ValueError, match="at least 2 examples of every class"):
        transferability.linear_probe(features[:5], np.array([0, 0, 1, 1, 2]))
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=9), rng.normal(size=9)
    tau, concordant, discordant, pairs = transferability.kendall_tau(a, b)
    assert tau == pytest.approx(kendalltau(a, b).statistic) and concordant + discordant == pairs == 36
    assert transferability.kendall_tau([1, 2, 3], [10, 20, 30])[0] == 1.0


def test_pretrained_scoring_at_or_below_its_random_twin_is_flagged():
    rows = [
        {"backbone": "a", "pretrained": True, "logme": -0.6, "flag": ""},
        {"backbone": "a", "pretrained": False, "logme": -0.5, "flag": ""},
        {"backbone": "b", "pretrained": True, "logme": -0.4, "flag": ""},
        {"backbone": "b", "pretrained": False, "logme": -0.7, "flag": ""},
    ]
    ranking._flag_negative_transfer(rows)
    assert rows[0]["flag"].startswith("not above random weights") and rows[2]["flag"] == ""
    assert rows[1]["flag"] == rows[3]["flag"] == ""


def test_rank_cli_on_an_image_folder_with_real_imagenet_weights(tmp_path, capsys):
    data = write_image_folder(tmp_path / "digits", num_classes=3, per_class=14, size=32)
    out = tmp_path / "ranked"
    code = cli(
        [
            "rank",
            "--data",
            data,
            "--backbones",
            "efficientnet_lite0,mobilenet_v2_torchvision",
            "--weights",
            "pretrained",
            "--image-size",
            "32",
            "--out",
            str(out),
            "--max-examples",
            "30",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    rows = json.loads((out / "rank.json").read_text())
    assert len(rows) == 4
    assert {(r["backbone"], r["weights"]) for r in rows} == {
        (b, w) for b in ("efficientnet_lite0", "mobilenet_v2_torchvision") for w in ("pretrained", "random")
    }
    assert [r["logme"] for r in rows] == sorted((r["logme"] for r in rows), reverse=True)
    for r in rows:  # Train + validation splits only (the test split is never read).
        assert r["feature_dim"] == 1280 and r["seconds"] > 0 and 0 <= r["probe_accuracy"] <= 1
        assert r["examples"] == 30 and np.isfinite(r["logme"])  # 10 per class of the 36 train + val images
        twin = next(t for t in rows if t["backbone"] == r["backbone"] and t["pretrained"] != r["pretrained"])
        flagged = r["pretrained"] and r["logme"] <= twin["logme"]
        assert bool(r["flag"]) == flagged
    assert "scoring 30 of 36 training + validation examples" in printed
    assert "| 1 | " in printed and "LogME" in (out / "rank.md").read_text()
    assert not any(name.endswith(".keras") for _, _, files in os.walk(tmp_path) for name in files)


def test_rank_text_encoders_through_the_same_registry(tmp_path):
    texts, labels = tiny_texts(20)
    preset = tiny_bert_preset(tmp_path / "preset", texts)
    config = TrainConfig(backbone=preset, weights="pretrained", sequence_length=16, batch_size=16, out=str(tmp_path))
    rows = keras_tl.rank(config, [preset], text_data.from_texts(texts, labels))
    assert len(rows) == 2 and {r["weights"] for r in rows} == {"pretrained", "random"}
    assert all(r["feature_dim"] == 32 and np.isfinite(r["logme"]) for r in rows)


def test_rank_checks_every_config_before_any_work(tmp_path):
    config = TrainConfig(weights="none", image_size=32, out=str(tmp_path / "x"))
    with pytest.raises(ValueError, match="Unknown backbone 'no_such_net'"):
        keras_tl.rank(config, ["mobilenet_v2", "no_such_net"], datasets.load_digits([0, 1]))
    for wrong in (1, True, 2.5):
        with pytest.raises(ValueError, match=f"`max_examples` must be an integer >= 2.*Received: {wrong!r}"):
            keras_tl.rank(config, ["mobilenet_v2"], datasets.load_digits([0, 1]), max_examples=wrong)
    with pytest.raises(ValueError, match="at least 1 backbone"):
        keras_tl.rank(config, [], datasets.load_digits([0, 1]))
    with pytest.raises(ValueError, match="`top` must be between 1 and 2"):
        keras_tl.compare_backbones(config, ["mobilenet_v2", "mobilenet_v3_small"], datasets.load_digits([0, 1]), top=3)
    assert not os.path.exists(tmp_path / "x")


def test_compare_top_fine_tunes_only_the_best_ranked(tmp_path):
    config = TrainConfig(
        weights="none",
        image_size=32,
        head_epochs=1,
        fine_tune_epochs=0,
        strategy="feature_extraction",
        batch_size=32,
        early_stopping_patience=None,
        out=str(tmp_path / "cmp"),
    )
    source = datasets.load_digits([0, 1, 2])
    rows = keras_tl.compare_backbones(config, ["mobilenet_v2", "mobilenet_v3_small"], source, top=1)
    ranked = json.loads((tmp_path / "cmp" / "rank.json").read_text())
    assert len(ranked) == 2 and {r["weights"] for r in ranked} == {"random"}  # No twins of random weights.
    assert [r["backbone"] for r in rows] == [ranked[0]["backbone"]]
    assert sorted(os.listdir(tmp_path / "cmp")) == sorted(
        [ranked[0]["backbone"], "compare.json", "compare.md", "pareto.png", "rank.json", "rank.md"]
    )


def test_domain_shift_tells_a_shifted_domain_from_the_same_one_before_any_training(tmp_path, capsys):
    """Digit scans vs other scans of the same digits (no shift) and vs inverted scans (a shift)."""

    digits = datasets.load_digits([0, 1, 2])
    rng = np.random.default_rng(0)
    order = rng.permutation(len(digits.labels))
    first, second = order[:240], order[240:480]

    def part(indices, invert=False):
        images = digits.items[indices]
        return Source(digits.class_names, 255 - images if invert else images, digits.labels[indices], modality="image")

    config = TrainConfig(
        backbone="mobilenet_v2",
        weights="none",
        image_size=32,
        batch_size=64,
        val_split=0.2,
        test_split=0.2,
        out=str(tmp_path / "never"),
    )
    same = keras_tl.domain_shift(config, part(second), part(first))
    shifted = keras_tl.domain_shift(config, part(second, invert=True), part(first))
    assert same["examples"] == shifted["examples"] == 240 - 48  # train + val: the test split (20%) unread
    assert same["proxy_a_distance"] < 0.6 < 1.6 < shifted["proxy_a_distance"] <= 2.0
    assert shifted["domain_probe_accuracy"] > 0.9 and same["feature_dim"] == 1280
    assert "large shift" in capsys.readouterr().out and not os.path.exists(tmp_path / "never")
    # From the command line, with a target folder that does not exist: refused before any work.
    data = write_image_folder(tmp_path / "digits", num_classes=2, per_class=4, size=32)
    assert (
        cli(
            [
                "domain-shift",
                "--data",
                data,
                "--target-data",
                str(tmp_path / "nowhere"),
                "--backbone",
                "mobilenet_v2",
                "--weights",
                "none",
            ]
        )
        == 2
    )
    assert "nowhere" in capsys.readouterr().err


def test_text_feature_pass_trims_padding_and_keeps_the_padded_features(tmp_path):
    """rank's text pass (sorted by length, each batch cut after its last real token) gives the features
    of the padded pass, on real glosses through the real MiniLM encoder, for mean and [CLS] pooling."""
    from keras_tl.core import data as core_data
    from keras_tl.core.contract import modality as modalities
    from keras_tl.core.contract import registry
    from keras_tl.core.train import features

    glosses = datasets.load_wordnet_glosses()
    texts = list(glosses.items[:47]) + [" ".join(glosses.items[:20])]  # the last one is truncated at 64 tokens
    split = core_data.Split(texts, glosses.labels[:48])
    text = modalities.get("text")
    spec = registry.get("minilm_l6", modality="text")
    for pooling in ("avg", "cls"):
        config = TrainConfig(
            backbone="minilm_l6",
            weights="pretrained",
            sequence_length=64,
            batch_size=16,
            pooling=pooling,
            problem="multiclass",
            out=str(tmp_path / "never"),
        )
        task = Classifier.build(text, spec, config, len(glosses.class_names), glosses.class_names)
        order, trimmed = text.feature_pass(task, split, config)
        assert sorted(order) == list(range(48)) and [len(texts[i]) for i in order] == sorted(map(len, texts))
        widths = [batch[0]["token_ids"].shape[1] for batch in trimmed]
        assert widths[0] < 32 and widths[-1] == 64 and all(w % text_data.TRIM_MULTIPLE == 0 for w in widths)
        extractor, _ = features.split_model(task.model)
        (fast, targets), (padded, _) = features.extract(
            extractor,
            [
                core_data.targets_as_inputs(trimmed),
                core_data.targets_as_inputs(text.dataset(task, split, config, cache="none")),
            ],
            open_shapes=True,
        )
        np.testing.assert_allclose(fast, padded[order], atol=2e-5)
        assert (targets.argmax(1) == split.labels[order]).all()
    # Left padding (no trailing padding column): nothing is cut.
    left = text_data._trimmed({"padding_mask": np.array([[0, 0, 1], [0, 1, 1]]), "token_ids": np.ones((2, 3))})
    right = text_data._trimmed({"padding_mask": np.array([[1] * 9 + [0] * 11]), "token_ids": np.ones((1, 20))})
    assert left["token_ids"].shape == (2, 3) and right["padding_mask"].shape == (1, 16)
