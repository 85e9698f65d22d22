"""Preprocessing shared by training, evaluation and the graph.

The original title and abstract are never modified. We compute a cleaned "model view"
of each field plus an offset map from every cleaned character back to the original,
so every span a later node reports indexes the ORIGINAL input. Everything we remove
is kept, with its original span, as metadata (copyright, funding, trial registrations,
notices, markup) or as a citation record, so that nothing is lost silently.

Citations (numeric, author-year, PMID/PMCID/DOI/URL) are replaced in the model text by
one canonical marker, `CITATION_MARKER`, so models see one form whatever the style.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from core.schema import Citation
from core.settings import View

Field_ = Literal["title", "abstract"]
CITATION_MARKER = "[ref]"


class Removed(BaseModel):
    """A span taken out of the model text, kept as structured metadata."""

    # copyright | journal | funding | trial_registration | notice | markup | control | citation
    kind: str
    raw: str
    value: str  # normalised form, e.g. "NCT02220894" or "2016 John Wiley & Sons, Ltd."
    field: Field_
    start: int
    end: int


class Section(BaseModel):
    """A labelled part of a structured abstract ("METHODS: ..."); ORIGINAL offsets."""

    label: str  # normalised: upper case, no colon ("MATERIALS AND METHODS")
    field: Field_
    start: int  # where the label starts
    body_start: int  # first character after the label and its colon
    end: int  # where the next section (or the field) ends


class CleanField(BaseModel):
    """A cleaned field and, for each of its characters, the index in the original field."""

    original: str
    text: str
    offsets: list[int] = Field(repr=False)

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a clean span [start, end) to the original field's [start, end)."""
        if start >= end:
            pos = self.offsets[start] if start < len(self.offsets) else len(self.original)
            return pos, pos
        return self.offsets[start], self.offsets[end - 1] + 1

    def to_clean(self, original_pos: int) -> int:
        """The first clean index whose original offset is at or after `original_pos`."""
        lo, hi = 0, len(self.offsets)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.offsets[mid] < original_pos:
                lo = mid + 1
            else:
                hi = mid
        return lo


class Preprocessed(BaseModel):
    title: CleanField
    abstract: CleanField
    removed: list[Removed] = Field(default_factory=list)
    citations: list[Citation] = Field(default_factory=list)
    sections: list[Section] = Field(default_factory=list)
    status: Literal["ok", "no_abstract", "notice"] = "ok"
    reason: str | None = None

    @property
    def metadata(self) -> dict[str, list[str]]:
        """Removed metadata by kind; markup, control characters and citations are not metadata."""
        grouped: dict[str, list[str]] = {}
        for item in self.removed:
            if item.kind not in ("markup", "control", "citation"):
                grouped.setdefault(item.kind, []).append(item.value)
        return grouped


# --- patterns -------------------------------------------------------------------------

