"""The decision's inputs for a whole split (or the out-of-domain set), read without the graph.

Classifier scores come through `eval.compare.predict` (the registry, cached per model,
adapter version and text hash; calibrated where the adapter has a map, as the graph's
attempts are), so a refit after a backend or adapter change re-scores only what changed.
The re-query may be any call (model, view, prompt); another view or prompt has a cache file
of its own (`make verifier-tune` loads every candidate rung this way).
The disease evidence is the graph's own extractor (configured routes and merge rule), cached
under ~/.cache/oncograph/decision/ keyed by the texts, routes, rule and NER adapter.
`replay` runs the verifier's policy and the fused decision over those rows exactly as the
graph would (tools/decision.py), so CV folds and the out-of-domain check need no graph run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from core.labels import Example
from core.settings import LadderStep, Settings, View
from eval.compare import REPORT_DIR, predict
from tools.decision import Call, DecisionModel, Evidence, find_problem
from tools.preprocess import Preprocessed

FIRST_VIEW, FIRST_PROMPT = "title_and_abstract", "default"


@dataclass
class Rows:
    """One set of abstracts: ids, gold labels (1 = Cancer) and everything the decision reads."""

    name: str
    ids: list[str]
    y: np.ndarray
    first: np.ndarray  # P(Cancer) of the first call (the configured classifier)
    requery: np.ndarray  # P(Cancer) of the ladder's first re-query call, for every row
    requery_call: tuple[str, str, str]
    first_model: str
    evidence: list[Evidence]  # with the first call only; `with_requery` adds the second


def requery_call(settings: Settings) -> tuple[str, str, str]:
    """The ladder's first rung as agents.classifier.next_call resolves it."""
    step = settings.verifier.ladder[0] if settings.verifier.ladder else LadderStep()
    call = (step.model or settings.classifier.model, step.view, step.prompt)
    if settings.verifier.max_requeries < 1 or call == (settings.classifier.model, FIRST_VIEW,
                                                         FIRST_PROMPT):
        raise ValueError("the decision is fitted with one re-query: set verifier.max_requeries "
                         ">= 1 and a first ladder rung that differs from the first call")
    return call


def _evidence_cache(docs: list[Preprocessed], settings: Settings) -> Path:
    from tools.diseases import model_info

    key = json.dumps({
        "texts": hashlib.sha256("\x1e".join(d.title.text + "\x1f" + d.abstract.text
                                            for d in docs).encode()).hexdigest(),
        "routes": settings.diseases.routes, "rule": settings.diseases.model_dump(),
        "models": [m.model_dump() for m in model_info(tuple(settings.diseases.routes))],
    }, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path.home() / ".cache" / "oncograph" / "decision" / f"mentions-{digest}.json"


def mentions_for(docs: list[Preprocessed], settings: Settings) -> list[list[dict]]:
    """The graph's disease mentions per document (as dicts), computed once per input set."""
    from tools.diseases import extract_batch

    path = _evidence_cache(docs, settings)
    if path.exists():
        return json.loads(path.read_text())
    found = extract_batch(docs, settings.diseases.routes, rule=settings.diseases.merge_rule(),
                          backend=settings.diseases.model_backend)
    mentions = [[m.model_dump() for m in ms] for ms in found]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(mentions))
    return mentions


def load_rows(name: str, settings: Settings, out: Path = REPORT_DIR,
              cached_only: bool = False, scores: bool = True,
              call: tuple[str, str, str] | None = None) -> Rows:
    """A split (train / val / test) or the out-of-domain dev set ("ood-dev"). `scores=False`
    reads the disease evidence only (classifier scores NaN): the classifiers' train scores
    are in-sample, and the 1.5B would take ~25 CPU-minutes to make them. `call` is the
    re-query (model, view, prompt); default: the configured ladder's first rung."""
    from eval.ood import OOD_NAME, load_ood
    from finetune.data import load_corpus, read_split
    from tools.preprocess import model_text, preprocess

    if name == OOD_NAME:
        ood = load_ood(settings)
        docs = [d.doc() for d in ood]
        ids, labels = [d.abstract_id for d in ood], [d.label for d in ood]
    else:
        corpus = {r.abstract_id: r for r in load_corpus(settings)}
        rows = [corpus[i] for i in read_split(name)]
        docs = [preprocess(r.title, r.abstract) for r in rows]
        ids, labels = [r.abstract_id for r in rows], [int(r.label == "Cancer") for r in rows]

    def examples(view: str) -> list[Example]:
        """What a call on this view sees (as finetune.data.to_example and the graph's calls)."""
        return [Example(i, model_text(d, cast(View, view)), y)
                for i, d, y in zip(ids, docs, labels, strict=True)]

    model = settings.classifier.model
    call = call or requery_call(settings)
    y = np.array(labels, dtype=int)
    p1 = p2 = np.full(len(ids), np.nan)
    if scores:  # rounded as the graph's attempts hold them; a view has a cache file of its own
        p1 = np.round(predict(model, "finetuned", name, out, False, cached_only,
                              examples(FIRST_VIEW))["p"], 6)
        view_name = name if call[1] == FIRST_VIEW else f"{name}__{call[1]}"
        p2 = np.round(predict(call[0], "finetuned", view_name, out, False, cached_only,
                              examples(call[1]), prompt=call[2])["p"], 6)
    evidence = [
        Evidence.from_state([{"model": model, "view": FIRST_VIEW, "prompt": FIRST_PROMPT,
                              "p_cancer": p}], ms)
        for p, ms in zip(p1, mentions_for(docs, settings), strict=True)
    ]
    return Rows(name, ids, y, p1, p2, call, model, evidence)


def with_requery(rows: Rows, k: int) -> Evidence:
    e = rows.evidence[k]
    return Evidence(e.first, Call(*rows.requery_call, float(rows.requery[k])),
                    e.cancer_concepts, e.title_concepts, e.cancer_mentions)


def replay(rows: Rows, model: DecisionModel, target_recall: float,
           settings: Settings) -> dict[str, np.ndarray]:
    """What the graph decides per row: fused P(Cancer), label, whether it re-queried."""
    threshold = model.threshold(target_recall)
    p, requeried = np.zeros(len(rows.ids)), np.zeros(len(rows.ids), dtype=bool)
    for k, e in enumerate(rows.evidence):
        p1 = model.p_cancer(e, "first")
        mentions = [{"name": n, "is_cancer": True} for n in e.cancer_concepts]
        problem = find_problem(p1, mentions, settings.verifier.confidence_threshold, threshold)
        requeried[k] = problem is not None
        p[k] = model.p_cancer(with_requery(rows, k), "full") if requeried[k] else p1
    p = np.round(p, 6)  # as the record holds it
    return {"p": p, "label": (p >= threshold).astype(int), "requeried": requeried,
            "threshold": np.full(len(p), threshold)}
