"""Candidate spans, the overlap rule that merges routes, and abbreviation propagation."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from core.settings import ROUTE_PRIORITY, MergeRule
from tools.diseases.abbrev import find_abbreviations
from tools.diseases.vocab import Vocabulary


@dataclass(frozen=True)
class Span:
    start: int  # into the joined clean text (title + "\n" + abstract)
    end: int
    concept_id: str
    source: str  # dictionary | model | llm, "+abbreviation" when propagated
    score: float = 1.0  # the model route's mean P(disease) over the span's tokens


def admit(spans: list[Span], rule: MergeRule,
          support: Callable[[int, int], float] | None = None) -> list[Span]:
    """The candidates that clear their route's bar: the model proposes only where it is
    sure, and (with `support`, the model's P(disease) over a span) vetoes dictionary
    matches it does not back ("death", "tumor" where annotators left them unmarked)."""
    kept = []
    for span in spans:
        route = span.source.split("+")[0]
        if route == "model" and span.score < rule.min_model_score:
            continue
        if (route == "dictionary" and support is not None
                and support(span.start, span.end) < rule.min_dictionary_support):
            continue
        kept.append(span)
    return kept


def widen(kept: list[Span], candidates: list[Span], rule: MergeRule) -> list[Span]:
    """The dictionary says what, the model says where: a kept dictionary span inside a model
    span of mean P(disease) >= `rule.min_widen_score` takes the model's bounds ("type IID
    von Willebrand disease", "non-papillary renal cell carcinomas"), keeping its concept,
    unless that would swallow another kept span."""
    if rule.min_widen_score is None:
        return kept
    wide = [s for s in candidates if s.source == "model" and s.score >= rule.min_widen_score]
    out = []
    for span in kept:
        around = [m for m in wide if m.start <= span.start and span.end <= m.end
                  and (m.start, m.end) != (span.start, span.end)]
        if span.source.startswith("dictionary") and around:
            best = max(around, key=lambda m: m.end - m.start)
            if not any(_overlaps(best, other) for other in kept if other is not span):
                span = replace(span, start=best.start, end=best.end)
        out.append(span)
    return out


def _overlaps(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


def merge(candidates: list[Span], priority: tuple[str, ...] = ROUTE_PRIORITY) -> list[Span]:
    """Union of the routes; where spans overlap, one survives.

    Rule: the route earlier in `priority` wins, and within a route the longer span wins
    (nested names: "breast cancer" inside "hereditary breast cancer"). The dictionary
    comes first by default (`eval.disease_rules` measures both orders).
    """
    rank = {r: i for i, r in enumerate(priority)}
    ordered = sorted(
        candidates,
        key=lambda s: (rank.get(s.source.split("+")[0], len(rank)), s.start - s.end, s.start),
    )
    kept: list[Span] = []
    for span in ordered:
        if not any(_overlaps(span, k) for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def _short_form(short: str) -> str:
    """A short form and its plural or singular: "CPIs" defined, "CPI" used later."""
    base = short[:-1] if len(short) > 2 and short.endswith("s") and short[-2].isupper() else short
    return rf"(?<![A-Za-z0-9]){re.escape(base)}s?(?![A-Za-z0-9])"


def propagate_abbreviations(spans: list[Span], text: str, vocab: Vocabulary) -> list[Span]:
    """Schwartz-Hearst pairs: "non-small cell lung cancer (NSCLC)" makes every NSCLC a mention.

    The long form's concept is the vocabulary's name for the whole long form (the most
    specific: "attenuated adenomatous polyposis coli (AAPC)" is not plain APC), else that
    of a span ending where the long form ends (any route). A short form defined as
    something that is not a disease ("magnetic resonance (MR)") loses its matches.
    """
    result = list(spans)
    for ab in find_abbreviations(text):
        concept = vocab.lookup(text[ab.long_start : ab.long_end]) or next(
            (s.concept_id for s in spans
             if ab.long_start <= s.end and ab.long_end - 1 <= s.end <= ab.long_end + 1
             and s.start >= ab.long_start - 1),
            None,
        )
        occurrences = [(m.start(), m.end()) for m in re.finditer(_short_form(ab.short), text)]
        if concept is None:
            result = [s for s in result if (s.start, s.end) not in occurrences]
            continue
        for start, end in occurrences:
            same = [s for s in result if s.start == start and s.end == end]
            if same:
                result = [
                    replace(s, concept_id=concept) if s in same else s for s in result
                ]
                continue
            new = Span(start, end, concept, "dictionary+abbreviation")
            if not any(_overlaps(new, s) for s in result):
                result.append(new)
    return sorted(result, key=lambda s: s.start)