_UNICODE_SPACES = "\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"  # a character class
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f" + _ZERO_WIDTH + "]")
_ODD_SPACE = re.compile("[\t\r\n\v\f\x85\u2028\u2029" + _UNICODE_SPACES + "]")
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>")
_BLOCK_TAG = re.compile(r"</?(?:br|p|div|li|tr|td)\b", re.IGNORECASE)
# MathML: keep only the token text (<mi>R</mi><mn>2</mn> -> "R2"), drop the LaTeX annotation
_MATH = re.compile(r"<math\b[^>]*>.*?</math>", re.IGNORECASE | re.DOTALL)
_MATH_DROP = re.compile(r"<annotation\b.*?</annotation>|<[^<>]*>|(?<=>)\s+(?=<)", re.DOTALL)
_NOTICE = re.compile(
    r"\[\s*(?:This\s+(?:corrects|retracts)\s+the\s+article|Retraction\s+of|Erratum\s+(?:to|in)|"
    r"Corrigendum\s+to|Expression\s+of\s+concern)[^\]]*\]\.?",
    re.IGNORECASE,
)
# a field whose whole text is a notice of this kind, without brackets
_NOTICE_ONLY = re.compile(
    r"^\s*(?:erratum|corrigendum|correction|retraction(?:\s+note)?|retracted|"
    r"expression\s+of\s+concern|withdrawn|notice\s+of\s+retraction)\b[^.]{0,200}\.?\s*$",
    re.IGNORECASE,
)
_PUBLISHER = (
    r"(?:Authors?|Inc\b|Ltd\b|LLC|GmbH|Elsevier|Wiley|Springer|Society|Association|Press\b|"
    r"B\.\s?V\.|S\.\s?A\.|Publish|Foundation|Academy|College|Karger|Nature|Taylor|Oxford|"
    r"Lippincott|Wolters|Mosby|Saunders|Federation|Institute|Ferrata|Informa|Thieme|"
    r"AACR|ASCO|BMJ|Massachusetts|Cambridge|Royal|American|European|Japan|Chinese|Korean)"
)
# "Copyright   2016 X Ltd." / "(c) 2016 ..." / "  2018 The Authors." (the © sign was stripped,
# leaving two spaces) up to the end of the field, where publishers put it; and the Wiley
# accepted-manuscript line "This article is protected by copyright. All rights reserved."
_COPYRIGHT = re.compile(
    r"(?:(?:Copyright|©|\(c\))\s*(?:©\s*)?(?:\(?(?:19|20)\d{2}\)?)?|(?<=\s\s)(?:19|20)\d{2}\b)"
    r"(?=[^\n]{0,200}?" + _PUBLISHER + r")[^\n]*$"
    r"|(?:This\s+article\s+is\s+protected\s+by\s+copyright\.\s*)?All\s+rights\s+reserved\.?",
    re.IGNORECASE | re.MULTILINE,
)
# the journal's own citation line closing the abstract: "(Hepatology 2017;66:1234-45)."
_JOURNAL_LINE = re.compile(
    r"\((?![^()]*\bet\s+al\b)[A-Z][A-Za-z.&' -]{2,60}\s(?:19|20)\d{2}(?:;[^()\n]{0,40})?\)\.?\s*$"
)
# funding statements: a "FUNDING:" section that closes the abstract, or the NEJM-style
# "Funded by X, Inc. and Y LLC;" sentence
_FUNDING = re.compile(
    r"\b(?:STUDY\s+FUNDING(?:/COMPETING\s+INTERESTS?)?|FUNDING(?:\s+SOURCES?)?|FUND)\s*:[^\n]*$"
    r"|\bFunded\s+by\s+(?:[^.;\n]|\.(?=\s*[a-z,]|\S))+[.;]",
    re.MULTILINE,
)
_TRIAL_ID = (
    r"(?:NCT\s?\d{8}|ISRCTN\s?\d{6,}|EudraCT[:\s#]*\d{4}-\d{6}-\d{2}|ChiCTR[-\w]*\d{6,}|"
    r"ACTRN\d{11,}|CTRI/\d{4}/\d+/\d+|DRKS\d{8}|UMIN\d{9}|JPRN-\w+|KCT\d{7}|IRCT\w+|"
    r"PACTR\d+|NTR\d{3,5}|CRD\d{11})"
)
# the registry named right before the ID belongs to the registration
_REGISTRY = (
    r"(?:(?:(?:https?://)?(?:www\.)?clinicaltrials\.gov|ClinicalTrials\.gov|ISRCTN\s+registry)"
    r"(?:\s*,?\s*(?:number|identifier|registration(?:\s+number)?|no\.?|ID)\s*:?)?\s*(?:as\s+)?#?)"
)
_TRIAL = re.compile(
    r"\(\s*" + _TRIAL_ID + r"\s*\)|(?:" + _REGISTRY + r"\s*,?\s*)?#?" + _TRIAL_ID,
    re.IGNORECASE,
)
_MISSING = re.compile(
    r"^\s*(?:\[?\s*no\s+abstract(?:\s+(?:available|provided))?\s*\.?\]?|n/?a|none|null|nan|-+)"
    r"\s*\.?\s*$",
    re.IGNORECASE,
)

