"""Schwartz & Hearst (2003) abbreviation detection: "long form (SF)" pairs in a text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_PAREN = re.compile(r"\(([^()]{1,12})\)")


@dataclass(frozen=True)
class Abbreviation:
    short: str
    short_start: int
    short_end: int
    long_start: int
    long_end: int


def _valid_short(sf: str) -> bool:
    return (
        2 <= len(sf) <= 10 and len(sf.split()) <= 2 and any(c.isalpha() for c in sf)
        and sf[0].isalnum()
    )


def _best_long_form(sf: str, lf: str) -> int | None:
    """Start index in `lf` of the shortest suffix whose characters spell `sf` in order."""
    s, j = len(sf) - 1, len(lf) - 1
    while s >= 0:
        c = sf[s].lower()
        if not c.isalnum():
            s -= 1
            continue
        while j >= 0 and (lf[j].lower() != c or (s == 0 and j > 0 and lf[j - 1].isalnum())):
            j -= 1
        if j < 0:
            return None
        j -= 1
        s -= 1
    return lf.rfind(" ", 0, j + 1) + 1


@lru_cache(maxsize=4096)
def find_abbreviations(text: str) -> tuple[Abbreviation, ...]:
    """Every "long form (SF)" pair; cached, as the rule sweep resolves each text ~500 times."""
    out = []
    for m in _PAREN.finditer(text):
        sf = m.group(1).strip()
        if not _valid_short(sf):
            continue
        sf_start = m.start(1) + m.group(1).index(sf)
        before = text[: m.start()].rstrip()
        # the candidate long form: at most min(|SF| + 5, 2|SF|) words, within the sentence
        sentence_start = max(before.rfind(". "), before.rfind("; "), before.rfind("\n")) + 1
        words = before[sentence_start:].split(" ")
        max_words = min(len(sf) + 5, 2 * len(sf))
        window = " ".join(words[-max_words:])
        offset = len(before) - len(window)
        start = _best_long_form(sf, window)
        if start is None:
            continue
        lf = window[start:]
        if len(lf) <= len(sf) or sf.lower() in lf.lower().split():
            continue
        out.append(Abbreviation(sf, sf_start, sf_start + len(sf), offset + start, len(before)))
    return tuple(out)
