"""Classical references every neural model must beat: a cancer-keyword rule and TF-IDF + LR.

The TF-IDF model is stored as plain data (vocabulary JSON + idf/coefficients NPZ), not as a
pickle, so loading an adapter folder never executes code and needs no training data.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

KEYWORD_PATTERN = re.compile(
    r"\b(cancer\w*|carcinoma\w*|tumou?r\w*|neoplas\w*|malignan\w*|leuka?emi\w*|lymphoma\w*"
    r"|melanoma\w*|sarcoma\w*|glioma\w*|\w*blastoma\w*|metasta\w*|oncolog\w*|adenoma\w*"
    r"|myeloma\w*|mesothelioma\w*|carcinogen\w*|chemotherap\w*)",
    re.IGNORECASE,
)


class KeywordRule:
    """P(Cancer) graded by keyword hits: 0.05 with none, 0.55/0.75/0.85/... up to 0.95."""

    def predict_proba(self, texts: list[str], prompt: str = "default") -> np.ndarray:
        counts = np.array([len(KEYWORD_PATTERN.findall(t)) for t in texts], dtype=np.float64)
        graded = 0.95 - 0.4 * 0.5 ** np.maximum(counts - 1, 0)
        return np.where(counts > 0, graded, 0.05)


VECTORIZER_PARAMS = {
    "lowercase": True,
    "ngram_range": (1, 2),
    "min_df": 2,
    "max_features": 20000,
    "sublinear_tf": True,
}
C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)


class TfidfLogReg:
    """TF-IDF features -> logistic regression; a linear model over plain arrays."""

    def __init__(self, vocabulary: dict[str, int], idf: np.ndarray, coef: np.ndarray,
                 intercept: float, meta: dict | None = None):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(**VECTORIZER_PARAMS, vocabulary=vocabulary)
        self.vectorizer.idf_ = idf
        self.coef, self.intercept = coef, intercept
        self.meta = meta or {}

    def predict_proba(self, texts: list[str], prompt: str = "default") -> np.ndarray:
        if not texts:
            return np.zeros(0)
        z = self.vectorizer.transform(texts) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.asarray(z).ravel()))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        vocab = {term: int(i) for term, i in self.vectorizer.vocabulary.items()}
        (folder / "vocabulary.json").write_text(json.dumps(vocab, sort_keys=True))
        np.savez_compressed(
            folder / "weights.npz", idf=self.vectorizer.idf_, coef=self.coef,
            intercept=np.array([self.intercept]),
        )
        (folder / "training.json").write_text(json.dumps(self.meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> TfidfLogReg:
        if not (folder / "weights.npz").exists():
            raise FileNotFoundError(
                f"TF-IDF model not found in {folder}; fit it with "
                "`python -m finetune.train --model tfidf-logreg`"
            )
        vocab = json.loads((folder / "vocabulary.json").read_text())
        with np.load(folder / "weights.npz") as arrays:
            idf, coef, intercept = arrays["idf"], arrays["coef"], float(arrays["intercept"][0])
        meta = json.loads((folder / "training.json").read_text()) if (
            folder / "training.json").exists() else {}
        return cls(vocab, idf, coef, intercept, meta)


def fit_tfidf(train_texts: list[str], train_y: list[int], val_texts: list[str],
              val_y: list[int], seed: int = 13) -> TfidfLogReg:
    """Fit on train, pick C by val log-loss, then keep that fit (val never enters training)."""
    import time

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss

    t0 = time.time()
    vectorizer = TfidfVectorizer(**VECTORIZER_PARAMS)
    x_train = vectorizer.fit_transform(train_texts)
    x_val = vectorizer.transform(val_texts)
    fits: list[tuple[dict[str, float], LogisticRegression]] = []
    for c in C_GRID:
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x_train, train_y)
        p = clf.predict_proba(x_val)[:, 1]
        fits.append(({"C": c, "val_loss": float(log_loss(val_y, p, labels=[0, 1])),
                      "val_accuracy": float(accuracy_score(val_y, p >= 0.5))}, clf))
    history = [r for r, _ in fits]
    row, clf = min(fits, key=lambda f: f[0]["val_loss"])  # first of equal losses
    meta = {
        "model": "tfidf-logreg",
        "version": time.strftime("%Y%m%d-%H%M%S", time.gmtime()),
        "train_examples": len(train_texts),
        "val_examples": len(val_texts),
        "vectorizer": {k: list(v) if isinstance(v, tuple) else v
                       for k, v in VECTORIZER_PARAMS.items()},
        "C": row["C"],
        "history": history,
        "steps": len(C_GRID),
        "wall_time_s": round(time.time() - t0, 2),
    }
    return TfidfLogReg(
        {t: int(i) for t, i in vectorizer.vocabulary_.items()}, vectorizer.idf_,
        clf.coef_.ravel().astype(np.float64), float(clf.intercept_[0]), meta,
    )