# citations
_URL = re.compile(r"(?:https?://|ftp://|\bwww\.|(?<=[a-z])www\.)[^\s<>\[\]\"]+", re.IGNORECASE)
_DOI = re.compile(r"\b10\.\d{4,9}/[^\s\"<>]+")
_DOI_PREFIX = re.compile(r"(?:\bdoi\s*:?\s*|https?://(?:dx\.)?doi\.org/)$", re.IGNORECASE)
_PMID = re.compile(r"\bPMID\s*:?\s*(\d{1,8})\b")
_PMCID = re.compile(r"\b(?:PMCID\s*:?\s*)?(PMC\d{4,9})\b")
_NAME = r"(?:(?:van|von|de|der|den|da|di|du|le|la)\s)?[A-Z][^\W\d_]*(?:[-'’][A-Z]?[^\W\d_]+)?"
_YEAR = r"(?:19|20)\d{2}[a-z]?"
_AUTHORS = rf"{_NAME}(?:\s+et\s+al\.?|\s+(?:and|&)\s+{_NAME})?"
# "Easton et al. in N Engl J Med 372:2243-2257, 2015" / "Smith et al., 2019" / "Lee 2020"
_AY_ITEM = re.compile(
    rf"(?P<authors>{_AUTHORS})(?:,?\s+in\s+[^;()]*?(?:\([^()]*\)[^;()]*?)*)?,?\s+(?P<year>{_YEAR})"
)
_AY_GROUP = re.compile(
    rf"\(\s*(?:{_AY_ITEM.pattern})(?:\s*;\s*(?:{_AY_ITEM.pattern}|Op\.\s*Cit\.|Ibid\.?))*\s*\)".replace(
        "(?P<authors>", "(?:"
    ).replace("(?P<year>", "(?:")
)
# narrative: "Su et al., p. 5732", "Smith et al. (2019)", "Smith and Jones (2020)", "Sakai et al."
_ET_AL = re.compile(
    rf"(?P<authors>{_NAME}\s+et\s+al\.?)(?:,?\s*\(?(?P<year>{_YEAR})\)?)?(?:,\s*p\.\s*\d+)?"
)
_AND_YEAR = re.compile(rf"(?P<authors>{_NAME}\s+(?:and|&)\s+{_NAME})\s+\((?P<year>{_YEAR})\)")
_YEAR_PAREN = re.compile(rf"\({_YEAR}\)")
_NUM_LIST = r"\d{1,3}(?:\s*[,–-]\s*\d{1,3})*"
_NUM_BRACKET = re.compile(rf"\[\s*{_NUM_LIST}\s*\]")
_NUM_PAREN = re.compile(rf"\({_NUM_LIST}\)(?=[.,;:])")  # after a word: checked in code
# superscript reference numbers after a word ("blebs<sup>4-11</sup>."), not exponents or
# units ("mg/m<sup>2</sup>", "R<sup>2</sup>", "[<sup>18</sup>F]", "Ca<sup>2+</sup>")
_NUM_SUP = re.compile(rf"<sup>\s*{_NUM_LIST}\s*</sup>(?![\w\]+-])")  # after a word: in code
_SUP_CHARS = "⁰¹²³⁴⁵⁶⁷⁸⁹"
_NUM_UNICODE_SUP = re.compile(rf"[{_SUP_CHARS}]+(?:[,⁻–-][{_SUP_CHARS}]+)*(?!\w)")
_STATS_WORDS = frozenset(
    (
        "age", "aged", "range", "iqr", "ci", "median", "mean", "sd", "se", "or", "hr", "rr", "n",
        "p", "day", "days", "week", "weeks", "month", "months", "year", "years", "hour", "hours",
        "h", "min", "mg", "kg", "ml", "score", "grade", "stage", "class", "type", "patients",
        "cases", "subjects", "participants", "samples", "women", "men",
    )
)

