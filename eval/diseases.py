"""Disease extraction on the NCBI Disease and BC5CDR dev sets, per route.

    python -m eval.diseases [--routes dictionary model combined] [--limit N]
        [--merge-priority model dictionary] [--min-model-score P] [--min-dictionary-support P]
        [--min-widen-score P]

Writes reports/diseases/{metrics.json,README.md,f1.png}: mention-level precision,
recall and F1 (exact span; overlapping span), concept F1 at mention level (exact span and
a gold concept) and at document level (sets of concept ids; gold ids canonicalised to
MEDIC primary ids, "-1" dropped), and throughput (abstracts/s, the whole uncached
pipeline: preprocessing, extraction, offset mapping, over --speed-docs documents) per
route. The merge rule defaults to configs/default.yaml's (`eval.disease_rules` chooses it
by cross-validation on these dev sets).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from core.settings import PROJECT_ROOT, ROUTE_PRIORITY, MergeRule, load_settings
from eval.disease_data import CORPORA, candidates, engine_tag
from tools.diseases import Candidates, adapter_available, extract_batch, find_candidates, resolve
from tools.diseases.corpus import GoldDoc, read_pubtator
from tools.diseases.lexicon import load_vocabulary
from tools.preprocess import preprocess

ROUTE_SETS = {
    "dictionary": ("dictionary",),
    "model": ("model",),
    "combined": ("dictionary", "model"),
    "llm": ("llm",),
}
# issue 20: exact F1 of the combined route under a cross-validated rule, NCBI concept F1,
# throughput of the default route on 2 cores
TARGETS = {"ncbi_dev": 0.89, "bc5cdr_dev": 0.87}
CONCEPT_TARGET = {"ncbi_dev": 0.85}
SPEED_TARGET = 20.0


def describe(rule: MergeRule) -> str:
    widen = ("never widened" if rule.min_widen_score is None else
             f"widened to a model span of mean P(disease) >= {rule.min_widen_score:g}")
    return (f"priority {' > '.join(rule.priority)}, model spans need mean P(disease) >= "
            f"{rule.min_model_score:g}, dictionary spans need model support >= "
            f"{rule.min_dictionary_support:g}, dictionary spans {widen}")


def _prf(tp_p: int, n_pred: int, tp_g: int, n_gold: int) -> dict[str, float]:
    p = tp_p / n_pred if n_pred else 0.0
    r = tp_g / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}


def predict(docs: list[GoldDoc], routes: tuple[str, ...],
            rule: MergeRule) -> tuple[list[list[tuple]], float]:
    """Predicted (start, end, concept) in title + " " + abstract offsets, and seconds taken."""
    t0 = time.perf_counter()
    pre = [preprocess(d.title, d.abstract) for d in docs]
    batches = extract_batch(pre, routes, rule=rule)
    seconds = time.perf_counter() - t0
    return in_gold_offsets(docs, batches), seconds


def route_candidates(cands: list[Candidates], routes: tuple[str, ...]) -> list[Candidates]:
    """The candidates one route set would have produced (the model's scores only with it)."""
    return [replace(c, spans=[s for s in c.spans if s.source.split("+")[0] in routes],
                    scores=c.scores if "model" in routes else None) for c in cands]


def in_gold_offsets(docs: list[GoldDoc], batches: list[list]) -> list[list[tuple]]:
    """Mentions (title/abstract fields) as (start, end, concept, every concept) into
    title + " " + abstract; every concept is a composite's parts, else (concept,)."""
    out = []
    for doc, mentions in zip(docs, batches, strict=True):
        shift = len(doc.title) + 1
        out.append([
            (m.start + (0 if m.field == "title" else shift),
             m.end + (0 if m.field == "title" else shift), m.concept_id,
             tuple(m.parts) or (m.concept_id,))
            for m in mentions
        ])
    return out


def gold_ids(vocab, concept: str) -> set[str]:
    """A gold id column as MEDIC primary ids: "D1|D2" (composite) and "D1+D2" give both,
    "-1" (not normalised) none."""
    return {vocab.canonical(i) for i in re.split(r"[|+]", concept)
            if i.strip() and i.strip() != "-1"}


def score(docs: list[GoldDoc], preds: list[list[tuple]]) -> dict:
    vocab = load_vocabulary()
    n_pred = n_gold = tp_exact = 0
    tp_ov_p = tp_ov_g = 0
    doc_tp = doc_pred = doc_gold = 0
    tp_concept = 0
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for doc, pred in zip(docs, preds, strict=True):
        gold = {(m.start, m.end) for m in doc.mentions}
        spans = {(s, e) for s, e, *_ in pred}
        gold_concepts = {(m.start, m.end): gold_ids(vocab, m.concept) for m in doc.mentions}
        tp_concept += len({(s, e) for s, e, c, _ in pred if c in gold_concepts.get((s, e), ())})
        n_pred += len(spans)
        n_gold += len(gold)
        tp_exact += len(spans & gold)
        tp_ov_p += sum(any(s < ge and gs < e for gs, ge in gold) for s, e in spans)
        tp_ov_g += sum(any(s < ge and gs < e for s, e in spans) for gs, ge in gold)
        fp.update(doc.text[s:e].lower() for s, e in spans - gold)
        fn.update(doc.text[s:e].lower() for s, e in gold - spans)
        doc_gold_ids = {i for m in doc.mentions for i in gold_ids(vocab, m.concept)}
        pred_ids = {i for *_, ids in pred for i in ids}
        doc_tp += len(doc_gold_ids & pred_ids)
        doc_pred += len(pred_ids)
        doc_gold += len(doc_gold_ids)
    return {
        "exact": _prf(tp_exact, n_pred, tp_exact, n_gold),
        "overlap": _prf(tp_ov_p, n_pred, tp_ov_g, n_gold),
        "doc_concept": _prf(doc_tp, doc_pred, doc_tp, doc_gold),
        "mention_concept": _prf(tp_concept, n_pred, tp_concept, n_gold),
        "counts": {"pred": n_pred, "gold": n_gold, "docs": len(docs)},
        "top_false_positives": fp.most_common(15),
        "top_false_negatives": fn.most_common(15),
    }


def _markdown(report: dict) -> str:
    lines = [
        "# Disease extraction: NCBI Disease dev and BC5CDR dev (disease mentions)",
        "",
        f"Generated by `python -m eval.diseases` on {report['when']}; load average at start "
        f"{report['load_at_start']}, torch threads {report['threads']}, NER engine "
        f"{report['ner_engine']} (`diseases.model_backend`; reports/diseases/engines.md "
        "compares the engines in one run).",
        "",
        f"Merge rule: {report['rule']}.",
        "",
        "Definitions. Exact: a predicted span counts when its offsets equal a gold mention's. "
        "Mention concept F1: a prediction counts when its span is exact AND its concept is one "
        "of that mention's gold ids (MEDIC primary ids; a composite's ids are all accepted). "
        "Doc concept F1: per document the set of predicted concept ids (a composite mention "
        "brings all its parts) against the set of gold ids, counts summed over documents. "
        "Quality comes from the cached encoder scores (eval/disease_data.py); speed is the "
        "whole uncached pipeline (preprocessing, routes, merge, offset mapping) over the first "
        "documents of each corpus, in wall-clock abstracts/s and per CPU-second of this process.",
        "",
        "| corpus | route | exact P | exact R | exact F1 | overlap F1 | mention concept F1 "
        "| doc concept F1 | abstracts/s | per CPU-s | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for corpus, routes in report["results"].items():
        for route, r in routes.items():
            lines.append(
                f"| {corpus} | {route} | {r['exact']['precision']:.3f} | {r['exact']['recall']:.3f}"
                f" | **{r['exact']['f1']:.3f}** | {r['overlap']['f1']:.3f}"
                f" | {r['mention_concept']['f1']:.3f} | {r['doc_concept']['f1']:.3f}"
                f" | {r['abstracts_per_s']:.1f} | {r['speed']['abstracts_per_cpu_s']:.1f}"
                f" | {r['speed']['load_at_start']} |"
            )
    for what, why in report.get("skipped", {}).items():
        lines.append(f"| {what.replace('/', ' | ')} | skipped: {why} ||||||||| ")
    lines += ["", "Targets (issue 20; the exact-F1 ones are for the cross-validated rule, "
              "reports/diseases/rules.md): exact F1 " + ", ".join(
                  f"{k} >= {v}" for k, v in TARGETS.items())
              + "; concept F1 " + ", ".join(f"{k} >= {v}" for k, v in CONCEPT_TARGET.items())
              + f"; combined route >= {SPEED_TARGET:g} abstracts/s on 2 cores.", ""]
    for corpus, routes in report["results"].items():
        for route, r in routes.items():
            lines.append(f"- {corpus} / {route}: top false positives "
                         + ", ".join(f"`{t}` ({n})" for t, n in r["top_false_positives"][:8]))
            lines.append(f"- {corpus} / {route}: top false negatives "
                         + ", ".join(f"`{t}` ({n})" for t, n in r["top_false_negatives"][:8]))
    return "\n".join(lines) + "\n"


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpora = list(report["results"])
    routes = list(next(iter(report["results"].values())))
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(routes))
    for j, route in enumerate(routes):
        xs = [i + j * width for i in range(len(corpora))]
        ys = [report["results"][c][route]["exact"]["f1"] for c in corpora]
        ax.bar(xs, ys, width, label=route)
    for i, c in enumerate(corpora):
        if c in TARGETS:
            ax.hlines(TARGETS[c], i - width / 2, i + 0.8 - width / 2, colors="k", linestyles="--")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(corpora))], corpora)
    ax.set_ylabel("mention-level exact F1")
    ax.set_ylim(0, 1)
    ax.set_title("Disease NER (dashed: combined-route target)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routes", nargs="+", default=["dictionary", "model", "combined"],
                    choices=list(ROUTE_SETS))
    ap.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    ap.add_argument("--limit", type=int, default=None, help="first N docs per corpus (smoke runs)")
    ap.add_argument("--speed-docs", type=int, default=100,
                    help="first N docs per corpus timed through the whole uncached pipeline")
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "reports" / "diseases")
    settings = load_settings()
    configured = settings.diseases
    ap.add_argument("--merge-priority", nargs="+", choices=ROUTE_PRIORITY,
                    default=configured.merge_priority, help="overlapping spans: earlier wins")
    ap.add_argument("--min-model-score", type=float, default=configured.min_model_score)
    ap.add_argument("--min-dictionary-support", type=float,
                    default=configured.min_dictionary_support)
    ap.add_argument("--min-widen-score", type=float, default=configured.min_widen_score,
                    help="a model span this sure sets a dictionary span's bounds (omit: never)")
    args = ap.parse_args(argv)

    import torch

    data = settings.data_path()
    rule = MergeRule(tuple(args.merge_priority), args.min_model_score,
                     args.min_dictionary_support, args.min_widen_score)
    load_vocabulary()  # build/load once, outside the timings
    report: dict = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_at_start": round(os.getloadavg()[0], 2),
        "threads": torch.get_num_threads(),
        "ner_engine": engine_tag(configured.model_backend),
        "limit": args.limit,
        "rule": describe(rule),
        "results": {},
    }
    for corpus in args.corpora:
        docs = read_pubtator(data / CORPORA[corpus])[: args.limit]
        report["results"][corpus] = {}
        cached = None
        for route in args.routes:
            if "model" in ROUTE_SETS[route] and not adapter_available():
                why = "no NER adapter in adapters/ner-minilm/ (run `python -m finetune.train_ner`)"
                print(f"{corpus} {route}: skipped ({why})")
                report.setdefault("skipped", {})[f"{corpus}/{route}"] = why
                continue
            if route == "llm":
                preds, _ = predict(docs, ROUTE_SETS[route], rule)
            else:  # quality from the cached encoder scores; speed measured below, uncached
                if cached is None:
                    cached = candidates(docs) if adapter_available() else None
                cands = (route_candidates(cached, ROUTE_SETS[route]) if cached is not None
                         else find_candidates([preprocess(d.title, d.abstract) for d in docs],
                                              ROUTE_SETS[route]))
                preds = in_gold_offsets(docs, [resolve(c, rule) for c in cands])
            result = score(docs, preds)
            speed_docs = docs[: args.speed_docs]
            warm = preprocess(docs[0].title, docs[0].abstract)
            extract_batch([warm], ROUTE_SETS[route])  # loads models outside the timing
            cpu0 = time.process_time()
            _, seconds = predict(speed_docs, ROUTE_SETS[route], rule)
            cpu = time.process_time() - cpu0
            result["speed"] = {"docs": len(speed_docs),
                               "load_at_start": round(os.getloadavg()[0], 2),
                               "abstracts_per_s": round(len(speed_docs) / seconds, 1),
                               "abstracts_per_cpu_s": round(len(speed_docs) / cpu, 1)}
            result["abstracts_per_s"] = result["speed"]["abstracts_per_s"]
            report["results"][corpus][route] = result
            ex = result["exact"]
            print(f"{corpus:11s} {route:10s} exact F1 {ex['f1']:.3f} (P {ex['precision']:.3f} "
                  f"R {ex['recall']:.3f}) overlap F1 {result['overlap']['f1']:.3f} "
                  f"concept F1 mention {result['mention_concept']['f1']:.3f} "
                  f"doc {result['doc_concept']['f1']:.3f}; {result['abstracts_per_s']:.1f}/s "
                  f"({result['speed']['abstracts_per_cpu_s']:.1f} per CPU-s)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "README.md").write_text(_markdown(report))
    _plot(report, args.out / "f1.png")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
