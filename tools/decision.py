"""The fused Cancer decision: a small logistic model over what the graph already knows.

Inputs per abstract (`Evidence`): every classifier call's P(Cancer), read as a logit (the
first call and, when the verifier asked, its re-query), and the disease evidence (distinct
cancer concepts found, whether one is in the title, how many cancer mentions). Two logistic
regressions share the evidence features: `first` (no re-query yet; the verifier reads it to
decide whether to ask again) and `full` (with the re-query's logit), so a re-query never
enters as a plain mean and an abstract that was not re-queried is never scored by a model
that expects a second call. Both are fitted by `python -m eval.decision_fit` on data the
test split never touches and stored as plain JSON (`adapters/decision/<model>.json`) with
the held-out fused scores the operating point is chosen from.

The operating point: the largest threshold on the fused P(Cancer) whose held-out Cancer
recall reaches `decision.target_recall`, never above 0.5 (recall first), so a record can
say Cancer at P(Cancer) < 0.5; the record names the threshold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from core.labels import Label
from core.schema import Contribution, Decision

CLASSIFIER_FEATURES = ("first_call", "requery")
EVIDENCE_FEATURES = ("cancer_concepts", "cancer_in_title", "cancer_mentions")
STAGES = {"first": ("first_call", *EVIDENCE_FEATURES),
          "full": ("first_call", "requery", *EVIDENCE_FEATURES)}
LOGIT_CLIP = 9.0  # |logit| cap: P beyond 1.2e-4 / 0.99988 adds no more evidence
_EPS = 1e-9


def logit(p: float) -> float:
    p = min(max(float(p), _EPS), 1.0 - _EPS)
    return max(-LOGIT_CLIP, min(LOGIT_CLIP, math.log(p / (1.0 - p))))


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


@dataclass(frozen=True)
class Call:
    model: str
    view: str
    prompt: str
    p_cancer: float

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model, self.view, self.prompt)


@dataclass(frozen=True)
class Evidence:
    """What one abstract offers the decision."""

    first: Call
    requery: Call | None = None
    cancer_concepts: tuple[str, ...] = ()  # distinct readable names, title ones first
    title_concepts: tuple[str, ...] = ()
    cancer_mentions: int = 0

    @classmethod
    def from_state(cls, attempts: Sequence[dict], mentions: Sequence[dict]) -> Evidence:
        """From the graph's attempts (graph.schema.Attempt dicts) and disease mentions."""
        calls = [Call(a["model"], a["view"], a["prompt"], float(a["p_cancer"])) for a in attempts]
        cancer = [m for m in mentions if m.get("is_cancer")]
        title = tuple(dict.fromkeys(m["name"] for m in cancer if m.get("field") == "title"))
        names = tuple(dict.fromkeys([*title, *(m["name"] for m in cancer)]))
        return cls(calls[0], calls[1] if len(calls) > 1 else None, names, title, len(cancer))

    def features(self) -> dict[str, float]:
        return {
            "first_call": logit(self.first.p_cancer),
            "requery": logit(self.requery.p_cancer) if self.requery else 0.0,
            "cancer_concepts": math.log1p(len(self.cancer_concepts)),
            "cancer_in_title": float(bool(self.title_concepts)),
            "cancer_mentions": math.log1p(self.cancer_mentions),
        }


@dataclass
class Stage:
    """One logistic regression: P(Cancer) = sigmoid(intercept + sum coef[f] * feature f)."""

    intercept: float
    coef: dict[str, float]

    def logit(self, features: dict[str, float]) -> float:
        return self.intercept + sum(c * features[f] for f, c in self.coef.items())


@dataclass
class DecisionModel:
    """A fitted decision for one first-call model and one re-query call (plain JSON)."""

    first_model: str  # the classifier whose first call it reads
    requery_call: list[str]  # [model, view, prompt] of the re-query it was fitted with
    stages: dict[str, Stage]
    held_out: dict[str, list[float]]  # fused P(Cancer) on held-out folds + labels (0/1)
    fitted_on: str  # what it was fitted on, in words
    version: str
    extra: dict = field(default_factory=dict)  # fit settings and measurements (the card's)

    def describe(self) -> str:
        return f"decision {self.version} ({self.fitted_on})"

    def threshold(self, target_recall: float) -> float:
        memo = self.__dict__.setdefault("_thresholds", {})  # not a field: never saved
        if target_recall not in memo:
            memo[target_recall] = choose_threshold(self.held_out["p_cancer"],
                                                   self.held_out["label"], target_recall)
        return memo[target_recall]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        path.write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> DecisionModel:
        data = json.loads(path.read_text())
        data["stages"] = {k: Stage(**v) for k, v in data["stages"].items()}
        return cls(**data)

    def stage_for(self, evidence: Evidence) -> str:
        """`full` only when the re-query is the call the model was fitted with."""
        fits = evidence.requery is not None and list(evidence.requery.key) == self.requery_call
        return "full" if fits else "first"

    def p_cancer(self, evidence: Evidence, stage: str | None = None) -> float:
        stage = stage or self.stage_for(evidence)
        return sigmoid(self.stages[stage].logit(evidence.features()))

    def decide(self, evidence: Evidence, target_recall: float) -> Decision:
        stage = self.stage_for(evidence)
        model = self.stages[stage]
        feats = evidence.features()
        p = sigmoid(model.logit(feats))
        threshold = self.threshold(target_recall)
        label: Label = "Cancer" if p >= threshold else "Non-Cancer"
        contributions = [
            Contribution(feature=f, value=round(feats[f], 4), contribution=round(c * feats[f], 4),
                         detail=_detail(f, evidence))
            for f, c in model.coef.items()
        ]
        note = ""
        if evidence.requery is not None and stage == "first":
            note = f"; re-query {'/'.join(evidence.requery.key)} not used (not fitted)"
        return Decision(
            label=label, p_cancer=round(p, 6), threshold=round(threshold, 6),
            target_recall=target_recall, intercept=round(model.intercept, 4),
            contributions=contributions,
            explanation=explain(label, evidence) + note,
            model=f"{self.describe()}; stage {stage}",
        )