# section labels ("RESULTS:", "MATERIALS AND METHODS:", "Conclusion:")
_SECTION_WORDS = frozenset(
    (
        "abbreviations", "advice", "aim", "aims", "analysis", "answer", "area", "areas",
        "background", "backgrounds", "case", "cases", "clinical", "conclusion", "conclusions",
        "context", "covered", "data", "description", "design", "diagnoses", "diagnosis",
        "discussion", "duration", "evidence", "experimental", "expert", "findings", "fund",
        "funding", "hypothesis", "implications", "importance", "interests", "interpretation",
        "intervention", "interventions", "introduction", "key", "lay", "learned", "learning",
        "lessons", "limitations", "main", "management", "material", "materials", "measure",
        "measurements", "message", "messages", "method", "methods", "objective", "objectives",
        "observations", "opinion", "outcome", "outcomes", "participants", "patient", "patients",
        "practice", "presentation", "procedure", "procedures", "purpose", "question", "rationale",
        "reasons", "recent", "registration", "relevance", "report", "result", "results", "review",
        "search", "selection", "series", "setting", "significance", "size", "sources", "statement",
        "study", "subjects", "summary", "synthesis", "trial", "unlabelled", "what",
    )
)
# matched backwards from each colon (colons are few, so this stays fast)
_SECTION = re.compile(
    r"(?:^|(?<=[.?!:)>]\s)|(?<=\n))(?:<b>)?"
    r"(?P<label>[A-Z][A-Za-z]*(?:[ /&,'()-]{1,3}[A-Za-z0-9]+){0,8}"
    r"(?:\(S\)|\(s\))?)\s?(?:</b>)?\s?:$"
)
# cheap substring gates: a pattern runs only on a field that could match it (speed)
_TRIAL_KEYS = ("nct", "isrctn", "eudract", "chictr", "actrn", "ctri/", "drks", "jprn", "pactr")
_TRIAL_DIGIT_KEYS = tuple(re.compile(k + r"\s?\d") for k in ("ntr", "crd", "kct", "irct", "umin"))
_COPYRIGHT_KEYS = ("copyright", "©", "(c)", "rights reserved", "  ", "\n", "\u00a0", "\u2009")


def _trial_gate(low: str) -> bool:
    return any(k in low for k in _TRIAL_KEYS) or any(
        p.pattern[:2] in low and p.search(low) for p in _TRIAL_DIGIT_KEYS
    )


@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    replacement: str
    kind: str | None  # None: a silent normalisation (spaces)
    value: str = ""
    citations: tuple[tuple[str, str, int, int], ...] = ()  # (kind, normalised, start, end)


def _strip_trailing(text: str, start: int, end: int) -> int:
    """Trailing sentence punctuation and unbalanced closing brackets are not part of a link."""
    while end > start:
        ch = text[end - 1]
        if (
            ch in ".,;:!?'\""
            or ch in ")]}"
            and text.count("([{"[")]}".index(ch)], start, end) < text.count(ch, start, end)
        ):
            end -= 1
        else:
            break
    return end


def _stats_context(text: str, start: int) -> bool:
    """Bracketed numbers after a number or a statistics word are data ([IQR], ranges), not refs."""
    before = re.sub(r"[\s(]+$", "", text[max(0, start - 40) : start])
    if not before or before[-1] in "%=<>±([" or before[-1].isdigit():
        return True
    word = before.split()[-1].strip(",;:").lower()
    return any(c.isdigit() for c in word) or word in _STATS_WORDS


def _normalise_numbers(raw: str) -> str:
    digits = raw.translate(str.maketrans(_SUP_CHARS + "⁻–", "0123456789--"))
    digits = re.sub(r"<[^>]*>|[\s\[\]()]", "", digits)
    return f"[{digits}]"


def _authors_normalised(authors: str, year: str | None) -> str:
    authors = re.sub(r"\s+", " ", authors).strip()
    if authors.endswith(" et al"):
        authors += "."
    return f"{authors} {year}" if year else authors


