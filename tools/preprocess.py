"""Preprocessing shared by training, evaluation and the graph.

The original title and abstract are never modified. We compute a cleaned "model view"
of each field plus an offset map from every cleaned character back to the original,
so every span a later node reports indexes the ORIGINAL input. Everything we remove
is kept, with its original span, as metadata (copyright, trial registrations,
notices, markup) so that nothing is lost silently.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

Field_ = Literal["title", "abstract"]


class Removed(BaseModel):
    """A span taken out of the model text, kept as structured metadata."""

    kind: str  # copyright | trial_registration | notice | markup | control
    raw: str
    value: str  # normalised form, e.g. "NCT02220894" or "2016 John Wiley & Sons, Ltd."
    field: Field_
    start: int
    end: int


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


class Preprocessed(BaseModel):
    title: CleanField
    abstract: CleanField
    removed: list[Removed] = Field(default_factory=list)
    status: Literal["ok", "no_abstract", "notice"] = "ok"
    reason: str | None = None

    @property
    def metadata(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for item in self.removed:
            if item.kind != "markup":
                grouped.setdefault(item.kind, []).append(item.value)
        return grouped


# --- patterns -------------------------------------------------------------------------

_UNICODE_SPACES = "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f" + _ZERO_WIDTH + "]")
_SPACE_RUN = re.compile(r"\s+")
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>")
_NOTICE = re.compile(
    r"\[\s*(?:This\s+(?:corrects|retracts)\s+the\s+article|Retraction\s+of|Erratum\s+(?:to|in)|"
    r"Corrigendum\s+to|Expression\s+of\s+concern)[^\]]*\]\.?",
    re.IGNORECASE,
)
_PUBLISHER = (
    r"(?:Authors?|Inc\b|Ltd\b|LLC|GmbH|Elsevier|Wiley|Springer|Society|Association|Press\b|"
    r"B\.\s?V\.|S\.\s?A\.|Publish|Foundation|Academy|College|Karger|Nature|Taylor|Oxford|"
    r"Lippincott|Wolters|Mosby|Saunders|Federation|Institute|Ferrata|Informa|Thieme|"
    r"AACR|ASCO|BMJ|Massachusetts|Cambridge|Royal|American|European|Japan|Chinese|Korean)"
)
# "Copyright   2016 X Ltd." / "(c) 2016 ..." / "  2018 The Authors." (the © sign was stripped,
# leaving two spaces) up to the end of the field, where publishers put it.
_COPYRIGHT = re.compile(
    r"(?:(?:Copyright|©|\(c\))\s*(?:©\s*)?(?:\(?(?:19|20)\d{2}\)?)?|(?<=\s\s)(?:19|20)\d{2}\b)"
    r"(?=[^\n]{0,200}?" + _PUBLISHER + r")[^\n]*$",
    re.IGNORECASE | re.MULTILINE,
)
_TRIAL_ID = (
    r"(?:NCT\s?\d{8}|ISRCTN\s?\d{6,}|EudraCT[:\s#]*\d{4}-\d{6}-\d{2}|ChiCTR[-\w]*\d{6,}|"
    r"ACTRN\d{11,}|CTRI/\d{4}/\d+/\d+|DRKS\d{8}|UMIN\d{9}|JPRN-\w+|KCT\d{7}|IRCT\w+|"
    r"PACTR\d+|NTR\d{3,5}|CRD\d{11})"
)
_TRIAL = re.compile(r"\(\s*" + _TRIAL_ID + r"\s*\)|" + _TRIAL_ID, re.IGNORECASE)
_MISSING = re.compile(
    r"^\s*(?:\[?\s*no\s+abstract(?:\s+(?:available|provided))?\s*\.?\]?|n/?a|none|null|nan)\s*\.?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    replacement: str
    kind: str | None  # None: a silent normalisation (spaces)
    value: str = ""


def _edits(text: str, field: Field_) -> list[_Edit]:
    candidates: list[_Edit] = []
    for m in _NOTICE.finditer(text):
        candidates.append(_Edit(m.start(), m.end(), " ", "notice", m.group(0).strip("[]. ")))
    for m in _COPYRIGHT.finditer(text):
        value = re.sub(r"^(?:Copyright|©|\(c\))\s*", "", m.group(0), flags=re.I).strip()
        candidates.append(_Edit(m.start(), m.end(), " ", "copyright", value))
    for m in _TRIAL.finditer(text):
        value = re.sub(r"[\s()]", "", m.group(0)).upper()
        candidates.append(_Edit(m.start(), m.end(), " ", "trial_registration", value))
    for m in _TAG.finditer(text):
        tag = m.group(0).lower()
        spacer = " " if re.match(r"</?(?:br|p|div|li|tr|td)\b", tag[1:] if tag[1] == "/" else tag[1:]) else ""
        candidates.append(_Edit(m.start(), m.end(), spacer, "markup", m.group(0)))
    for m in _CONTROL.finditer(text):
        candidates.append(_Edit(m.start(), m.end(), "", "control", repr(m.group(0))))
    for i, ch in enumerate(text):
        if ch in _UNICODE_SPACES or ch in "\t\r\n\v\f":
            candidates.append(_Edit(i, i + 1, " ", None))
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


def _collapse_spaces(text: str, offsets: list[int]) -> tuple[str, list[int]]:
    """One space per whitespace run, none at the ends; the offset map follows."""
    out: list[str] = []
    new_offsets: list[int] = []
    cursor = 0
    for m in _SPACE_RUN.finditer(text):
        out.append(text[cursor : m.start()])
        new_offsets.extend(offsets[cursor : m.start()])
        if m.start() > 0 and m.end() < len(text):
            out.append(" ")
            new_offsets.append(offsets[m.start()])
        cursor = m.end()
    out.append(text[cursor:])
    new_offsets.extend(offsets[cursor:])
    return "".join(out), new_offsets


def clean_field(text: str, field: Field_) -> tuple[CleanField, list[Removed]]:
    edits = _edits(text, field)
    step1, map1 = _apply(text, edits)
    clean, offsets = _collapse_spaces(step1, map1)
    removed = [
        Removed(
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
    return CleanField(original=text, text=clean, offsets=offsets), removed


def as_text(value: object) -> str:
    """Coerce a cell from CSV/JSON (None, NaN, numbers) to a string."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def preprocess(title: object, abstract: object) -> Preprocessed:
    """Clean both fields, record what was removed and decide the abstract's status."""
    title_text, abstract_text = as_text(title), as_text(abstract)
    title_clean, removed_t = clean_field(title_text, "title")
    abstract_clean, removed_a = clean_field(abstract_text, "abstract")
    status: Literal["ok", "no_abstract", "notice"] = "ok"
    reason = None
    if not abstract_clean.text or _MISSING.match(abstract_clean.text):
        if any(r.kind == "notice" for r in removed_a):
            status, reason = "notice", "the abstract is only a correction/retraction notice"
        else:
            status, reason = "no_abstract", "the abstract is empty or 'No abstract available'"
    return Preprocessed(
        title=title_clean,
        abstract=abstract_clean,
        removed=removed_t + removed_a,
        status=status,
        reason=reason,
    )


View = Literal["title_and_abstract", "abstract_first", "title_only", "head_and_tail"]


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