def _detail(feature: str, e: Evidence) -> str:
    if feature == "first_call":
        return f"{e.first.model} P={e.first.p_cancer:.3f}"
    if feature == "requery":
        return f"{e.requery.model} P={e.requery.p_cancer:.3f}" if e.requery else "no re-query"
    if feature == "cancer_in_title":
        return ", ".join(e.title_concepts) or "none in the title"
    if feature == "cancer_mentions":
        return f"{e.cancer_mentions} cancer mention(s)"
    return ", ".join(e.cancer_concepts) or "no cancer concept"


def explain(label: str, e: Evidence) -> str:
    """One line a curator reads: the calls, then the disease evidence."""
    calls = [f"{e.first.model} {e.first.p_cancer:.2f}"]
    if e.requery is not None:
        calls.append(f"re-query {e.requery.model} {e.requery.p_cancer:.2f}")
    n = len(e.cancer_concepts)
    if n == 0:
        diseases = "no cancer concept found"
    else:
        diseases = f"{n} cancer concept{'s' if n > 1 else ''}"
        if e.title_concepts:
            which = "one" if len(e.title_concepts) == 1 else str(len(e.title_concepts))
            diseases += f", {which} in the title ({', '.join(e.title_concepts[:3])})"
        else:
            diseases += f" ({', '.join(e.cancer_concepts[:3])})"
    return f"{label}: {', '.join(calls)}; {diseases}"


def find_problem(p_cancer: float, mentions: list[dict], threshold: float,
                 cut: float = 0.5) -> str | None:
    """Why the decision needs another call, or None. `cut` is the operating point (Cancer when
    P >= cut); at 0.5 "unsure" is the plain max(P, 1 - P) < threshold."""
    cancer = sorted({m["name"] for m in mentions if m.get("is_cancer")})
    margin = abs(logit(p_cancer) - logit(cut))
    if margin < logit(threshold):
        return (f"P(Cancer) {p_cancer:.2f} is within the confidence band of the operating point "
                f"{cut:.2f} (threshold {threshold:.2f})")
    if p_cancer < cut and cancer:
        return f"labelled Non-Cancer but cancer concepts were found: {', '.join(cancer[:3])}"
    if p_cancer >= cut and not cancer:
        return "labelled Cancer but no cancer concept was found"
    return None


def choose_threshold(p_cancer: ArrayLike, labels: ArrayLike, target_recall: float) -> float:
    """The largest threshold t <= 0.5 whose recall (P >= t) over the held-out Cancer rows
    reaches the target: with n Cancer rows, at most floor(n * (1 - target)) fall below t."""
    p = np.asarray(p_cancer, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    pos = np.sort(p[y == 1])
    if pos.size == 0:
        raise ValueError("choosing an operating point needs held-out Cancer rows")
    misses = int(math.floor(pos.size * (1.0 - target_recall) + 1e-9))
    return float(min(pos[min(misses, pos.size - 1)], 0.5))


def fallback_decision(evidence: Evidence, reason: str) -> Decision:
    """No fitted decision for this classifier: the first call's calibrated P at 0.5, said so."""
    p = evidence.first.p_cancer
    label: Label = "Cancer" if p >= 0.5 else "Non-Cancer"
    return Decision(label=label, p_cancer=round(p, 6), threshold=0.5, target_recall=0.0,
                    intercept=0.0,
                    contributions=[Contribution(feature="first_call", value=round(logit(p), 4),
                                                contribution=round(logit(p), 4),
                                                detail=_detail("first_call", evidence))],
                    explanation=explain(label, evidence), model=f"none: {reason}")


def decision_path(folder: Path, model: str) -> Path:
    return folder / f"{model}.json"


_LOADED: dict[Path, tuple[float, DecisionModel]] = {}


def load_decision(folder: Path, model: str) -> DecisionModel | None:
    """The fitted decision for a classifier model, or None when there is none; reloaded when
    the file changes (a refit), otherwise read once per process."""
    path = decision_path(folder, model)
    if not path.exists():
        return None
    mtime = path.stat().st_mtime
    cached = _LOADED.get(path)
    if cached is None or cached[0] != mtime:
        cached = _LOADED[path] = (mtime, DecisionModel.load(path))
    return cached[1]