def _citation_edits(text: str) -> list[_Edit]:
    edits: list[_Edit] = []
    marker = " " + CITATION_MARKER

    def add(start: int, end: int, kind: str, normalised: str) -> None:
        edits.append(
            _Edit(start, end, marker, "citation", normalised, ((kind, normalised, start, end),))
        )

    low = text.lower()
    if "http" in low or "www." in low or "ftp://" in low:
        for m in _URL.finditer(text):
            end = _strip_trailing(text, m.start(), m.end())
            if end - m.start() > 4:
                add(m.start(), end, "url", text[m.start() : end])
    if "10." in text and "/" in text:
        for m in _DOI.finditer(text):
            end = _strip_trailing(text, m.start(), m.end())
            prefix = _DOI_PREFIX.search(text, max(0, m.start() - 24), m.start())
            start = prefix.start() if prefix else m.start()
            add(start, end, "doi", "doi:" + text[m.start() : end].lower())
    if "pmid" in low:
        for m in _PMID.finditer(text):
            add(m.start(), m.end(), "pmid", f"PMID:{m.group(1)}")
    if "pmc" in low:
        for m in _PMCID.finditer(text):
            add(m.start(), m.end(), "pmcid", f"PMCID:{m.group(1)}")
    for m in _AY_GROUP.finditer(text):
        items = tuple(
            (
                "author_year",
                _authors_normalised(i.group("authors"), i.group("year")),
                m.start() + i.start(),
                m.start() + i.end(),
            )
            for i in _AY_ITEM.finditer(m.group(0))
        )
        normalised = "; ".join(c[1] for c in items)
        edits.append(_Edit(m.start(), m.end(), marker, "citation", normalised, items))
    narrative = list(_ET_AL.finditer(text)) if "et al" in text else []
    if _YEAR_PAREN.search(text):
        narrative += _AND_YEAR.finditer(text)
    for m in narrative:
        end = m.end()
        # "... by Sakai et al. We described": the period also closes the sentence; keep it
        if text[end - 1] == "." and re.match(r"\s+[A-Z]|\s*$", text[end:]):
            end -= 1
        add(m.start(), end, "author_year", _authors_normalised(m.group("authors"), m.group("year")))
    for m in _NUM_BRACKET.finditer(text):
        if not _stats_context(text, m.start()):
            add(m.start(), m.end(), "numeric", _normalise_numbers(m.group(0)))
    for m in _NUM_PAREN.finditer(text):
        after_word = text[max(0, m.start() - 2) : m.start()].rstrip(" ")[-1:].isalpha()
        if after_word and not _stats_context(text, m.start()):
            add(m.start(), m.end(), "numeric", _normalise_numbers(m.group(0)))
    sups = list(_NUM_SUP.finditer(text)) if "<sup>" in low else []
    if any(c in text for c in _SUP_CHARS):
        sups += _NUM_UNICODE_SUP.finditer(text)
    for m in sups:
        before = text[max(0, m.start() - 4) : m.start()]
        word = len(before) == 4 and before.isalpha() and before[1:].islower()
        if word or before[-1:] in (".", ",", ")"):
            add(m.start(), m.end(), "numeric", _normalise_numbers(m.group(0)))
    return edits


def _math_edits(text: str) -> list[_Edit]:
    edits: list[_Edit] = []
    for block in _MATH.finditer(text) if "<math" in text else ():
        for m in _MATH_DROP.finditer(block.group(0)):
            kind = "markup" if m.group(0).strip() else None
            edits.append(
                _Edit(block.start() + m.start(), block.start() + m.end(), "", kind, m.group(0))
            )
    return edits


