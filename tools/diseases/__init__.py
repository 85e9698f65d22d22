"""Disease extraction: spans in the original text, MEDIC concepts, readable names, cancer flags.

    extract_diseases(doc, routes=("dictionary", "model"))  # one Preprocessed abstract
    extract_batch(docs, routes, rule)                        # batches the model route
    disease_names(mentions)                                  # `extracted_diseases`

`extract_batch` = `find_candidates` (every route's spans, the model's token scores) then
`resolve` (the MergeRule's bars, the overlap merge, abbreviation propagation), split so
that `eval.disease_rules` runs the models once and tries many rules.

Every route runs on the cleaned text (title + "\\n" + abstract) and every span is mapped
back to the ORIGINAL field through `CleanField.to_original`, so HTML, odd spacing and
unicode in the input never shift offsets. See docs/diseases.md for the design.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from core.schema import DiseaseMention, ModelInfo, TextField
from core.settings import MergeRule, load_settings
from tools.diseases.composite import composite_concepts
from tools.diseases.dictionary import dictionary_spans
from tools.diseases.lexicon import load_vocabulary
from tools.diseases.spans import (
    Span,
    admit,
    merge,
    propagate_abbreviations,
    widen,
)
from tools.diseases.vocab import Vocabulary
from tools.preprocess import Preprocessed

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from tools.diseases.ner import TokenScores

log = logging.getLogger(__name__)
ROUTES = ("dictionary", "model", "llm")
SEPARATOR = "\n"


def joined_text(doc: Preprocessed) -> str:
    return doc.title.text + SEPARATOR + doc.abstract.text


def _check_routes(routes: Sequence[str]) -> tuple[str, ...]:
    if isinstance(routes, str):
        routes = (routes,)
    unknown = [r for r in routes if r not in ROUTES]
    if unknown or not routes:
        raise ValueError(f"unknown disease routes {unknown or list(routes)}; choose from {ROUTES}")
    return tuple(routes)


def _to_mentions(doc: Preprocessed, spans: list[Span], vocab: Vocabulary) -> list[DiseaseMention]:
    cut = len(doc.title.text) + len(SEPARATOR)
    out = []
    field: TextField
    for s in spans:
        if s.end <= len(doc.title.text):
            field, clean, start, end = "title", doc.title, s.start, s.end
        elif s.start >= cut:
            field, clean, start, end = "abstract", doc.abstract, s.start - cut, s.end - cut
        else:
            continue  # straddles the field boundary
        o_start, o_end = clean.to_original(start, end)
        text = clean.original[o_start:o_end]
        parts = composite_concepts(vocab, text)
        concept = vocab.concepts.get(parts[-1] if parts else s.concept_id)
        if concept is None or o_end <= o_start:
            continue
        out.append(DiseaseMention(
            text=text, start=o_start, end=o_end, field=field,
            concept_id=concept.concept_id, name=concept.readable,
            is_cancer=concept.is_cancer, site=concept.site, source=s.source, parts=parts,
        ))
    return out


@dataclass
class Candidates:
    """One document's unmerged spans from every route that ran."""

    doc: Preprocessed
    text: str  # title + SEPARATOR + abstract, cleaned: the spans index this
    spans: list[Span]
    scores: TokenScores | None = None  # the model route's, when it ran


def find_candidates(
    docs: list[Preprocessed],
    routes: Sequence[str] = ("dictionary", "model"),
    chat_model: BaseChatModel | None = None,
    token_scores: list[TokenScores] | None = None,
    backend: str | None = None,
) -> list[Candidates]:
    """Every route's spans per document; the model route runs as one batch.

    `chat_model` serves the "llm" route (default: the configured `diseases.llm_model` on
    `chat.backend`, loaded once per process by tools.chat_model); `token_scores`, the model
    route's scores computed earlier (the evaluations reuse them across runs and adapters),
    replace running the encoder; `backend` runs the encoder (torch | ctranslate2; None: the
    configured `diseases.model_backend`).
    """
    routes = _check_routes(routes)
    bad = [type(d).__name__ for d in docs if not isinstance(d, Preprocessed)]
    if bad:
        raise TypeError(f"expected Preprocessed documents (use tools.preprocess), got {bad[0]}")
    vocab = load_vocabulary()
    found = [Candidates(d, joined_text(d), []) for d in docs]
    if "dictionary" in routes:
        for c in found:
            c.spans.extend(dictionary_spans(vocab, c.text))
    if "model" in routes and token_scores is None and not adapter_available():
        _warn_no_adapter()
        routes = tuple(r for r in routes if r != "model")
    if "model" in routes:
        from tools.diseases.model import model_scores, spans_from_scores

        if token_scores is None:
            token_scores = model_scores([c.text for c in found], backend=backend)
        for c, scores in zip(found, token_scores, strict=True):
            c.spans.extend(spans_from_scores(c.text, scores, vocab))
            c.scores = scores
    if "llm" in routes:
        from tools.chat_model import get_chat_model
        from tools.diseases.llm import llm_spans

        settings = load_settings()
        chat_model = chat_model or get_chat_model(settings.diseases.llm_model,
                                                  settings.chat.backend)
        for c in found:
            c.spans.extend(llm_spans(c.text, vocab, chat_model))
    return found


