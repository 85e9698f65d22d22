"""Metrics, bootstrap intervals and the confusion layout the report promises."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from core import metrics as M


@pytest.fixture()
def sample():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 120)
    p = np.clip(0.5 * y + rng.normal(0.25, 0.25, 120), 0, 1)
    return y, p


def test_confusion_counts_and_markdown_layout():
    y = np.array([1, 1, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.1, 0.7, 0.2])
    c = M.confusion(y, p)
    assert c == {"tp": 2, "fn": 1, "fp": 1, "tn": 1}
    assert M.confusion_markdown(c).splitlines() == [
        "|  | Predicted Cancer | Predicted Non-Cancer |",
        "|---|---|---|",
        "| Actual Cancer | 2 | 1 |",
        "| Actual Non-Cancer | 1 | 1 |",
    ]


def test_point_metrics_match_sklearn(sample):
    y, p = sample
    m = M.point_metrics(y, p)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["f1_macro"] == pytest.approx(f1_score(y, p >= 0.5, average="macro"))
    assert m["f1_cancer"] == pytest.approx(f1_score(y, p >= 0.5))
    assert m["accuracy"] == pytest.approx(np.mean((p >= 0.5) == y))


def test_bootstrap_interval_contains_point_and_is_seeded(sample):
    y, p = sample
    result = M.evaluate(y, p, n_boot=200)
    for key in ("accuracy", "recall_cancer", "f1_macro", "roc_auc"):
        lo, hi = result["ci95"][key]
        assert lo <= result["metrics"][key] <= hi
        assert lo < hi
    assert M.bootstrap_intervals(y, p, n_boot=200) == result["ci95"]


def test_ece_zero_when_confidence_matches_accuracy():
    y = np.array([1, 1, 0, 0])
    assert M.expected_calibration_error(y, np.array([1.0, 1.0, 0.0, 0.0])) == pytest.approx(0.0)
    # always 0.9 confident, right half the time: gap 0.4
    assert M.expected_calibration_error(y, np.array([0.9, 0.1, 0.9, 0.1])) == pytest.approx(0.4)


def test_paired_difference_sign(sample):
    y, p = sample
    perfect = y.astype(float)
    diff = M.paired_difference(y, perfect, p, n_boot=200)
    assert diff["difference"] > 0
    assert diff["ci95"][0] > 0


def test_confusion_heatmap_written(tmp_path):
    M.plot_confusion({"tp": 3, "fn": 1, "fp": 0, "tn": 4}, "t", tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