def _edits(text: str, field: Field_) -> list[_Edit]:
    candidates: list[_Edit] = []
    for m in _NOTICE.finditer(text):
        candidates.append(_Edit(m.start(), m.end(), " ", "notice", m.group(0).strip("[]. ")))
    low = text.lower()
    for m in _COPYRIGHT.finditer(text) if any(k in low for k in _COPYRIGHT_KEYS) else ():
        value = re.sub(r"^(?:Copyright|©|\(c\))\s*", "", m.group(0), flags=re.I).strip()
        candidates.append(_Edit(m.start(), m.end(), " ", "copyright", value))
    for m in _JOURNAL_LINE.finditer(text) if text.rstrip(" .\n").endswith(")") else ():
        candidates.append(_Edit(m.start(), m.end(), " ", "journal", m.group(0).strip("(). ")))
    for m in _FUNDING.finditer(text) if "fund" in low else ():
        value = re.sub(r"^[^:]*:\s*|^Funded\s+by\s+", "", m.group(0)).rstrip(";. ")
        candidates.append(_Edit(m.start(), m.end(), " ", "funding", value))
    for m in _TRIAL.finditer(text) if _trial_gate(low) else ():
        trial_id = re.search(_TRIAL_ID, m.group(0), re.IGNORECASE)
        value = re.sub(r"[\s()#]", "", trial_id.group(0) if trial_id else m.group(0)).upper()
        candidates.append(_Edit(m.start(), m.end(), " ", "trial_registration", value))
    candidates.extend(_citation_edits(text))
    candidates.extend(_math_edits(text))
    for m in _TAG.finditer(text):
        spacer = " " if _BLOCK_TAG.match(m.group(0)) else ""
        candidates.append(_Edit(m.start(), m.end(), spacer, "markup", m.group(0)))
    if not text.isprintable():  # NBSP, thin spaces, newlines, control and zero-width characters
        for m in _CONTROL.finditer(text):
            candidates.append(_Edit(m.start(), m.end(), "", "control", repr(m.group(0))))
        for m in _ODD_SPACE.finditer(text):
            candidates.append(_Edit(m.start(), m.end(), " ", None))
    # earliest first; at the same start the longest wins; overlaps are dropped
    candidates.sort(key=lambda e: (e.start, -(e.end - e.start)))
    chosen: list[_Edit] = []
    cursor = 0
    for edit in candidates:
        if edit.start >= cursor:
            chosen.append(edit)
            cursor = edit.end
    return chosen


def _apply(text: str, edits: Iterable[_Edit]) -> tuple[str, list[int]]:
    out: list[str] = []
    offsets: list[int] = []
    cursor = 0
    for edit in edits:
        out.append(text[cursor : edit.start])
        offsets.extend(range(cursor, edit.start))
        out.append(edit.replacement)
        offsets.extend([edit.start] * len(edit.replacement))
        cursor = edit.end
    out.append(text[cursor:])
    offsets.extend(range(cursor, len(text)))
    return "".join(out), offsets


_EXTRA_SPACE = re.compile(r" {2,}|^ +| +$")


