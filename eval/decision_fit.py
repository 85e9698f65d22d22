"""Fit the graph's fused Cancer decision and choose its operating point, never on test.

    python -m eval.decision_fit [--config FILE] [--repeats 20]

Data. The 1.5B (and the MiniLM re-query) were trained on the train split, so their scores
are clean on val only (100 abstracts). The disease evidence comes from a dictionary and an
NER model that never saw these abstracts, so it is clean on train + val (800). Two ways to
fit the same five coefficients are compared by repeated stratified 5-fold CV on val:

- `val-only`: both logistic stages fitted on val, L2 with C chosen by CV log-loss;
- `cross-fit`: an evidence-only logistic model fitted on train + val (out-of-fold scores for
  every row), stacked on val with the two classifier logits; composed back into one linear
  model over the same features, so records show the same contributions.

Each variant's held-out folds replay the whole policy (the verifier's re-query trigger, the
`first` or `full` stage, the operating point), the way the graph runs it. The rule, written
before any test figure exists: the variant with the lowest repeated-CV log-loss wins; the
fused decision replaces the 1.5B alone only when its CV log-loss is lower too. The winner is
refitted on all of val and written to `adapters/decision/<model>.json` (coefficients, the
held-out fused scores its operating point is read from) with a card; the report goes to
reports/decision/fit.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from core.settings import PROJECT_ROOT, ConfigError, Settings, load_model_config, load_settings
from eval.decision_data import Rows, load_rows, with_requery
from tools.decision import (
    EVIDENCE_FEATURES,
    STAGES,
    DecisionModel,
    Stage,
    choose_threshold,
    decision_path,
    find_problem,
)

REPORT_DIR = PROJECT_ROOT / "reports" / "decision"
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
VARIANTS = ("first-call", "val-only", "cross-fit")
SEED = 13


def design(rows: Rows, features: tuple[str, ...], idx: np.ndarray | None = None) -> np.ndarray:
    """Feature matrix with the re-query present for every row (the `full` stage's view)."""
    idx = np.arange(len(rows.ids)) if idx is None else idx
    table = rows.__dict__.get("_features")
    if table is None:  # every feature of every row, computed once per Rows
        table = rows.__dict__["_features"] = [with_requery(rows, k).features()
                                              for k in range(len(rows.ids))]
    return np.array([[table[k][f] for f in features] for k in idx])


def fit_lr(x: np.ndarray, y: np.ndarray, c: float) -> tuple[float, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=1000).fit(x, y)
    return float(model.intercept_[0]), model.coef_[0]


def evidence_scores(rows: list[Rows], c: float, folds: int = 5) -> tuple[list[np.ndarray], Stage]:
    """Out-of-fold evidence-only logits for every row of `rows` (pooled), and the model fitted
    on all of them."""
    from sklearn.model_selection import StratifiedKFold

    x = np.vstack([design(r, EVIDENCE_FEATURES) for r in rows])
    y = np.concatenate([r.y for r in rows])
    oof = np.zeros(len(y))
    for train, held in StratifiedKFold(folds, shuffle=True, random_state=SEED).split(x, y):
        b, w = fit_lr(x[train], y[train], c)
        oof[held] = b + x[held] @ w
    b, w = fit_lr(x, y, c)
    sizes = np.cumsum([0] + [len(r.y) for r in rows])
    return ([oof[sizes[i]:sizes[i + 1]] for i in range(len(rows))],
            Stage(b, dict(zip(EVIDENCE_FEATURES, w.tolist(), strict=True))))


def fit_stages(rows: Rows, idx: np.ndarray, variant: str, c: float,
               evidence: tuple[np.ndarray, Stage] | None) -> dict[str, Stage]:
    """Both stages on rows[idx]. `cross-fit` stacks the classifier logits on the evidence
    model's out-of-fold logit and folds the evidence model's weights back in."""
    stages = {}
    for name, features in STAGES.items():
        if variant == "first-call":
            features = ("first_call",)
        calls = tuple(f for f in features if f not in EVIDENCE_FEATURES)
        if variant == "cross-fit":
            if evidence is None:
                raise ValueError("cross-fit needs the evidence model's out-of-fold logits")
            oof, ev = evidence
            x = np.column_stack([design(rows, calls, idx), oof[idx]])
            b, w = fit_lr(x, rows.y[idx], c)
            coef = dict(zip(calls, w[:-1].tolist(), strict=True))
            coef.update({f: w[-1] * ev.coef[f] for f in EVIDENCE_FEATURES})
            stages[name] = Stage(b + w[-1] * ev.intercept, coef)
        else:
            b, w = fit_lr(design(rows, features, idx), rows.y[idx], c)
            stages[name] = Stage(b, dict(zip(features, w.tolist(), strict=True)))
    return stages


def policy(rows: Rows, idx: np.ndarray, stages: dict[str, Stage], threshold: float,
           confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """(final P(Cancer), re-queried) per row of idx, as the graph's verifier + decide nodes."""
    tmp = DecisionModel(rows.first_model, list(rows.requery_call), stages, {}, "", "")
    p, asked = np.zeros(len(idx)), np.zeros(len(idx), dtype=bool)
    for j, k in enumerate(idx):
        p1 = tmp.p_cancer(rows.evidence[k], "first")
        mentions = [{"name": n, "is_cancer": True} for n in rows.evidence[k].cancer_concepts]
        asked[j] = find_problem(p1, mentions, confidence, threshold) is not None
        p[j] = tmp.p_cancer(with_requery(rows, k), "full") if asked[j] else p1
    return p, asked


Fitted = list[tuple[np.ndarray, dict[str, Stage]]]  # (held-out rows, stages fitted without them)


def cv_fits(rows: Rows, variant: str, c: float, repeats: int,
            evidence: tuple[np.ndarray, Stage] | None) -> Fitted:
    """Both stages fitted on each training part of repeated stratified 5-fold CV on `rows`.
    They do not depend on the verifier's threshold, so one set serves every threshold."""
    from sklearn.model_selection import RepeatedStratifiedKFold

    splits = RepeatedStratifiedKFold(n_splits=5, n_repeats=repeats, random_state=SEED).split(
        np.zeros(len(rows.y)), rows.y)
    return [(held, fit_stages(rows, train, variant, c, evidence)) for train, held in splits]


def replay_cv(rows: Rows, fitted: Fitted, target: float, confidence: float) -> dict:
    """Held-out fused P(Cancer) of every CV pass, replaying the verifier's trigger at
    `confidence`. The operating point of each pass is read from the previous pass's held-out
    scores (3 passes settle it). Scores come repeat by repeat, each repeat covering every row."""
    threshold = 0.5
    for _ in range(3):
        p_parts: list[np.ndarray] = []
        y_parts: list[np.ndarray] = []
        asked_parts: list[np.ndarray] = []
        for held, stages in fitted:
            ph, ah = policy(rows, held, stages, threshold, confidence)
            p_parts.append(ph)
            asked_parts.append(ah)
            y_parts.append(rows.y[held])
        p, y = np.concatenate(p_parts), np.concatenate(y_parts)
        asked = np.concatenate(asked_parts)
        threshold = choose_threshold(p, y, target)
    return {"p": p, "y": y, "requeried": asked, "threshold": threshold}


def cross_validate(rows: Rows, variant: str, c: float, target: float, confidence: float,
                   repeats: int, evidence: tuple[np.ndarray, Stage] | None) -> dict:
    """Held-out fused P(Cancer) over repeated stratified 5-fold CV on `rows`."""
    return replay_cv(rows, cv_fits(rows, variant, c, repeats, evidence), target, confidence)


def summarise(p: np.ndarray, y: np.ndarray, threshold: float) -> dict:
    from sklearn.metrics import log_loss, roc_auc_score

    from core import metrics as M

    pred = (p >= threshold).astype(int)
    tp, fn = int(((pred == 1) & (y == 1)).sum()), int(((pred == 0) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    return {
        "log_loss": round(float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])), 4),
        "accuracy": round(float((pred == y).mean()), 4),
        "recall_cancer": round(tp / max(tp + fn, 1), 4),
        "precision_cancer": round(tp / max(tp + fp, 1), 4),
        "roc_auc": round(float(roc_auc_score(y, p)), 4),
        "ece": round(float(M.point_metrics(y, p)["ece"]), 4),
        "threshold": round(float(threshold), 4),
    }


def cross_fit_evidence(train: Rows, val: Rows) -> dict[float, tuple[np.ndarray, Stage]]:
    """Per C: val's out-of-fold evidence-only logits (fitted over train + val) and the model."""
    out = {}
    for c in C_GRID:
        [_, oof], ev = evidence_scores([train, val], c)
        out[c] = (oof, ev)
    return out


def candidate_fits(val: Rows, variants: tuple[str, ...], repeats: int,
                   evidence: dict[float, tuple[np.ndarray, Stage]] | None) -> list[dict]:
    """Every (variant, C) the fit compares, with its CV stages (`evidence`: for cross-fit)."""
    out = []
    for variant in dict.fromkeys(("first-call", *variants)):
        for c in C_GRID if variant != "first-call" else (1.0,):
            ev = None
            if variant == "cross-fit":
                if evidence is None:
                    raise ValueError("cross-fit needs the evidence model (cross_fit_evidence)")
                ev = evidence[c]
            out.append({"variant": variant, "C": c, "_fits": cv_fits(val, variant, c, repeats, ev),
                        "_evidence": ev})
    return out


def select(val: Rows, fits: list[dict], target: float, confidence: float) -> dict:
    """The adoption rule over CV-replayed candidates at one verifier threshold `confidence`:
    the fused (variant, C) with the lowest CV log-loss (ties: val-only, smaller C) replaces
    the first call alone only if its log-loss is lower."""
    candidates = []
    for f in fits:
        cv = replay_cv(val, f["_fits"], target, confidence)
        summary = summarise(cv["p"], cv["y"], cv["threshold"])
        summary["requery_rate"] = round(float(cv["requeried"].mean()), 4)
        candidates.append({"variant": f["variant"], "C": f["C"], **summary, "_cv": cv,
                           "_evidence": f["_evidence"]})
    baseline = next(r for r in candidates if r["variant"] == "first-call")
    fused = [r for r in candidates if r["variant"] != "first-call"]
    best = min(fused, key=lambda r: (r["log_loss"], r["variant"] != "val-only", r["C"]))
    adopted = best if best["log_loss"] < baseline["log_loss"] else baseline
    return {"candidates": candidates, "baseline": baseline, "best": best, "adopted": adopted}


def fit(settings: Settings, repeats: int, out: Path, folder: Path,
        variants: tuple[str, ...] = VARIANTS) -> dict:
    target = settings.decision.target_recall
    confidence = settings.verifier.confidence_threshold
    val = load_rows("val", settings)
    train = load_rows("train", settings, scores=False) if "cross-fit" in variants else None
    evidence = cross_fit_evidence(train, val) if train is not None else None
    with threadpool_limits(1):  # thousands of tiny fits: BLAS threads only contend (14x here)
        chosen = select(val, candidate_fits(val, variants, repeats, evidence), target, confidence)
    candidates, baseline = chosen["candidates"], chosen["baseline"]
    best, adopted = chosen["best"], chosen["adopted"]
    for r in candidates:
        print(f"{r['variant']} C={r['C']}: {json.dumps(_public(r))}", file=sys.stderr,
              flush=True)
    stages = fit_stages(val, np.arange(len(val.y)), adopted["variant"], adopted["C"],
                        adopted["_evidence"])
    cv = adopted["_cv"]
    version = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    model = DecisionModel(
        first_model=val.first_model, requery_call=list(val.requery_call), stages=stages,
        held_out={"p_cancer": np.round(cv["p"], 6).tolist(), "label": cv["y"].tolist()},
        fitted_on=f"val n={len(val.y)}, {adopted['variant']}, C={adopted['C']}",
        version=version,
        extra={"variant": adopted["variant"], "C": adopted["C"], "repeats": repeats,
               "target_recall_at_fit": target, "cv": _public(adopted)},
    )
    path = decision_path(folder, load_model_config(val.first_model).name)
    model.save(path)
    report = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "version": version,
        "first_model": val.first_model, "requery_call": list(val.requery_call),
        "n_val": len(val.y), "n_train": len(train.y) if train else 0, "repeats": repeats,
        "variants": list(dict.fromkeys(("first-call", *variants))),
        "target_recall": target, "confidence_threshold": confidence,
        "candidates": [_public(r) for r in candidates], "baseline": _public(baseline),
        "best_fused": _public(best), "adopted": _public(adopted),
        "stages": {k: {"intercept": s.intercept, "coef": s.coef} for k, s in stages.items()},
        "threshold": model.threshold(target), "path": _shown(path),
        "val_one_error_note": _val_errors(val),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "fit.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "fit.md").write_text(render(report))
    (folder / "README.md").write_text(card(report))
    plot(report, adopted["_cv"], baseline["_cv"], out / "fit.png")
    return report


def _shown(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def _public(r: dict) -> dict:
    return {k: v for k, v in r.items() if not k.startswith("_")}


def _val_errors(val: Rows) -> str:
    wrong = int(((val.first >= 0.5).astype(int) != val.y).sum())
    return (f"the first call alone (calibrated, 0.5) gets {wrong} of {len(val.y)} val abstracts "
            f"wrong: val nearly separates, so the coefficients lean on the L2 penalty")


def _table(rows: list[dict]) -> str:
    lines = ["| variant | C | CV log-loss | accuracy | Cancer recall | precision | ROC-AUC | "
             "ECE | threshold | re-queried |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['C']} | {r['log_loss']:.4f} | {r['accuracy']:.3f} | "
                     f"{r['recall_cancer']:.3f} | {r['precision_cancer']:.3f} | "
                     f"{r['roc_auc']:.4f} | {r['ece']:.3f} | {r['threshold']:.3f} | "
                     f"{r['requery_rate']:.1%} |")
    return "\n".join(lines)


def _coef_table(stages: dict) -> str:
    features = list(STAGES["full"])
    lines = ["| stage | intercept | " + " | ".join(features) + " |",
             "|---|---|" + "---|" * len(features)]
    for name, s in stages.items():
        cells = [f"{s['coef'][f]:+.3f}" if f in s["coef"] else "-" for f in features]
        lines.append(f"| {name} | {s['intercept']:+.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(report: dict) -> str:
    a = report["adopted"]
    return f"""# The fused Cancer decision: fit on val ({report['when']})

Generated by `python -m eval.decision_fit` (`make decision-fit`). First call
`{report['first_model']}`, re-query `{' / '.join(report['requery_call'])}`. Every figure
below is from held-out folds of repeated stratified 5-fold CV on the {report['n_val']} val
abstracts ({report['repeats']} repeats; {report['repeats'] * report['n_val']} held-out scores in
all), replaying the verifier's re-query trigger (confidence threshold
{report['confidence_threshold']}) and the operating point for a target Cancer recall of
{report['target_recall']}, as the graph runs them. The test split is not read.

Why val: the 1.5B and MiniLM were trained on train, so their train scores are in-sample;
{report['val_one_error_note']}. {_cross_fit_note(report)}

## Adoption rule (written before any test figure)

Lowest repeated-CV log-loss among the fused variants and C values wins (ties: val-only,
smaller C); it replaces the first call alone (`first-call`: a Platt map of the first call's
logit, the same CV) only if its CV log-loss is lower. The operating point is the largest
threshold <= 0.5 whose held-out Cancer recall reaches the target.

Adopted: **{a['variant']}, C={a['C']}**, CV log-loss {a['log_loss']:.4f} against
{report['baseline']['log_loss']:.4f} for the first call alone; threshold
**{report['threshold']:.3f}**. Choosing C among {len(C_GRID)} values on the same folds
makes its CV figures slightly optimistic.

{_table(report['candidates'])}

## Coefficients (log-odds per unit of each feature; `{report['path']}`)

Features: `first_call` / `requery` = the call's logit(P(Cancer)) (calibrated P as the
graph's attempts hold it, |logit| capped at 9); `cancer_concepts` = log(1 + distinct cancer
concepts); `cancer_in_title` = 1 when one is in the title; `cancer_mentions` = log(1 +
cancer mentions). `first` scores an abstract before (or without) a re-query; `full` after
one.

{_coef_table(report['stages'])}

![held-out fused P(Cancer) vs the first call alone](fit.png)
"""


def _cross_fit_note(report: dict) -> str:
    if not report["n_train"]:
        return "The `cross-fit` variant was not run in this fit (`--variants`)."
    return (f"The `cross-fit` variant learns the disease-evidence weights from train + val "
            f"({report['n_train'] + report['n_val']} abstracts, out-of-fold), where that "
            f"evidence is clean (the extractor never saw these abstracts).")


def card(report: dict) -> str:
    return f"""# Fused Cancer decision for `{report['first_model']}`

`{Path(report['path']).name}` holds two logistic models (plain JSON: intercept and one
coefficient per feature) that the graph's `decide` node (agents/decision.py) reads, and the
held-out fused scores of the fit's CV, from which the threshold for any
`decision.target_recall` is chosen at load time.

- Version {report['version']}, fitted {report['when']} on the val split
  ({report['n_val']} abstracts; variant {report['adopted']['variant']}, C={report['adopted']['C']}).
- First call `{report['first_model']}`; re-query `{' / '.join(report['requery_call'])}` (the
  ladder's first rung). Another re-query call is not used by this fit: the record says so.
- Threshold at target recall {report['target_recall']}: {report['threshold']:.3f}.
- Held-out CV on val: log-loss {report['adopted']['log_loss']:.4f}, accuracy
  {report['adopted']['accuracy']:.3f}, Cancer recall {report['adopted']['recall_cancer']:.3f},
  ECE {report['adopted']['ece']:.3f} (reports/decision/fit.md).

{_coef_table(report['stages'])}

Refit (after a new adapter, backend, calibration or ladder): `make decision-fit`
(`python -m eval.decision_fit`); it reads scores through the classifier registry and
the prediction cache, so only what changed is re-scored.
"""


def plot(report: dict, cv: dict, base: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=120)
    for ax, got, title in ((axes[0], base, "first call alone"), (axes[1], cv, "fused decision")):
        for label, colour in ((1, "#c44"), (0, "#48a")):
            ax.hist(got["p"][got["y"] == label], bins=np.linspace(0, 1, 26), alpha=0.6,
                    color=colour, label="Cancer" if label else "Non-Cancer")
        ax.axvline(got["threshold"], color="k", linestyle="--", label="operating point")
        ax.set_yscale("log")
        ax.set_xlabel("held-out P(Cancer) (val, repeated CV)")
        ax.set_title(title)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("--model", default=None, help="the first-call classifier")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS[1:], default=list(VARIANTS[1:]),
                        help="fused variants to compare (cross-fit reads train's disease "
                             "evidence: the NER route over 700 abstracts)")
    parser.add_argument("--out", type=Path, default=REPORT_DIR)
    parser.add_argument("--folder", type=Path, default=None,
                        help="where to write <model>.json (default: decision.path)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config,
                                 classifier={"model": args.model} if args.model else None)
        report = fit(settings, args.repeats, args.out, args.folder or settings.decision.folder(),
                     tuple(args.variants))
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"adopted {report['adopted']['variant']} C={report['adopted']['C']}: threshold "
          f"{report['threshold']:.3f} -> {report['path']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
