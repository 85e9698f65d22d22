"""Choose how the disease routes combine, by document-level k-fold cross-validation.

    python -m eval.disease_rules [--folds 5] [--repeats 5] [--adapter DIR] [--limit N]
        [--no-write-config]

The dictionary and the NER model run once per dev document (NCBI Disease dev + BC5CDR
dev; the encoder's scores are cached, eval/disease_data.py); every merge rule of a grid
(core.settings.MergeRule) is scored per document. The selection procedure is
"the rule with the best mean exact F1 over the two corpora". Applied to all dev documents
it gives the rule written into configs/default.yaml (`diseases.*`); applied inside each
training fold and scored on the held-out documents it gives the cross-validated figure of
that procedure. The gap between the two is the optimism of choosing on dev.

Why dev documents only: the train documents taught both the encoder and the dictionary's
lexicon, stop-list and modifier words, so the model's scores there are in-sample (the
report measures how far) and a rule chosen on them would trust the model too much.
Writes reports/diseases/rules.{json,md,png}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import time
from itertools import product
from pathlib import Path

import numpy as np

from core.settings import PROJECT_ROOT, MergeRule
from eval.disease_data import CORPORA, candidates, read_corpus
from eval.diseases import TARGETS, describe, in_gold_offsets
from tools.diseases import resolve
from tools.diseases.corpus import GoldDoc
from tools.diseases.model import ADAPTER_DIR

PRIORITIES = (("dictionary", "model", "llm"), ("model", "dictionary", "llm"))
MODEL_SCORES = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
DICTIONARY_SUPPORTS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
WIDEN_SCORES = (None, 0.8, 0.9, 0.95, 0.99)
CONFIG = PROJECT_ROOT / "configs" / "default.yaml"


def grid() -> list[MergeRule]:
    return [MergeRule(*values) for values in
            product(PRIORITIES, MODEL_SCORES, DICTIONARY_SUPPORTS, WIDEN_SCORES)]


def document_folds(groups: dict[str, list[str]], k: int,
                   seed: int = 0) -> dict[str, dict[str, int]]:
    """Fold (0..k-1) of every document, per group (corpus): whole documents only, each group
    spread evenly over the folds, the same for the same ids and seed whatever their order.

    Documents are ordered by sha256(seed:id) and dealt round-robin, so a fold's share of
    each corpus differs by at most one document.
    """
    if k < 2:
        raise ValueError("k-fold cross-validation needs k >= 2")
    out = {}
    for group, ids in groups.items():
        unique = sorted(set(ids), key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
        if len(unique) < k:
            raise ValueError(f"{group}: {len(unique)} documents cannot fill {k} folds")
        out[group] = {doc_id: n % k for n, doc_id in enumerate(unique)}
    return out


def _f1(counts: np.ndarray) -> np.ndarray:
    """Exact F1 from summed (tp, predicted, gold) counts along the last axis."""
    tp, pred, gold = counts[..., 0], counts[..., 1], counts[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        f = 2 * tp / (pred + gold)
    return np.nan_to_num(f)


def rule_counts(docs: list[GoldDoc], cands: list, rules: list[MergeRule]) -> np.ndarray:
    """(rules, docs, 3): exact-match tp, predicted and gold mention counts per rule and doc."""
    out = np.zeros((len(rules), len(docs), 3), dtype=np.int64)
    for r, rule in enumerate(rules):
        # spans only: the concept chooser changes concepts, never spans, so it stays off here
        preds = in_gold_offsets(docs, [resolve(c, rule, chooser=False) for c in cands])
        for d, (doc, pred) in enumerate(zip(docs, preds, strict=True)):
            gold = {(m.start, m.end) for m in doc.mentions}
            spans = {(s, e) for s, e, *_ in pred}
            out[r, d] = (len(gold & spans), len(spans), len(gold))
    return out


def choose(counts: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> int:
    """The selection procedure: best mean exact F1 over corpora on the masked documents
    (ties: the earlier grid row)."""
    mean = np.mean([_f1(counts[c][:, masks[c]].sum(1)) for c in counts], axis=0)
    return int(np.argmax(mean))


def cross_validate(counts: dict[str, np.ndarray], pmids: dict[str, list[str]], k: int,
                   repeats: int) -> dict:
    """Out-of-fold exact F1 of the selection procedure, per repeat (seed) and corpus."""
    per_repeat, chosen = [], []
    for seed in range(repeats):
        folds = document_folds(pmids, k, seed)
        fold_of = {c: np.array([folds[c][p] for p in pmids[c]]) for c in counts}
        oof = {c: np.zeros(3, dtype=np.int64) for c in counts}
        for f in range(k):
            best = choose(counts, {c: fold_of[c] != f for c in counts})
            chosen.append(best)
            for c in counts:
                oof[c] += counts[c][best, fold_of[c] == f].sum(0)
        per_repeat.append({c: float(_f1(oof[c])) for c in counts})
    return {"per_repeat": per_repeat, "chosen_in_folds": chosen,
            "f1": {c: round(float(np.mean([r[c] for r in per_repeat])), 4) for c in counts},
            "f1_range": {c: [round(min(r[c] for r in per_repeat), 4),
                             round(max(r[c] for r in per_repeat), 4)] for c in counts}}


def _row(rule: MergeRule, counts: dict[str, np.ndarray], i: int) -> dict:
    f1 = {c: round(float(_f1(counts[c][i].sum(0))), 4) for c in counts}
    return {"rule": describe(rule), "priority": list(rule.priority),
            "min_model_score": rule.min_model_score,
            "min_dictionary_support": rule.min_dictionary_support,
            "min_widen_score": rule.min_widen_score, "exact_f1": f1,
            "mean_exact_f1": round(sum(f1.values()) / len(f1), 4)}


def sweep(limit: int | None, k: int, repeats: int, adapter: Path) -> dict:
    rules = grid()
    corpora = {corpus: read_corpus(corpus, limit) for corpus in CORPORA}
    pmids = {c: [d.pmid for d in docs] for c, docs in corpora.items()}
    document_folds(pmids, k)  # enough documents for the folds? before the costly scoring
    counts = {}
    for corpus, docs in corpora.items():
        counts[corpus] = rule_counts(docs, candidates(docs, adapter), rules)
        print(f"{corpus}: {len(rules)} rules scored on {len(docs)} docs", flush=True)
    rows = [_row(r, counts, i) for i, r in enumerate(rules)]
    best = choose(counts, {c: np.ones(len(pmids[c]), bool) for c in counts})
    cv = cross_validate(counts, pmids, k, repeats)
    in_sample = rows[best]["exact_f1"]
    cv["optimism"] = {c: round(in_sample[c] - cv["f1"][c], 4) for c in counts}
    cv["mean_f1"] = round(float(np.mean(list(cv["f1"].values()))), 4)
    chosen_counts: dict[int, int] = {}
    for i in cv.pop("chosen_in_folds"):
        chosen_counts[i] = chosen_counts.get(i, 0) + 1
    cv["rules_chosen_in_folds"] = sorted(
        ({"rule": rows[i]["rule"], "folds": n} for i, n in chosen_counts.items()),
        key=lambda r: -r["folds"])
    plain = {p[0] + "-first": next(r for r in rows if r["priority"] == list(p)
                                   and r["min_model_score"] == 0
                                   and r["min_dictionary_support"] == 0
                                   and r["min_widen_score"] is None) for p in PRIORITIES}
    return {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "limit": limit, "adapter": str(adapter.relative_to(PROJECT_ROOT)
                                       if adapter.is_relative_to(PROJECT_ROOT) else adapter),
        "docs": {c: len(p) for c, p in pmids.items()},
        "folds": k, "repeats": repeats,
        "grid": {"priorities": [list(p) for p in PRIORITIES], "min_model_score": MODEL_SCORES,
                 "min_dictionary_support": DICTIONARY_SUPPORTS, "min_widen_score": WIDEN_SCORES},
        "best": rows[best], "cross_validated": cv, "plain_union": plain,
        "best_without_widening": max((r for r in rows if r["min_widen_score"] is None),
                                     key=lambda r: r["mean_exact_f1"]),
        "rows": rows,
    }


def write_config(best: dict, path: Path = CONFIG) -> None:
    """The chosen rule into the `diseases:` block of the YAML, comments kept."""
    text = path.read_text()
    widen = "null" if best["min_widen_score"] is None else f"{best['min_widen_score']:g}"
    values = {"merge_priority": "[" + ", ".join(best["priority"]) + "]",
              "min_model_score": f"{best['min_model_score']:g}",
              "min_dictionary_support": f"{best['min_dictionary_support']:g}",
              "min_widen_score": widen}
    for key, value in values.items():
        def keep_spacing(m: re.Match[str], v: str = value) -> str:
            return m.group(1) + v + m.group(3)

        text, n = re.subn(rf"^(  {key}:[ ]*)(\S.*?)(\s*(?:#.*)?)$", keep_spacing, text, count=1,
                          flags=re.M)
        if n != 1:
            raise SystemExit(f"{path}: no `diseases.{key}` line to set")
    path.write_text(text)


def _markdown(report: dict) -> str:
    corpora = list(CORPORA)
    cv = report["cross_validated"]

    def line(name: str, row: dict) -> str:
        return (f"| {name}: {row['rule']} | "
                + " | ".join(f"{row['exact_f1'][c]:.3f}" for c in corpora)
                + f" | **{row['mean_exact_f1']:.3f}** |")

    lines = [
        "# Disease routes: how dictionary and model combine (cross-validated on dev documents)",
        "",
        f"Generated by `python -m eval.disease_rules` on {report['when']}; adapter "
        f"`{report['adapter']}`; " + ", ".join(f"{c} {n}" for c, n in report["docs"].items())
        + f" documents; {len(report['rows'])} merge rules, "
        f"scored per document on the same candidates.",
        "",
        "Selection procedure: the rule with the best mean exact F1 over the two corpora. "
        "Applied to all dev documents it chose the rule now in configs/default.yaml; its "
        "in-sample figure is optimistic by the choice. The cross-validated figure re-runs "
        f"the procedure in {report['folds']}-fold document-level cross-validation "
        f"({report['repeats']} repeats, folds stratified by corpus) and scores each held-out fold "
        "with the rule its training folds chose.",
        "",
        "| figure | " + " | ".join(f"{c} exact F1" for c in corpora) + " | mean |",
        "|---|" + "---|" * (len(corpora) + 1),
        line("**chosen on all dev (in-sample)**", report["best"]),
        "| **cross-validated (out-of-fold), mean of repeats** | "
        + " | ".join(f"{cv['f1'][c]:.3f} ({cv['f1_range'][c][0]:.3f}-{cv['f1_range'][c][1]:.3f})"
                     for c in corpora) + f" | **{cv['mean_f1']:.3f}** |",
        "| optimism (in-sample - cross-validated) | "
        + " | ".join(f"{cv['optimism'][c]:+.3f}" for c in corpora) + " | |",
        *(line(f"plain union, {k}", r) for k, r in report["plain_union"].items()),
        line("best without widening (in-sample)", report["best_without_widening"]),
        "",
        "Rules the training folds chose (folds out of "
        f"{report['folds'] * report['repeats']}):",
        "",
        *(f"- {r['folds']}: {r['rule']}" for r in cv["rules_chosen_in_folds"][:8]),
        "",
        "Targets (issue 20, combined route, exact F1 under a cross-validated rule): "
        + ", ".join(f"{k} >= {v}" for k, v in TARGETS.items()) + ".",
    ]
    return "\n".join(lines) + "\n"


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best_priority, best_widen = report["best"]["priority"], report["best"]["min_widen_score"]
    grid_ = np.zeros((len(MODEL_SCORES), len(DICTIONARY_SUPPORTS)))
    for row in report["rows"]:
        if row["priority"] == best_priority and row["min_widen_score"] == best_widen:
            i = MODEL_SCORES.index(row["min_model_score"])
            j = DICTIONARY_SUPPORTS.index(row["min_dictionary_support"])
            grid_[i, j] = row["mean_exact_f1"]
    fig, ax = plt.subplots(figsize=(7, 5))
    im = ax.imshow(grid_, cmap="viridis", aspect="auto")
    for i, j in product(range(grid_.shape[0]), range(grid_.shape[1])):
        ax.text(j, i, f"{grid_[i, j]:.3f}", ha="center", va="center", fontsize=7, color="w")
    ax.set_xticks(range(len(DICTIONARY_SUPPORTS)), [f"{v:g}" for v in DICTIONARY_SUPPORTS])
    ax.set_yticks(range(len(MODEL_SCORES)), [f"{v:g}" for v in MODEL_SCORES])
    ax.set_xlabel("min model support for a dictionary span")
    ax.set_ylabel("min model score to propose a span")
    widen = "no widening" if best_widen is None else f"widen at {best_widen:g}"
    ax.set_title(f"Mean dev exact F1 (in-sample), {best_priority[0]}-first, {widen}")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="first N docs per corpus (smoke runs)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5, help="cross-validation repeats (seeds)")
    ap.add_argument("--adapter", type=Path, default=ADAPTER_DIR)
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "reports" / "diseases")
    ap.add_argument("--no-write-config", action="store_true",
                    help="report only (candidate adapters, smoke runs)")
    args = ap.parse_args(argv)
    if not (args.adapter / "adapter_config.json").exists():
        raise SystemExit(f"no NER adapter in {args.adapter}: run `python -m finetune.train_ner`")
    try:
        report = sweep(args.limit, args.folds, args.repeats, args.adapter.resolve())
    except ValueError as exc:  # too few documents for the folds asked
        raise SystemExit(f"eval.disease_rules: {exc}") from None
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rules.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "rules.md").write_text(_markdown(report))
    _plot(report, args.out / "rules.png")
    best, cv = report["best"], report["cross_validated"]
    print(f"chosen: {best['rule']} -> in-sample {best['exact_f1']}, cross-validated {cv['f1']}")
    if not (args.no_write_config or args.limit):
        write_config(best)
        print(f"wrote the rule into {CONFIG}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
