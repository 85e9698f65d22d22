"""Fit the concept chooser on the train mentions; measure it on the dev sets.

    python -m eval.disease_normaliser [--folds 5] [--seed 0] [--no-write-artefact]

1. Candidates and features for every NCBI train + BC5CDR train gold mention, with the
   train statistics (P(concept | string), concept contexts) computed OUT OF FOLD: k folds
   of train documents, each fold's mentions described by the other folds' statistics
   (the vocabulary's lexicon holds every train string, so in-sample they would be perfect).
2. The regularisation C of the logistic scorer chosen by a second document-level k-fold
   CV over those rows (top-1 accuracy over all train mentions); in-sample accuracy beside
   it is the optimism. The scorer fitted on all rows with that C is written to
   adapters/disease-chooser/chooser.json.
3. On NCBI dev and BC5CDR dev (default route, configured merge rule, cached encoder
   scores): mention and doc concept F1 with the rules' concepts and with the chooser's,
   every wrong concept sorted by the path that chose it (and whether the gold id was among
   the candidates), the adoption verdict (docs/diseases.md: mention concept F1 must not
   fall on either corpus and must rise on at least one), and the chooser's added time per
   abstract (rules and chooser interleaved in one run).
Writes reports/diseases/normaliser.{json,md}. Dev documents are only evaluated on.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np

from core.settings import PROJECT_ROOT
from eval.disease_data import CORPORA, candidates, read_corpus
from eval.diseases import gold_ids, in_gold_offsets, route_candidates, score
from tools.diseases import Candidates, configured_rule, resolve
from tools.diseases.abbrev import find_abbreviations
from tools.diseases.chooser import (
    FEATURES,
    Candidate,
    ChooserModel,
    FuzzyIndex,
    add_document_features,
    matrix,
)
from tools.diseases.chooser import candidates as concept_candidates
from tools.diseases.composite import composite_concepts
from tools.diseases.concept_index import (
    ConceptData,
    DocWords,
    TrainMention,
    load_concept_data,
    train_stats,
)
from tools.diseases.context_concepts import CHOOSER_PATH, _loaded, fuzzy_index
from tools.diseases.lexicon import load_vocabulary
from tools.diseases.vocab import Vocabulary, bag_key, key_of

C_GRID = (0.01, 0.1, 1.0, 10.0)
PATHS = ("train lexicon", "MEDIC name", "MEDIC synonym", "organ variant", "word-order key",
         "char TF-IDF", "abbreviation long form", "composite part", "inner name (widened)")
Row = tuple[TrainMention, list[Candidate]]


def folds_of(mentions: list[TrainMention], k: int, seed: int) -> dict[str, int]:
    docs = sorted({m.doc for m in mentions})
    random.Random(seed).shuffle(docs)
    return {d: i % k for i, d in enumerate(docs)}


def oof_rows(data: ConceptData, fuzzy: FuzzyIndex | None, k: int, seed: int) -> list[Row]:
    """Every train mention with its candidates, statistics from the other folds only."""
    fold = folds_of(data.mentions, k, seed)
    rows: list[Row] = []
    for f in range(k):
        stats = train_stats([m for m in data.mentions if fold[m.doc] != f])
        by_doc: dict[str, list[Row]] = {}
        for m in data.mentions:
            if fold[m.doc] == f:
                by_doc.setdefault(m.doc, []).append(
                    (m, concept_candidates(m.key, m.context, m.doc_words, data.medic, stats,
                                           fuzzy)))
        for doc_rows in by_doc.values():
            add_document_features([(m.key, cs) for m, cs in doc_rows], data.medic)
            rows += doc_rows
    return rows


def fit(rows: list[Row], c: float) -> ChooserModel:
    """Logistic regression over standardised features, one row per candidate (label: it is
    a gold id), on the mentions with a choice to make."""
    from sklearn.linear_model import LogisticRegression

    usable = [(m, cs) for m, cs in rows if len(cs) > 1 and any(x.concept_id in m.ids for x in cs)]
    x = np.vstack([matrix(cs) for _, cs in usable])
    y = np.concatenate([[x.concept_id in m.ids for x in cs] for m, cs in usable])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    lr = LogisticRegression(C=c, max_iter=5000).fit((x - mean) / scale, y)
    return ChooserModel(mean, scale, lr.coef_[0], float(lr.intercept_[0]))


def correct(model: ChooserModel | None, rows: list[Row]) -> int:
    """Train mentions whose chosen concept is a gold id (None: the rules' pick)."""
    n = 0
    for m, cs in rows:
        if model is None:
            chosen = next((c.concept_id for c in cs if c.values["rule_pick"]), None)
        else:
            chosen = model.choose(cs)
        n += chosen in m.ids
    return n


def choose_c(rows: list[Row], k: int, seed: int) -> dict:
    """Document-level k-fold CV of C (a split independent of the out-of-fold one)."""
    return {str(c): {"cv_correct": _cv(rows, k, seed, c),
                     "in_sample_correct": correct(fit(rows, c), rows)} for c in C_GRID}


FEATURE_GROUPS = {
    "context (train contexts, MEDIC words)": ("context_similarity", "context_gap", "best_context",
                                             "medic_words_in_context", "medic_words_in_doc"),
    "document (other strings' picks)": ("doc_same_pick", "doc_related_pick"),
    "train prior (out of fold)": ("train_share", "train_log_count", "train_bag_share"),
    "rules' pick": ("rule_pick", "rule_evidence_share"),
}


def _without(rows: list[Row], names: tuple[str, ...]) -> list[Row]:
    """The rows with a feature group held constant (the scorer cannot use it)."""
    return [(m, [Candidate(c.concept_id, {**c.values, **dict.fromkeys(names, 0.0)})
                 for c in cs]) for m, cs in rows]


def _cv(rows: list[Row], k: int, seed: int, c: float) -> int:
    fold = folds_of([m for m, _ in rows], k, seed + 1)
    return sum(correct(fit([r for r in rows if fold[r[0].doc] != f], c),
                       [r for r in rows if fold[r[0].doc] == f]) for f in range(k))


def ablations(rows: list[Row], k: int, seed: int, c: float) -> dict[str, int]:
    """Cross-validated correct mentions with each feature group removed (same folds)."""
    return {group: _cv(_without(rows, names), k, seed, c)
            for group, names in FEATURE_GROUPS.items()}


def boosted_cv(rows: list[Row], k: int, seed: int) -> int:
    """The same CV with a non-linear learner (gradient-boosted trees): how much a linear
    scorer leaves on the table."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    fold = folds_of([m for m, _ in rows], k, seed + 1)
    n = 0
    for f in range(k):
        train = [(m, cs) for m, cs in rows if fold[m.doc] != f and len(cs) > 1
                 and any(x.concept_id in m.ids for x in cs)]
        x = np.vstack([matrix(cs) for _, cs in train])
        y = np.concatenate([[x.concept_id in m.ids for x in cs] for m, cs in train])
        gbm = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                             min_samples_leaf=40, random_state=seed).fit(x, y)
        for m, cs in rows:
            if fold[m.doc] == f and cs:
                best = int(np.argmax(gbm.predict_proba(matrix(cs))[:, 1])) if len(cs) > 1 else 0
                n += cs[best].concept_id in m.ids
    return n


def save(model: ChooserModel, c: float, path: Path, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "features": list(FEATURES), "mean": model.mean.round(6).tolist(),
        "scale": model.scale.round(6).tolist(), "coef": model.coef.round(6).tolist(),
        "intercept": round(model.intercept, 6), "C": c, **meta,
    }, indent=1) + "\n")


def rule_path(vocab: Vocabulary, data: ConceptData, text: str, surface: str, source: str,
              parts: list[str]) -> str:
    """Which step of the rules gave a predicted mention its concept (PATHS)."""
    shorts = {a.short for a in find_abbreviations(text)}
    if "+abbreviation" in source or surface in shorts or surface.rstrip("s") in shorts:
        return "abbreviation long form"
    if parts or composite_concepts(vocab, surface):
        return "composite part"
    key = key_of(surface)
    if key in vocab.exact:
        if key in data.stats.by_key:
            return "train lexicon"
        kind = data.medic.exact.get(key, {}).get(vocab.exact[key])
        return {"name": "MEDIC name", "synonym": "MEDIC synonym"}.get(kind or "", "organ variant")
    if bag_key(key.split()) in vocab.bag:
        return "word-order key"
    return "char TF-IDF" if source.startswith("model") else "inner name (widened)"


def evaluate(corpus: str, vocab: Vocabulary, data: ConceptData) -> dict:
    """Concept F1 with the rules and with the chooser; wrong concepts by path, both ways."""
    docs = read_corpus(corpus)
    cands = candidates(docs)
    rule = configured_rule()
    before = [resolve(c, rule, chooser=False) for c in cands]
    after = [resolve(c, rule, chooser=True) for c in cands]
    s_before = score(docs, in_gold_offsets(docs, before))
    s_after = score(docs, in_gold_offsets(docs, after))
    fuzzy = fuzzy_index(vocab)
    paths: dict[str, Counter[str]] = {p: Counter() for p in PATHS}
    for doc, b_ment, a_ment, cand in zip(docs, before, after, cands, strict=True):
        gold = {(m.start, m.end): gold_ids(vocab, m.concept) for m in doc.mentions}
        b_pred = in_gold_offsets([doc], [b_ment])[0]
        a_concept = {(s, e): c for s, e, c, _ in in_gold_offsets([doc], [a_ment])[0]}
        for (s, e, concept, _), m in zip(b_pred, b_ment, strict=True):
            ids = gold.get((s, e))
            if not ids:
                continue
            path = rule_path(vocab, data, cand.text, m.text, m.source, m.parts)
            now_right = a_concept.get((s, e)) in ids
            tally = paths[path]
            tally["exact spans"] += 1
            if concept in ids:
                tally["right, then wrong" if not now_right else "right"] += 1
                continue
            tally["wrong (rules)"] += 1
            tally["fixed by chooser" if now_right else "still wrong"] += 1
            options = concept_candidates(
                key_of(m.text), DocWords.of(doc.text).around(s, e), frozenset(),
                data.medic, data.stats, fuzzy if not m.source.startswith("dictionary") else None)
            tally["gold among candidates"] += any(c.concept_id in ids for c in options)
    # the ceiling of any chooser over these candidates: every offered gold id taken
    n_pred, n_gold = s_before["counts"]["pred"], s_before["counts"]["gold"]
    right = sum(t["right"] + t["right, then wrong"] + t["gold among candidates"]
                for t in paths.values())
    oracle = 2 * right / (n_pred + n_gold) if n_pred + n_gold else 0.0
    alone = route_candidates(cands, ("dictionary",))  # the route the chooser is not used on
    dictionary = {name: _concept(score(docs, in_gold_offsets(
        docs, [resolve(c, rule, chooser=flag) for c in alone])))
        for name, flag in (("before", False), ("after", True))}
    return {"before": _concept(s_before), "after": _concept(s_after),
            "dictionary_route": dictionary,
            "oracle_mention_concept_f1": round(oracle, 4),
            "paths": {p: dict(c) for p, c in paths.items() if c}}


def _concept(s: dict) -> dict:
    return {k: s[k] for k in ("exact", "mention_concept", "doc_concept")}


def added_time(cands: list[Candidates], repeats: int = 3) -> dict:
    """Seconds per abstract of resolve without and with the chooser, interleaved (medians)."""
    rule = configured_rule()
    resolve(cands[0], rule, chooser=True)  # loads the index and the artefact outside timing
    times: dict[str, list[float]] = {"rules": [], "chooser": []}
    for _ in range(repeats):
        for name, flag in (("rules", False), ("chooser", True)):
            t0 = time.perf_counter()
            for c in cands:
                resolve(c, rule, chooser=flag)
            times[name].append((time.perf_counter() - t0) / len(cands))
    rules, chooser = statistics.median(times["rules"]), statistics.median(times["chooser"])
    per_doc = sum(len(resolve(c, rule, chooser=False)) for c in cands) / len(cands)
    return {"mentions_per_abstract": round(per_doc, 2),
            "added_ms_per_mention": round(1000 * (chooser - rules) / max(per_doc, 1e-9), 3),
            "ms_per_abstract_rules": round(1000 * rules, 3),
            "ms_per_abstract_chooser": round(1000 * chooser, 3),
            "added_ms_per_abstract": round(1000 * (chooser - rules), 3)}


def _markdown(r: dict) -> str:
    cv = r["c_choice"]
    lines = [
        "# Concept chooser (issue 20): context-aware normalisation",
        "",
        f"Generated by `python -m eval.disease_normaliser` on {r['when']} (load average "
        f"{r['load_at_start']}). Fitted on {r['train_mentions']} gold mentions of NCBI train + "
        f"BC5CDR train ({r['train_docs']} documents); train statistics out of fold "
        f"({r['folds']} folds of documents). Dev documents are only evaluated on.",
        "",
        "## Train mentions (out of fold)",
        "",
        f"- gold id among the candidates: {r['oof']['covered']} of {r['train_mentions']} "
        f"({r['oof']['covered'] / r['train_mentions']:.1%}); more than one candidate: "
        f"{r['oof']['ambiguous']}; no candidate: {r['oof']['no_candidate']}.",
        f"- the rules' pick is a gold id for {r['oof']['rules_correct']}.",
        "",
        "| C | correct, cross-validated | correct, in-sample |",
        "|---|---|---|",
        *(f"| {c}{' (chosen)' if float(c) == r['C'] else ''} | {v['cv_correct']} | "
          f"{v['in_sample_correct']} |" for c, v in cv.items()),
        "",
        f"Same folds, other learners: gradient-boosted trees {r['boosted_cv_correct']}; the "
        f"linear scorer with one feature group removed:",
        "",
        *(f"- without {g}: {n}" for g, n in r["ablations"].items()),
        "",
        "Weights (standardised features) of the fitted scorer:",
        "",
        "| feature | weight |",
        "|---|---|",
        *(f"| {f} | {w:+.3f} |" for f, w in sorted(r["weights"].items(),
                                                   key=lambda x: -abs(x[1]))),
        "",
        "## Dev sets (default route, configured merge rule)",
        "",
        "| corpus | exact F1 | mention concept F1 rules | with chooser | ceiling over the "
        "candidates | doc concept F1 rules | with chooser |",
        "|---|---|---|---|---|---|---|",
    ]
    for corpus, e in r["dev"].items():
        lines.append(
            f"| {corpus} | {e['before']['exact']['f1']:.3f} | "
            f"{e['before']['mention_concept']['f1']:.4f} | "
            f"**{e['after']['mention_concept']['f1']:.4f}** | "
            f"{e['oracle_mention_concept_f1']:.4f} | {e['before']['doc_concept']['f1']:.4f} | "
            f"{e['after']['doc_concept']['f1']:.4f} |")
    lines += ["", "The dictionary route alone (where the configured chooser does not run): "
              "mention concept F1 " + "; ".join(
                  f"{c} {e['dictionary_route']['before']['mention_concept']['f1']:.4f} -> "
                  f"{e['dictionary_route']['after']['mention_concept']['f1']:.4f}"
                  for c, e in r["dev"].items()) + "."]
    lines += ["", "Ceiling: the mention concept F1 a chooser would reach if it took the gold id "
              "whenever the candidate generator offers it (spans unchanged; exact F1 bounds "
              "it).", "", f"Adoption rule (docs/diseases.md): {r['adoption']['rule']} Verdict: "
              f"**{r['adoption']['verdict']}**.", "",
              "## Where the concepts come from (dev, exact spans with a gold id)", "",
              "Path = the rules' step that gave the concept; `gold among candidates` counts "
              "the rules' wrong concepts whose gold id the candidate generator offers.", "",
              "| corpus | path | exact spans | wrong (rules) | gold among candidates | fixed by "
              "chooser | right, then wrong |", "|---|---|---|---|---|---|---|"]
    for corpus, e in r["dev"].items():
        for path, t in e["paths"].items():
            lines.append(f"| {corpus} | {path} | {t.get('exact spans', 0)} | "
                         f"{t.get('wrong (rules)', 0)} | {t.get('gold among candidates', 0)} | "
                         f"{t.get('fixed by chooser', 0)} | {t.get('right, then wrong', 0)} |")
    lines += ["", "## Cost", "", "resolve() per abstract from cached encoder scores, rules and "
              "chooser interleaved (median of 3):", ""]
    for corpus, t in r["timing"].items():
        lines.append(f"- {corpus}: {t['ms_per_abstract_rules']:.2f} ms without, "
                     f"{t['ms_per_abstract_chooser']:.2f} ms with the chooser "
                     f"(+{t['added_ms_per_abstract']:.2f} ms per abstract, "
                     f"{t['mentions_per_abstract']:.1f} mentions: +{t['added_ms_per_mention']:.2f}"
                     " ms per mention)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write-artefact", action="store_true",
                    help="fit and report; the dev figures then use the committed artefact")
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "reports" / "diseases")
    args = ap.parse_args(argv)
    report: dict = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "load_at_start": round(os.getloadavg()[0], 2), "folds": args.folds}
    vocab = load_vocabulary()
    data = load_concept_data()
    rows = oof_rows(data, fuzzy_index(vocab), args.folds, args.seed)
    report["train_mentions"] = len(rows)
    report["train_docs"] = len({m.doc for m, _ in rows})
    report["oof"] = {
        "covered": sum(any(c.concept_id in m.ids for c in cs) for m, cs in rows),
        "ambiguous": sum(len(cs) > 1 for _, cs in rows),
        "no_candidate": sum(not cs for _, cs in rows),
        "rules_correct": correct(None, rows),
    }
    report["c_choice"] = choose_c(rows, args.folds, args.seed)
    best = max(C_GRID, key=lambda c: (report["c_choice"][str(c)]["cv_correct"], -c))
    report["C"] = best
    report["ablations"] = ablations(rows, args.folds, args.seed, best)
    report["boosted_cv_correct"] = boosted_cv(rows, args.folds, args.seed)
    model = fit(rows, best)
    report["weights"] = dict(zip(FEATURES, model.coef.round(4).tolist(), strict=True))
    print(f"train: {report['oof']}; C={best}: {report['c_choice']}", flush=True)
    if not args.no_write_artefact:
        save(model, best, CHOOSER_PATH, {"fitted_on": "NCBI train + BC5CDR train gold mentions",
                                          "train_mentions": len(rows), "when": report["when"]})
    _loaded.cache_clear()  # the artefact just written, not one read before
    report["dev"] = {corpus: evaluate(corpus, vocab, data) for corpus in CORPORA}
    gains = {c: e["after"]["mention_concept"]["f1"] - e["before"]["mention_concept"]["f1"]
             for c, e in report["dev"].items()}
    report["adoption"] = {
        "rule": "mention concept F1 on NCBI dev and BC5CDR dev does not fall on either corpus "
                "and rises on at least one.",
        "gains": {c: round(g, 4) for c, g in gains.items()},
        "verdict": ("adopt" if all(g >= 0 for g in gains.values())
                    and any(g > 0 for g in gains.values()) else "keep as an option"),
    }
    report["timing"] = {corpus: added_time(candidates(read_corpus(corpus, 100)))
                        for corpus in CORPORA}
    for corpus, e in report["dev"].items():
        print(corpus, e["before"]["mention_concept"], "->", e["after"]["mention_concept"],
              report["timing"][corpus], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "normaliser.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "normaliser.md").write_text(_markdown(report))
    print(f"verdict: {report['adoption']['verdict']}; wrote {args.out}/normaliser.{{json,md}}")


if __name__ == "__main__":
    main()
