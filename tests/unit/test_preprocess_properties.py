"""Property-based tests: preprocessing never raises, its offset map is valid, and every
character it drops is accounted for (metadata, citation, markup, control or whitespace)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.preprocess import CITATION_MARKER, CleanField, Preprocessed, model_text, preprocess

# pieces of real-world noise, mixed with arbitrary text so the rules meet each other
FRAGMENTS = [
    "[1]", "[1, 2]", "[3–5]", "(2)", "(1,2).", "<sup>4-11</sup>", "¹²", "(Smith 2019; Lee 2020)",
    "Smith et al., 2019", "Su et al., p. 5732", "Smith and Jones (2020)", " et al. ", "[IQR 5-9]",
    "95% CI [1.2-3.4]", "NCT01234567", "ClinicalTrials.gov, number NCT01234567",
    "EudraCT 2009-012007-25", "http://x.org/a(b).", "www.site.com", "doi:10.1000/xyz",
    "PMID: 123", "PMC12345", "Copyright   2016 Wiley Periodicals, Inc.", "  2018 The Authors.",
    "All rights reserved.", "FUNDING: Amgen Inc.", "Funded by X, Inc. and Y;",
    "[This corrects the article DOI: 10.3389/x.].", "(Hepatology 2017).", "<i>", "</i>", "<b>",
    "<math><mi>R</mi> <mn>2</mn><annotation>$$x$$</annotation></math>", "<p>", "<", ">",
    "\u2009", "\u00a0", "\n", "\t", "\x00", "\u200b", "\u00ad", "\u2028", "  ", " ", ".", ":",
    "RESULTS:", "METHODS: ", "Conclusion:", "No abstract available", "nan", CITATION_MARKER,
    "(", ")", "[", "]", ";", "1", "2019", "a", "Tumour", "cells", "β", "±",
]
texts = st.one_of(
    st.text(),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=25).map("".join),
)
cells = st.one_of(texts, st.none(), st.floats(), st.integers())


def _marker_positions(field: CleanField, citation_starts: set[int]) -> set[int]:
    """Clean indices that belong to a citation marker standing in for a citation span."""
    found: set[int] = set()
    start = field.text.find(CITATION_MARKER)
    while start >= 0:
        span = range(start, start + len(CITATION_MARKER))
        if len({field.offsets[i] for i in span}) == 1 and field.offsets[start] in citation_starts:
            found.update(span)
        start = field.text.find(CITATION_MARKER, start + 1)
    return found


def _check_field(doc: Preprocessed, name: str) -> None:
    field: CleanField = getattr(doc, name)
    original, text, offsets = field.original, field.text, field.offsets
    assert len(offsets) == len(text)
    assert offsets == sorted(offsets), "offsets must not go backwards"
    assert all(0 <= o < len(original) for o in offsets)
    assert text == text.strip() and "  " not in text
    removed = [r for r in doc.removed if r.field == name]
    citation_starts = {r.start for r in removed if r.kind == "citation"}
    markers = _marker_positions(field, citation_starts)
    for i, ch in enumerate(text):
        # each kept character is the original one, a normalised space, or a citation marker
        assert ch == original[offsets[i]] or ch == " " or i in markers, (i, ch)
    covered = [False] * len(original)
    for r in removed:
        assert original[r.start : r.end] == r.raw
        for j in range(r.start, r.end):
            covered[j] = True
    kept = {o for i, o in enumerate(offsets) if text[i] == original[o] and i not in markers}
    for j, ch in enumerate(original):
        # nothing is lost silently: a dropped character was removed on purpose or was a space
        assert j in kept or covered[j] or ch.isspace() or ch in "\u00a0\u2009\u200a", (j, ch)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=cells, abstract=cells)
def test_preprocess_never_raises_and_accounts_for_every_character(title, abstract):
    doc = preprocess(title, abstract)
    assert doc.status in ("ok", "no_abstract", "notice")
    assert (doc.reason is None) == (doc.status == "ok")
    _check_field(doc, "title")
    _check_field(doc, "abstract")
    for view in ("title_and_abstract", "abstract_first", "title_only", "head_and_tail"):
        assert isinstance(model_text(doc, view), str)
    Preprocessed.model_validate(doc.model_dump())  # survives the graph state round trip


@settings(max_examples=200, deadline=None)
@given(abstract=texts)
def test_citations_and_removed_spans_index_the_original(abstract):
    doc = preprocess("t", abstract)
    for cite in doc.citations:
        assert abstract[cite.start : cite.end] == cite.raw
        assert cite.normalised
        group = [r for r in doc.removed if r.kind == "citation" and r.start <= cite.start]
        assert group and any(cite.end <= r.end for r in group), "every citation has its span"
    spans = sorted((r.start, r.end) for r in doc.removed)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))


@settings(max_examples=200, deadline=None)
@given(abstract=texts, start=st.integers(0, 400), length=st.integers(0, 50))
def test_to_original_gives_a_span_inside_the_original(abstract, start, length):
    field = preprocess("t", abstract).abstract
    start = min(start, len(field.text))
    end = min(start + length, len(field.text))
    a, b = field.to_original(start, end)
    assert 0 <= a <= b <= len(field.original)
    if end > start and field.text[start:end].strip() and CITATION_MARKER not in field.text:
        assert field.original[a:b].strip()
