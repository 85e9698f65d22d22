"""Concept chooser: which of the concepts a mention string could name its context means.

Strings are ambiguous: "hereditary breast cancer" is the HBOC syndrome in some abstracts
and breast cancer in others; "psychosis" after a drug is substance-induced. The rules pick
the best-supported concept per string, whatever the context. Here every concept the
string could name is a candidate (`candidates`: MEDIC names/synonyms/organ variants and
train strings with the same key or word-order key, else the nearest keys by character
TF-IDF), each is described by a few features (`FEATURES`: string evidence, the train
prior P(concept | string), how well the concept's train contexts and MEDIC words match
the words around the mention, MeSH depth, whether the rules would pick it), and a
logistic model fitted on the train mentions (`eval/disease_normaliser.py`, priors out of
fold) scores them; the highest score wins.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tools.diseases.concept_index import MedicIndex, TrainStats, context_weight
from tools.diseases.normalise import key_similarities
from tools.diseases.vocab import bag_key

FEATURES = (
    "medic_name", "medic_synonym", "medic_organ", "word_order_only", "fuzzy_similarity",
    "train_share", "train_log_count", "train_bag_share", "rule_pick", "rule_evidence_share",
    "context_similarity", "medic_words_in_context", "medic_words_in_doc", "depth",
    "concept_log_count", "omim", "supplementary", "parent_of_candidate", "child_of_candidate",
    "context_gap", "best_context", "doc_same_pick", "doc_related_pick",
)
FUZZY_K, FUZZY_MIN = 5, 0.5  # nearest keys kept when no key matches; the rules' bar
# the rules' evidence per source (lexicon.build): a train annotation, a MEDIC name, a
# synonym, an organ-cancer variant
_EVIDENCE = {"train": 10.0, "name": 3.0, "synonym": 1.0, "organ": 0.5}


@dataclass
class FuzzyIndex:
    """Character 3-4-gram TF-IDF over every key (MEDIC's and the train strings'), kept
    n-gram-major so a lookup touches only the mention's n-grams (as normalise.py)."""

    vectoriser: object
    by_ngram: object  # scipy CSR, n-grams x keys
    keys: list[str]


def build_fuzzy(keys: list[str]) -> FuzzyIndex:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectoriser = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 4), sublinear_tf=True)
    matrix = vectoriser.fit_transform(keys)
    return FuzzyIndex(vectoriser, matrix.T.tocsr(), keys)


@dataclass
class Candidate:
    concept_id: str
    values: dict[str, float]


def _fuzzy_keys(fuzzy: FuzzyIndex, key: str,
                allowed: Callable[[str], bool]) -> list[tuple[str, float]]:
    """The FUZZY_K most similar allowed keys at cosine >= FUZZY_MIN (sparse: only the keys
    sharing an n-gram with the mention are touched)."""
    row = key_similarities(fuzzy.vectoriser, fuzzy.by_ngram, key).tocsr()
    keep = row.data >= FUZZY_MIN
    sims, idx = row.data[keep], row.indices[keep]
    hits = [(fuzzy.keys[i], float(v)) for v, i in
            sorted(zip(sims.tolist(), idx.tolist(), strict=True), reverse=True)]
    return [(k, v) for k, v in hits if allowed(k)][:FUZZY_K]


