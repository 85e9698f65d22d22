"""Binary classification metrics (scikit-learn) with seeded bootstrap intervals (1 = Cancer).

Cancer is the positive class throughout: TP = Cancer predicted Cancer, FN = Cancer missed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm

THRESHOLD = 0.5
N_BOOT = 1000
SEED = 13


def confusion(y: np.ndarray, p: np.ndarray, threshold: float = THRESHOLD) -> dict[str, int]:
    """The 2x2 counts with Cancer positive (scikit-learn's confusion_matrix)."""
    pred = (np.asarray(p) >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(np.asarray(y).astype(int), pred, labels=[0, 1]).ravel()
    return {"tp": int(tp), "fn": int(fn), "fp": int(fp), "tn": int(tn)}


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross-entropy of P(Cancer) (scikit-learn's, which clips p)."""
    return float(skm.log_loss(np.asarray(y).astype(int), np.asarray(p, dtype=np.float64),
                              labels=[0, 1]))


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC (ties count half); NaN when one class is absent, as in a bootstrap resample."""
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(skm.roc_auc_score(y, p))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE over equal-width bins of the confidence in the predicted class."""
    pred = p >= THRESHOLD
    conf = np.where(pred, p, 1 - p)
    correct = pred == y.astype(bool)
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(conf[mask].mean() - correct[mask].mean())
    return float(ece)


def point_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Accuracy, per-class and macro precision/recall/F1, ROC-AUC, ECE."""
    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=np.float64)
    pred = (p >= THRESHOLD).astype(int)
    # index 0: Cancer (label 1) as positive, index 1: Non-Cancer (label 0) as positive
    prec, rec, f1, _ = skm.precision_recall_fscore_support(
        y, pred, labels=[1, 0], zero_division=0.0)
    return {
        "accuracy": float(skm.accuracy_score(y, pred)) if len(y) else 0.0,
        "precision_cancer": float(prec[0]), "recall_cancer": float(rec[0]),
        "f1_cancer": float(f1[0]),
        "precision_non_cancer": float(prec[1]), "recall_non_cancer": float(rec[1]),
        "f1_non_cancer": float(f1[1]),
        "precision_macro": float(prec.mean()), "recall_macro": float(rec.mean()),
        "f1_macro": float(f1.mean()),
        "roc_auc": roc_auc(y, p),
        "ece": expected_calibration_error(y, p),
        "mean_p_true": float(np.mean(np.where(y == 1, p, 1 - p))),
    }


def _resamples(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _interval(values: np.ndarray) -> list[float]:
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return [float("nan"), float("nan")]
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def bootstrap_intervals(y: np.ndarray, p: np.ndarray, n_boot: int = N_BOOT,
                        seed: int = SEED) -> dict[str, list[float]]:
    """95% percentile intervals of every point metric over seeded resamples of the rows."""
    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=np.float64)
    draws = [point_metrics(y[i], p[i]) for i in _resamples(len(y), n_boot, seed)]
    return {k: _interval(np.array([d[k] for d in draws])) for k in draws[0]}


def paired_difference(y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray,
                      metric: Callable[[np.ndarray, np.ndarray], float] | None = None,
                      n_boot: int = N_BOOT, seed: int = SEED) -> dict[str, float | list[float]]:
    """metric(a) - metric(b) on the same rows, with a paired 95% bootstrap interval."""
    y = np.asarray(y).astype(int)
    metric = metric or (lambda yy, pp: float(np.mean((pp >= THRESHOLD) == yy)))
    diffs = np.array([metric(y[i], p_a[i]) - metric(y[i], p_b[i])
                      for i in _resamples(len(y), n_boot, seed)])
    return {"difference": metric(y, p_a) - metric(y, p_b), "ci95": _interval(diffs)}


def evaluate(y: np.ndarray, p: np.ndarray, n_boot: int = N_BOOT,
             seed: int = SEED) -> dict[str, Any]:
    """Everything the report needs for one prediction vector."""
    return {
        "n": int(len(y)),
        "metrics": point_metrics(y, p),
        "ci95": bootstrap_intervals(y, p, n_boot, seed),
        "confusion": confusion(np.asarray(y), np.asarray(p)),
    }


def confusion_markdown(c: dict[str, int]) -> str:
    """The confusion matrix in the project's fixed layout (rows = actual, Cancer first)."""
    return (
        "|  | Predicted Cancer | Predicted Non-Cancer |\n"
        "|---|---|---|\n"
        f"| Actual Cancer | {c['tp']} | {c['fn']} |\n"
        f"| Actual Non-Cancer | {c['fp']} | {c['tn']} |\n"
    )


def plot_confusion(c: dict[str, int], title: str, path: str | Path) -> None:
    """A PNG heatmap in the same layout as the Markdown table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.array([[c["tp"], c["fn"]], [c["fp"], c["tn"]]])
    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=120)
    ax.imshow(grid, cmap="Blues")
    ax.set_xticks([0, 1], ["Predicted\nCancer", "Predicted\nNon-Cancer"])
    ax.set_yticks([0, 1], ["Actual\nCancer", "Actual\nNon-Cancer"])
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, str(v), ha="center", va="center",
                color="white" if v > grid.max() / 2 else "black", fontsize=14)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
