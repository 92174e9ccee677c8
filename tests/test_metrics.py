"""Metrics against hand-computed values."""

import numpy as np
import pytest

from pyrnn.metrics import get_metric


def test_metrics_by_hand():
    p, t = np.array([[1.0], [2.0], [4.0]]), np.array([[1.0], [3.0], [2.0]])
    assert get_metric("mae")(p, t) == pytest.approx(1.0)           # (0 + 1 + 2) / 3
    assert get_metric("mse")(p, t) == pytest.approx(5 / 3)         # (0 + 1 + 4) / 3
    assert get_metric("rmse")(p, t) == pytest.approx(np.sqrt(5 / 3))
    assert get_metric("mae")(p, t, mask=np.array([1, 0, 1])) == pytest.approx(1.0)  # (0 + 2) / 2
    logits = np.array([[[2.0, 1.0], [0.0, 3.0]], [[1.0, 0.0], [5.0, 4.0]]])  # (B=2, T=2, C=2)
    labels = np.array([[0, 1], [1, 0]])
    assert get_metric("accuracy")(logits, labels) == pytest.approx(0.75)
    assert get_metric("accuracy")(logits, labels, mask=np.array([[1, 1], [0, 1]])) == pytest.approx(1.0)
    assert get_metric("binary_accuracy")(np.array([2.0, -1.0, 0.5]), np.array([1, 1, 1])) == pytest.approx(2 / 3)


def test_unknown_metric_is_named():
    with pytest.raises(ValueError, match=r"unknown metric 'f1': expected one of \['accuracy'"):
        get_metric("f1")
