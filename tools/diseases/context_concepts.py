"""The concept chooser in the pipeline: re-choose each kept span's concept from its context.

The fitted weights live in `adapters/disease-chooser/chooser.json` (written by
`make diseases-normaliser`, `eval/disease_normaliser.py`); the candidate index and train
statistics are rebuilt from MEDIC and the train corpora and cached (`concept_index.py`).
A missing or unreadable artefact is not an error for the pipeline: the rules' concepts
stand, a warning is logged once, and `chooser_state()` (which the run record shows via
`model_info`) says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.settings import PROJECT_ROOT
from tools.diseases.chooser import (
    FEATURES,
    ChooserModel,
    FuzzyIndex,
    add_document_features,
    candidates,
)
from tools.diseases.concept_index import ConceptData, DocWords, load_concept_data
from tools.diseases.normalise import char_index
from tools.diseases.spans import Span
from tools.diseases.vocab import Vocabulary, key_of

CHOOSER_PATH = PROJECT_ROOT / "adapters" / "disease-chooser" / "chooser.json"
log = logging.getLogger(__name__)


class ChooserArtefactError(ValueError):
    """The chooser's artefact is missing, unreadable or fitted on other features."""


def load_chooser(path: Path = CHOOSER_PATH) -> ChooserModel:
    """The fitted scorer; a clear error when the file is missing, corrupt or stale."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ChooserArtefactError(
            f"concept chooser not found at {path} (run `make diseases-normaliser`)") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ChooserArtefactError(f"concept chooser at {path} is unreadable: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("features") != list(FEATURES):
        raise ChooserArtefactError(
            f"concept chooser at {path} was fitted on other features (refit: "
            "`make diseases-normaliser`)")
    try:
        model = ChooserModel(np.asarray(raw["mean"], float), np.asarray(raw["scale"], float),
                             np.asarray(raw["coef"], float), float(raw["intercept"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ChooserArtefactError(f"concept chooser at {path} is malformed: {exc}") from exc
    if not all(len(v) == len(FEATURES) for v in (model.mean, model.scale, model.coef)):
        raise ChooserArtefactError(f"concept chooser at {path} has the wrong number of weights")
    return model


@lru_cache(maxsize=4)
def _loaded(path: str) -> tuple[ChooserModel | None, str]:
    """(model, state) once per process and path; state is what the record shows."""
    try:
        model = load_chooser(Path(path))
    except ChooserArtefactError as exc:
        log.warning("%s; the rules' concepts are kept", exc)
        return None, f"off ({exc})"
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    return model, f"on ({digest})"


def chooser_state(path: Path | None = None) -> str:
    """"on (sha256[:12])" or "off (why)" for the artefact at `path` (None: CHOOSER_PATH)."""
    return _loaded(str(path or CHOOSER_PATH))[1]


_FUZZY: dict[int, FuzzyIndex] = {}


def fuzzy_index(vocab: Vocabulary) -> FuzzyIndex:
    """normalise.py's TF-IDF over the vocabulary's keys, shared (same keys, same order)."""
    if id(vocab) not in _FUZZY:
        vectoriser, by_ngram, _ = char_index(vocab)
        _FUZZY[id(vocab)] = FuzzyIndex(vectoriser, by_ngram, list(vocab.exact))
    return _FUZZY[id(vocab)]


def rechoose(spans: list[Span], text: str, vocab: Vocabulary,
             path: Path | None = None, data: ConceptData | None = None) -> list[Span]:
    """Each span's concept as the chooser sees it in context.

    Abbreviation spans keep theirs (the long form decides). A dictionary span whose text
    has no key of its own (a match extended by modifier words or widened to a model span)
    keeps its inner name's concept; a model span with no key goes to the fuzzy neighbours,
    as normalise.py does. Without an artefact the spans come back unchanged.
    """
    model, _ = _loaded(str(path or CHOOSER_PATH))
    if model is None or not spans:
        return spans
    data = data or load_concept_data()
    words = DocWords.of(text)
    doc_words = words.all()
    found: list[tuple[Span, str, list]] = []  # span, key, candidates (none: keep concept)
    for span in spans:
        route = span.source.split("+")[0]
        if "+abbreviation" in span.source:
            found.append((span, "", []))
            continue
        key = key_of(text[span.start:span.end])
        fuzzy = fuzzy_index(vocab) if route != "dictionary" else None
        cands = candidates(key, words.around(span.start, span.end), doc_words,
                           data.medic, data.stats, fuzzy)
        found.append((span, key, [c for c in cands if c.concept_id in vocab.concepts]))
    add_document_features([(key, cands) for _, key, cands in found if cands], data.medic)
    out = []
    for span, _, cands in found:
        chosen = model.choose(cands)
        out.append(replace(span, concept_id=chosen) if chosen else span)
    return out