@lru_cache(maxsize=1)
def configured_rule() -> MergeRule:
    """The merge rule of configs/default.yaml (chosen on the dev sets), the library default."""
    return load_settings().diseases.merge_rule()


@lru_cache(maxsize=1)
def configured_chooser() -> bool:
    """Whether configs/default.yaml re-chooses concepts from context (the library default)."""
    return load_settings().diseases.concept_chooser


def resolve(candidates: Candidates, rule: MergeRule | None = None,
            chooser: bool | None = None) -> list[DiseaseMention]:
    """The mentions that survive the rule's bars and the overlap merge, in original offsets
    (`rule` None: the configured one), each concept re-chosen from its context when
    `chooser` (None: the configured `diseases.concept_chooser`, where the model route ran:
    the chooser was adopted for the routes with the model; on the dictionary alone it
    lowered NCBI dev concept F1 and halved throughput, reports/diseases/normaliser.md)."""
    rule = rule or configured_rule()
    vocab = load_vocabulary()
    support = candidates.scores.support if candidates.scores is not None else None
    kept = widen(merge(admit(candidates.spans, rule, support), rule.priority), candidates.spans,
                 rule)
    if chooser is None:
        chooser = configured_chooser() and candidates.scores is not None
    if chooser:
        from tools.diseases.context_concepts import rechoose

        kept = rechoose(kept, candidates.text, vocab)
    return _to_mentions(candidates.doc, propagate_abbreviations(kept, candidates.text, vocab),
                        vocab)


def extract_batch(
    docs: list[Preprocessed],
    routes: Sequence[str] = ("dictionary", "model"),
    chat_model: BaseChatModel | None = None,
    rule: MergeRule | None = None,
    backend: str | None = None,
) -> list[list[DiseaseMention]]:
    """Mentions per document (see `find_candidates` and `resolve`)."""
    return [resolve(c, rule) for c in find_candidates(docs, routes, chat_model, backend=backend)]


def adapter_available() -> bool:
    from tools.diseases.model import ADAPTER_DIR

    return (ADAPTER_DIR / "adapter_config.json").exists()


@lru_cache(maxsize=1)
def _warn_no_adapter() -> None:
    """Once per process: the pipeline keeps running on the other routes, loudly."""
    log.warning("disease model route skipped: no adapter in adapters/ner-minilm/ "
                "(run `python -m finetune.train_ner`); using the remaining routes")


def extract_diseases(
    doc: Preprocessed,
    routes: Sequence[str] = ("dictionary", "model"),
    chat_model: BaseChatModel | None = None,
    rule: MergeRule | None = None,
    backend: str | None = None,
) -> list[DiseaseMention]:
    return extract_batch([doc], routes, chat_model, rule, backend)[0]


def disease_names(mentions: list[DiseaseMention]) -> list[str]:
    """`extracted_diseases`: readable names in order of first mention, a cancer under its
    organ-level name ("NSCLC" -> "Lung Cancer"), each name once; the mentions keep the
    precise concept."""
    ordered = sorted(mentions, key=lambda m: (m.field != "title", m.start))
    concepts = load_vocabulary().concepts
    names = []
    for m in ordered:
        if m.parts:  # "breast and ovarian cancer": both diseases
            names += [concepts[c].site or concepts[c].readable for c in m.parts if c in concepts]
        else:
            names.append(m.site or m.name)
    return list(dict.fromkeys(names))


def model_info(routes: Sequence[str] = ("dictionary", "model"),
               backend: str | None = None) -> list[ModelInfo]:
    """The models behind a route set, for the record (adapter version = weights sha256[:12];
    the NER engine as configured unless `backend` says)."""
    import hashlib

    from tools.diseases.model import ADAPTER_DIR

    out = []
    routes = _check_routes(routes)
    if "dictionary" in routes:
        out.append(ModelInfo(name="CTD MEDIC 2017-06 dictionary", kind="disease-dictionary"))
    if "model" in routes and adapter_available():  # skipped routes are not named
        weights = ADAPTER_DIR / "adapter_model.safetensors"
        version = None
        if weights.exists():
            version = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
        out.append(ModelInfo(name="all-MiniLM-L6-v2 + ner-minilm", kind="disease-ner",
                             backend=backend or load_settings().diseases.model_backend,
                             adapter_version=version))
    if "llm" in routes:
        out.append(ModelInfo(name=f"{load_settings().diseases.llm_model} (grounded)",
                             kind="disease-llm"))
    if configured_chooser() and "model" in routes and adapter_available():
        from tools.diseases.context_concepts import chooser_state

        state = chooser_state()  # "on (sha256[:12])", or "off (why)" when the artefact failed
        on = state.startswith("on (")
        out.append(ModelInfo(name="MEDIC concept chooser" + ("" if on else f": {state}"),
                             kind="disease-concept-chooser",
                             adapter_version=state[4:-1] if on else None))
    return out