def candidates(key: str, context: frozenset[str], doc_words: frozenset[str],
               medic: MedicIndex, stats: TrainStats, fuzzy: FuzzyIndex | None) -> list[Candidate]:
    """Every concept the key could name, with FEATURES' values ([] when none)."""
    words = key.split()
    bag = bag_key(words)
    exact = dict(medic.exact.get(key, {}))
    train = stats.by_key.get(key)
    from_bag = set(medic.bag.get(bag, set())) if bag else set()
    train_bag = stats.by_bag.get(bag) if bag else None
    from_bag |= set(train_bag or ())
    similarity: dict[str, float] = {}
    if not exact and not train and not from_bag and fuzzy is not None:
        for k, sim in _fuzzy_keys(fuzzy, key, lambda k: k in medic.exact or k in stats.by_key):
            for cid in [*medic.exact.get(k, {}), *stats.by_key.get(k, {})]:
                similarity[cid] = max(similarity.get(cid, 0.0), sim)
    pool = list(dict.fromkeys([*exact, *(train or {}), *sorted(from_bag), *similarity]))
    if not pool:
        return []
    # the hierarchy around the string's concepts: annotators file "calcification" of vessels
    # under the parent, "psychosis" after a drug under a child (only children annotators
    # have used: a heading can have hundreds)
    parents = {p for c in pool for p in medic.parents.get(c, ())} - set(pool)
    children = {k for c in pool for k in medic.children.get(c, ())
                if stats.concept_count.get(k)} - set(pool) - parents
    evidence = {c: _EVIDENCE["train"] * (train or {}).get(c, 0)
                + _EVIDENCE.get(exact.get(c, ""), 0.0) for c in pool}
    if not any(evidence.values()):  # word-order or fuzzy: the rules' order of preference
        evidence = {c: similarity.get(c, 0.0) + (train_bag or {}).get(c, 0) for c in pool}
    rule = max(pool, key=lambda c: evidence[c])
    total_evidence = sum(evidence.values()) or 1.0
    n_train = sum((train or {}).values())
    n_bag = sum((train_bag or {}).values())
    key_words = set(words)
    ctx_weights = {w: stats.idf.get(w, 0.0) for w in context}
    ctx_norm = math.sqrt(sum(v * v for v in ctx_weights.values())) or 1.0
    out = []
    for c in [*pool, *sorted(parents), *sorted(children)]:
        profile = stats.context.get(c)
        ctx_sim = 0.0
        if profile:
            dot = sum(context_weight(profile[w]) * stats.idf.get(w, 0.0) * v
                      for w, v in ctx_weights.items() if w in profile)
            ctx_sim = dot / (ctx_norm * (stats.context_norm.get(c) or 1.0))
        extra = medic.words.get(c, frozenset()) - key_words
        kind = exact.get(c)
        out.append(Candidate(c, {
            "medic_name": float(kind == "name"),
            "medic_synonym": float(kind == "synonym"),
            "medic_organ": float(kind == "organ"),
            "word_order_only": float(kind is None and c not in (train or {}) and c in from_bag),
            "fuzzy_similarity": similarity.get(c, 0.0 if c in parents or c in children else 1.0),
            "train_share": (train or {}).get(c, 0) / (n_train + 1),
            "train_log_count": math.log1p((train or {}).get(c, 0)),
            "train_bag_share": (train_bag or {}).get(c, 0) / (n_bag + 1),
            "rule_pick": float(c == rule),
            "rule_evidence_share": evidence.get(c, 0.0) / total_evidence,
            "context_similarity": ctx_sim,
            "medic_words_in_context": math.log1p(len(extra & context)),
            "medic_words_in_doc": math.log1p(len(extra & doc_words)),
            "depth": medic.depth.get(c, 0) / 10.0,
            "concept_log_count": math.log1p(stats.concept_count.get(c, 0)),
            "omim": float(c.startswith("OMIM:")),
            "supplementary": float(c.startswith("MESH:C")),
            "parent_of_candidate": float(c in parents),
            "child_of_candidate": float(c in children),
            "doc_same_pick": 0.0, "doc_related_pick": 0.0,  # add_document_features
        }))
    # relative to the other candidates: a linear scorer cannot compare rows by itself
    top = max(c.values["context_similarity"] for c in out)
    for c in out:
        c.values["context_gap"] = c.values["context_similarity"] - top
        c.values["best_context"] = float(top > 0 and c.values["context_similarity"] == top)
    return out


def add_document_features(mentions: list[tuple[str, list[Candidate]]],
                          medic: MedicIndex) -> None:
    """What the rest of the document says, from the rules' picks of its OTHER strings (a
    string repeated agrees with itself and says nothing): how many pick this candidate
    ("HBOC" elsewhere backs the syndrome for "hereditary breast cancer"), and how many pick
    its parent or child. The rules' picks, not gold, so fit and inference see the same."""
    picks: dict[str, list[str]] = {}
    for key, cands in mentions:
        pick = next((c.concept_id for c in cands if c.values["rule_pick"]), None)
        if pick:
            picks.setdefault(key, []).append(pick)
    for key, cands in mentions:
        others = [p for k, ps in picks.items() if k != key for p in ps]
        for c in cands:
            family = set(medic.parents.get(c.concept_id, ())) | set(
                medic.children.get(c.concept_id, ()))
            c.values["doc_same_pick"] = math.log1p(sum(p == c.concept_id for p in others))
            c.values["doc_related_pick"] = math.log1p(sum(p in family for p in others))


def matrix(cands: list[Candidate]) -> np.ndarray:
    return np.array([[c.values[f] for f in FEATURES] for c in cands], dtype=np.float64)


@dataclass(frozen=True)
class ChooserModel:
    """A fitted linear scorer over FEATURES (standardised), as saved by the fit."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def scores(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def choose(self, cands: list[Candidate]) -> str | None:
        if not cands:
            return None
        if len(cands) == 1:
            return cands[0].concept_id
        return cands[int(np.argmax(self.scores(matrix(cands))))].concept_id


