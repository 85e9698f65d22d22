"""Platt calibration: fitting moves the cut-off, it round-trips, and stale caches are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tools.classifier.calibration import Calibration, fit_platt


def _overconfident_scores(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Positives near 0.97, negatives spread up to 0.9: the raw 0.5 cut-off makes FPs."""
    rng = np.random.default_rng(seed)
    y = np.array([1] * 50 + [0] * 50)
    p = np.concatenate([rng.uniform(0.93, 0.999, 50), rng.uniform(0.05, 0.9, 50)])
    return y, p


def test_platt_moves_the_cut_off_where_the_classes_part():
    y, p = _overconfident_scores()
    calibration = fit_platt(y, p)
    raw_acc = np.mean((p >= 0.5) == y)
    cal_acc = np.mean((calibration.apply(p) >= 0.5) == y)
    assert raw_acc < 0.85 and cal_acc > raw_acc + 0.1
    q = np.linspace(0.01, 0.99, 50)
    assert np.all(np.diff(calibration.apply(q)) > 0)  # monotone: ranking and AUC unchanged


def test_calibration_round_trips_and_is_optional(tmp_path):
    y, p = _overconfident_scores(1)
    calibration = fit_platt(y, p, fitted_on="val")
    calibration.save(tmp_path)
    assert Calibration.load(tmp_path) == calibration
    assert json.loads((tmp_path / "calibration.json").read_text())["n"] == 100
    assert Calibration.load(tmp_path / "missing") is None and Calibration.load(None) is None


def test_one_class_cannot_be_calibrated():
    with pytest.raises(ValueError, match="both classes"):
        fit_platt(np.ones(10), np.full(10, 0.9))


def test_cached_predictions_of_another_adapter_are_stale(tmp_path):
    from eval.compare import read_cached

    path = tmp_path / "m__finetuned__test.csv"
    path.write_text("abstract_id,label,p_cancer\na,Cancer,0.9\nb,Non-Cancer,0.2\n")
    path.with_suffix(".json").write_text(json.dumps({"model_info": {"adapter_version": "v1"}}))
    np.testing.assert_allclose(read_cached(path, ["b", "a"], "v1"), [0.2, 0.9])
    assert read_cached(path, ["b", "a"], "v2") is None
    assert read_cached(path, ["a", "c"], "v1") is None
    # made from other inputs: stale too; a cache from before tails existed read the head only
    head_only = {"max_length": 256, "tail_share": 0.0}
    np.testing.assert_allclose(read_cached(path, ["a", "b"], "v1", head_only), [0.9, 0.2])
    assert read_cached(path, ["a", "b"], "v1", {**head_only, "tail_share": 0.3}) is None
    path.with_suffix(".json").write_text(json.dumps(
        {"model_info": {"adapter_version": "v1"}, "inputs": {**head_only, "max_length": 384}}))
    assert read_cached(path, ["a", "b"], "v1", head_only) is None


def test_cached_predictions_of_other_preprocessed_texts_are_stale(tmp_path):
    """A preprocessing change alters what every model reads, whatever its adapter."""
    from eval.compare import model_inputs, read_cached

    path = tmp_path / "m__finetuned__test.csv"
    path.write_text("abstract_id,label,p_cancer\na,Cancer,0.9\nb,Non-Cancer,0.2\n")
    made_from = model_inputs("keyword-rule", ["Title: A\nAbstract: x", "Title: B\nAbstract: y"])
    path.with_suffix(".json").write_text(
        json.dumps({"model_info": {"adapter_version": "v1"}, "inputs": made_from}))
    np.testing.assert_allclose(read_cached(path, ["a", "b"], "v1", made_from), [0.9, 0.2])
    now = model_inputs("keyword-rule", ["Title: A\nAbstract: x", "Title: B\nAbstract: y."])
    assert read_cached(path, ["a", "b"], "v1", now) is None
