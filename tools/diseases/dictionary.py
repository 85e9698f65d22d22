"""Dictionary route: leftmost-longest matching of normalised token n-grams against MEDIC."""

from __future__ import annotations

import re

from tools.diseases.spans import Span
from tools.diseases.vocab import FUNCTION_WORDS, Vocabulary, bag_key, key_of, tokens

# what may separate two tokens inside one name: spacing, a hyphen, a possessive
_GAP = re.compile(r"(?:['’]s?)?[ \-]{0,2}")
_MAX_BAG = 6
_MAX_EXTENSION = 3  # learnt modifier words taken into a match on each side


def joinable_gaps(text: str, toks: list[tuple[str, int, int]]) -> list[bool]:
    """Per adjacent token pair: may the two sit inside one name (only spacing/hyphen between)?"""
    return [_GAP.fullmatch(text[toks[i][2] : toks[i + 1][1]]) is not None
            for i in range(len(toks) - 1)]


def match_text(vocab: Vocabulary, text: str) -> list[tuple[str, int, int, str]]:
    """(key, start, end, concept_id) of every dictionary match, leftmost-longest, no overlaps."""
    toks = tokens(text)
    n = len(toks)
    joinable = joinable_gaps(text, toks)
    out: list[tuple[str, int, int, str]] = []
    i = 0
    while i < n:
        best: tuple[str, int, str] | None = None  # key, last token index, concept
        key = ""
        j = i
        while j < n and j - i < vocab.max_len:
            key = toks[j][0] if j == i else f"{key} {toks[j][0]}"
            if key not in vocab.prefixes:
                break
            if key in vocab.exact:
                best = (key, j, vocab.exact[key])
            if j + 1 < n and not joinable[j]:
                break
            j += 1
        if toks[i][0] not in FUNCTION_WORDS:  # a longer word-order variant beats a prefix
            words = [toks[i][0]]
            for j in range(i + 1, min(n, i + _MAX_BAG)):
                if not joinable[j - 1]:
                    break
                words.append(toks[j][0])
                if words[-1] in FUNCTION_WORDS:
                    continue
                b = bag_key(words)
                if b in vocab.bag and (best is None or j > best[1]):
                    best = (b, j, vocab.bag[b])
        if best is not None and _allowed(vocab, best[0], text, toks[i][1], toks[best[1]][2]):
            lo, hi = i, best[1]
            while (i - lo < _MAX_EXTENSION and lo > 0 and joinable[lo - 1]
                   and toks[lo - 1][0] in vocab.extend_left
                   and not (out and toks[lo - 1][1] < out[-1][2])):
                lo -= 1
            while (hi - best[1] < _MAX_EXTENSION and hi + 1 < n and joinable[hi]
                   and toks[hi + 1][0] in vocab.extend_right):
                hi += 1
            start = toks[lo][1] if lo < i else _coordinated_start(vocab, text, toks[i][1], best[0])
            if out and start < out[-1][2]:
                start = toks[i][1]
            out.append((best[0], start, toks[hi][2], best[2]))
            i = hi + 1
        else:
            i += 1
    return out


_COORDINATION = re.compile(r"([A-Za-z][A-Za-z-]*)(?:\s*,?\s*(?:and/or|and|or)\s+|\s*/\s*)$")


def _coordinated_start(vocab: Vocabulary, text: str, start: int, key: str) -> int:
    """Start of a coordinated mention: "breast and ovarian cancer" is one (composite) span.

    When the match is preceded by "W and|or|and/or|/" and "W" + the match minus its
    first word is itself a vocabulary name ("breast cancer"), the span starts at W.
    """
    m = _COORDINATION.search(text, max(0, start - 40), start)
    if m is None or m.end() != start:
        return start
    rest = key.split()[1:]
    if rest and " ".join([key_of(m.group(1)), *rest]) in vocab.exact:
        return m.start(1)
    return start


def _allowed(vocab: Vocabulary, key: str, text: str, start: int, end: int) -> bool:
    if key in vocab.stopped:
        return False
    if key in vocab.case_sensitive:  # short forms: upper-case, not glued to a "5-HT"/"AT-1"
        surface = text[start:end]
        glued = text[start - 1 : start] == "-" or text[end : end + 1] == "-"
        return surface.upper() == surface and any(c.isalpha() for c in surface) and not glued
    return True


def dictionary_spans(vocab: Vocabulary, text: str) -> list[Span]:
    return [Span(s, e, cid, "dictionary") for _, s, e, cid in match_text(vocab, text)]
