"""Platt scaling fitted on the val split, stored next to an adapter as `calibration.json`.

A LoRA-tuned label-word model ranks well (val AUC ~0.99) but its 0.5 cut-off on the raw
softmax is not where the classes part; a two-parameter logistic map of the log-odds, fitted
on the 100 val abstracts that early stopping already scores, moves the cut-off and makes the
confidence the verifier reads honest. The test split never touches it.

An inference backend whose raw scores differ from torch's (the int8 engine) gets its own map,
`calibration-<backend>.json`, fitted on its own val scores (`finetune.calibrate --backend`);
without one it reads the torch fit.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

CALIBRATION_FILE = "calibration.json"
_EPS = 1e-6


def _log_odds(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibration:
    slope: float
    intercept: float
    fitted_on: str
    n: int

    def apply(self, p: np.ndarray) -> np.ndarray:
        z = self.slope * _log_odds(p) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def describe(self) -> str:
        return (f"platt(slope={self.slope:.3f}, intercept={self.intercept:.3f}, "
                f"{self.fitted_on} n={self.n})")

    def save(self, folder: Path, backend: str = "torch") -> Path:
        path = folder / calibration_file(backend)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: Path | None, backend: str = "torch") -> Calibration | None:
        """The backend's own fit when it has one, else the torch fit, else None."""
        if folder is None:
            return None
        for name in dict.fromkeys([calibration_file(backend), CALIBRATION_FILE]):
            if (folder / name).exists():
                return cls(**json.loads((folder / name).read_text()))
        return None


def calibration_file(backend: str = "torch") -> str:
    return CALIBRATION_FILE if backend == "torch" else f"calibration-{backend}.json"


def fit_platt(labels: np.ndarray, p_cancer: np.ndarray, fitted_on: str = "val") -> Calibration:
    """Logistic regression of the label (1 = Cancer) on the log-odds of P(Cancer)."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(labels, dtype=int)
    if len(set(y.tolist())) < 2:
        raise ValueError("calibration needs both classes in the fitting set")
    model = LogisticRegression(C=1.0).fit(_log_odds(p_cancer).reshape(-1, 1), y)
    return Calibration(float(model.coef_[0, 0]), float(model.intercept_[0]), fitted_on, len(y))
