"""Disease extraction: spans in the original text, MEDIC concepts, readable names, cancer flags.

    extract_diseases(doc, routes=("dictionary", "model"))  # one Preprocessed abstract
    extract_batch(docs, routes)                              # batches the model route
    disease_names(mentions)                                  # `extracted_diseases`

Every route runs on the cleaned text (title + "\\n" + abstract) and every span is mapped
back to the ORIGINAL field through `CleanField.to_original`, so HTML, odd spacing and
unicode in the input never shift offsets. See docs/diseases.md for the design.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from graph.schema import DiseaseMention, ModelInfo
from tools.diseases.dictionary import dictionary_spans
from tools.diseases.spans import Span, merge, propagate_abbreviations
from tools.diseases.vocab import Vocabulary, load_vocabulary
from tools.preprocess import Preprocessed

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

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
    for s in spans:
        if s.end <= len(doc.title.text):
            field, clean, start, end = "title", doc.title, s.start, s.end
        elif s.start >= cut:
            field, clean, start, end = "abstract", doc.abstract, s.start - cut, s.end - cut
        else:
            continue  # straddles the field boundary
        o_start, o_end = clean.to_original(start, end)
        concept = vocab.concepts.get(s.concept_id)
        if concept is None or o_end <= o_start:
            continue
        out.append(DiseaseMention(
            text=clean.original[o_start:o_end], start=o_start, end=o_end, field=field,
            concept_id=concept.concept_id, name=concept.readable,
            is_cancer=concept.is_cancer, site=concept.site, source=s.source,
        ))
    return out


def extract_batch(
    docs: list[Preprocessed],
    routes: Sequence[str] = ("dictionary", "model"),
    chat_model: BaseChatModel | None = None,
) -> list[list[DiseaseMention]]:
    """Mentions per document; the model route runs as one batch over all documents.

    `chat_model` serves the "llm" route (default: local Qwen2.5-0.5B, loaded lazily).
    """
    routes = _check_routes(routes)
    bad = [type(d).__name__ for d in docs if not isinstance(d, Preprocessed)]
    if bad:
        raise TypeError(f"expected Preprocessed documents (use tools.preprocess), got {bad[0]}")
    vocab = load_vocabulary()
    texts = [joined_text(d) for d in docs]
    candidates: list[list[Span]] = [[] for _ in docs]
    if "dictionary" in routes:
        for i, text in enumerate(texts):
            candidates[i].extend(dictionary_spans(vocab, text))
    if "model" in routes and not adapter_available():
        _warn_no_adapter()
        routes = tuple(r for r in routes if r != "model")
    if "model" in routes:
        from tools.diseases.model import model_spans

        for i, spans in enumerate(model_spans(texts, vocab)):
            candidates[i].extend(spans)
    if "llm" in routes:
        from tools.diseases.llm import llm_spans

        for i, text in enumerate(texts):
            candidates[i].extend(llm_spans(text, vocab, chat_model))
    results = []
    for doc, text, spans in zip(docs, texts, candidates, strict=True):
        merged = propagate_abbreviations(merge(spans), text, vocab)
        results.append(_to_mentions(doc, merged, vocab))
    return results


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
) -> list[DiseaseMention]:
    return extract_batch([doc], routes, chat_model)[0]


def disease_names(mentions: list[DiseaseMention]) -> list[str]:
    """`extracted_diseases`: readable names in order of first mention, a cancer under its
    organ-level name ("NSCLC" -> "Lung Cancer"), each name once; the mentions keep the
    precise concept."""
    ordered = sorted(mentions, key=lambda m: (m.field != "title", m.start))
    return list(dict.fromkeys(m.site or m.name for m in ordered))


def model_info(routes: Sequence[str] = ("dictionary", "model")) -> list[ModelInfo]:
    """The models behind a route set, for the record (adapter version = weights sha256[:12])."""
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
                             adapter_version=version))
    if "llm" in routes:
        out.append(ModelInfo(name="qwen2.5-0.5b (grounded)", kind="disease-llm"))
    return out
