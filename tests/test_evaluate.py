import numpy as np
import pytest

from keras_tl.core.evaluation.evaluate import classification_metrics


def test_metrics_match_hand_computation_with_a_never_predicted_class():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 1, 1])  # Class 2 is never predicted.
    probabilities = np.eye(3)[predicted] * 0.8 + 0.2 / 3
    m = classification_metrics(y_true, probabilities, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    # a: P 2/2, R 2/3 ; b: P 2/4, R 2/2 ; c: P 0 (never predicted), R 0.
    f1_a, f1_b = 2 * 1 * (2 / 3) / (1 + 2 / 3), 2 * 0.5 * 1 / 1.5
    assert m["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": f1_a, "support": 3})
    assert m["per_class"]["b"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": f1_b, "support": 2})
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["macro_f1"] == pytest.approx((f1_a + f1_b) / 3)
    assert m["weighted_f1"] == pytest.approx((3 * f1_a + 2 * f1_b) / 6)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [0, 1, 0]]


def test_binary_threshold_and_top_k():
    m = classification_metrics(
        np.array([0, 1, 1, 0]), np.array([[0.2], [0.7], [0.4], [0.6]]), ["no", "yes"], threshold=0.5
    )
    assert m["threshold"] == 0.5 and m["accuracy"] == 0.5
    assert m["confusion_matrix"] == [[1, 1], [1, 1]]
    probs = np.array([[0.5, 0.3, 0.1, 0.05, 0.03, 0.02]] * 2)
    m = classification_metrics(np.array([1, 5]), probs, list("abcdef"), top_k=5)
    assert m["accuracy"] == 0.0 and m["top_k_accuracy"] == 0.5


def test_multilabel_metrics_by_hand_with_per_class_thresholds():
    from keras_tl.core.evaluation.evaluate import multilabel_metrics

    y_true = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    probs = np.array([[0.9, 0.2, 0.4], [0.6, 0.8, 0.1], [0.7, 0.3, 0.2], [0.1, 0.1, 0.35]])
    m = multilabel_metrics(y_true, probs, ["sky", "tree", "car"], threshold=[0.5, 0.5, 0.3])
    # Predictions: [1,0,1], [1,1,0], [1,0,0], [0,0,1].
    assert m["thresholds"] == [0.5, 0.5, 0.3]
    assert m["subset_accuracy"] == 0.25  # Only the first row is all right.
    assert m["hamming_accuracy"] == pytest.approx(9 / 12)
    assert m["per_class"]["sky"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert m["per_class"]["tree"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert m["per_class"]["car"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    tp, predicted, actual = 2 + 1 + 1, 3 + 1 + 2, 5
    micro_p, micro_r = tp / predicted, tp / actual
    assert m["micro_f1"] == pytest.approx(2 * micro_p * micro_r / (micro_p + micro_r))
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3 + 2 / 3) / 3)
    with pytest.raises(ValueError, match=r"must both be \(N, 3\)"):
        multilabel_metrics(y_true[:, :2], probs[:, :2], ["sky", "tree", "car"])