def _collapse_spaces(text: str, offsets: list[int]) -> tuple[str, list[int]]:
    """One space per space run, none at the ends; the offset map follows.

    Every other whitespace character was already turned into a space by an edit."""
    if "  " not in text and not text.startswith(" ") and not text.endswith(" "):
        return text, offsets
    out: list[str] = []
    new_offsets: list[int] = []
    cursor = 0
    for m in _EXTRA_SPACE.finditer(text):
        out.append(text[cursor : m.start()])
        new_offsets.extend(offsets[cursor : m.start()])
        if m.start() > 0 and m.end() < len(text):
            out.append(" ")
            new_offsets.append(offsets[m.start()])
        cursor = m.end()
    out.append(text[cursor:])
    new_offsets.extend(offsets[cursor:])
    return "".join(out), new_offsets


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentence [start, end) spans of a cleaned text (no sentence starts after "e.g.", "vs.")."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in re.finditer(r"(?<=[.!?])\s+(?=[A-Z0-9(\[\"])", text):
        head = text[max(0, m.start() - 6) : m.start()].lower()
        if re.search(r"(?:\be\.g|\bi\.e|\bvs|\bfig|\bref|\bno|\bapprox|\bp|\bca|\bal)\.$", head):
            continue
        spans.append((start, m.start()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def _sentence_at(clean: CleanField, spans: list[tuple[int, int]], original_pos: int) -> str | None:
    pos = clean.to_clean(original_pos)
    for start, end in spans:
        if start <= pos < end or (pos == end and end == len(clean.text)):
            return clean.text[start:end]
    return None


def find_sections(text: str, field: Field_) -> list[Section]:
    """Labelled sections, kept as structure (the labels stay in the model text)."""
    found: list[tuple[str, int, int]] = []
    colon = text.find(":")
    while colon >= 0:
        colon, start = text.find(":", colon + 1), colon
        m = _SECTION.search(text, max(0, start - 90), start + 1)
        if not m:
            continue
        label = m.group("label")
        words = re.findall(r"[A-Za-z]+", label.lower())
        upper = label.upper() == label
        if not words or not all(w in _SECTION_WORDS or (upper and w.isalpha()) for w in words):
            continue
        title_case = all(w[:1].isupper() for w in label.split())
        sentence_case = label[1:].lower() == label[1:]
        known = any(w in _SECTION_WORDS for w in words)
        if not known or not (upper or sentence_case or title_case):
            continue
        found.append((re.sub(r"\s+", " ", label.upper()), m.start(), m.end()))
    return [
        Section(
            label=label,
            field=field,
            start=start,
            body_start=body,
            end=found[i + 1][1] if i + 1 < len(found) else len(text),
        )
        for i, (label, start, body) in enumerate(found)
    ]


def clean_field(text: str, field: Field_) -> tuple[CleanField, list[Removed], list[Citation]]:
    edits = _edits(text, field)
    step1, map1 = _apply(text, edits)
    clean, offsets = _collapse_spaces(step1, map1)
    cleaned = CleanField.model_construct(original=text, text=clean, offsets=offsets)
    removed = [
        Removed.model_construct(
            kind=e.kind,
            raw=text[e.start : e.end],
            value=e.value.strip(),
            field=field,
            start=e.start,
            end=e.end,
        )
        for e in edits
        if e.kind is not None
    ]
    spans = sentence_spans(clean) if any(e.citations for e in edits) else []
    citations = [
        Citation.model_construct(
            kind=kind,
            raw=text[start:end],
            normalised=normalised,
            field=field,
            start=start,
            end=end,
            sentence=_sentence_at(cleaned, spans, start),
            function=None,
        )
        for e in edits
        for kind, normalised, start, end in e.citations
    ]
    return cleaned, removed, citations


def as_text(value: object) -> str:
    """Coerce a cell from CSV/JSON (None, NaN, numbers) to a string."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _status(abstract: CleanField, removed: list[Removed]) -> tuple[str, str | None]:
    text = abstract.text
    if not abstract.original.strip():
        return "no_abstract", "the abstract is empty"
    if _MISSING.match(text):
        return "no_abstract", "the abstract says 'No abstract available' (or NaN/none)"
    notices = [r for r in removed if r.kind == "notice"]
    if notices and not re.sub(r"[\s\W]|ref", "", text):
        return "notice", f"the abstract is only a notice: {notices[0].value[:120]}"
    if _NOTICE_ONLY.match(text):
        return "notice", f"the abstract is only an erratum/retraction notice: {text[:120]}"
    if not text:
        return "no_abstract", "the abstract holds only metadata (copyright, registration, markup)"
    return "ok", None


def preprocess(title: object, abstract: object) -> Preprocessed:
    """Clean both fields, record what was removed and decide the abstract's status."""
    title_text, abstract_text = as_text(title), as_text(abstract)
    title_clean, removed_t, cites_t = clean_field(title_text, "title")
    abstract_clean, removed_a, cites_a = clean_field(abstract_text, "abstract")
    status, reason = _status(abstract_clean, removed_a)
    return Preprocessed.model_construct(
        title=title_clean,
        abstract=abstract_clean,
        removed=removed_t + removed_a,
        citations=cites_t + cites_a,
        sections=find_sections(abstract_text, "abstract"),
        status=status,
        reason=reason,
    )


def model_text(doc: Preprocessed, view: View = "title_and_abstract", head_words: int = 70) -> str:
    """The text a classifier sees. Views let the verifier re-query with a different input."""
    title, abstract = doc.title.text, doc.abstract.text
    if doc.status != "ok" or view == "title_only":
        return title
    if view == "abstract_first":
        return f"{abstract}\nTitle: {title}"
    if view == "head_and_tail":
        words = abstract.split()
        if len(words) > 2 * head_words:
            abstract = " ".join(words[:head_words] + ["..."] + words[-head_words:])
    return f"{title}\n{abstract}"
