"""Composite mentions: "breast and ovarian cancer" names two diseases that share a head.

The corpora annotate the coordination as one span with one concept per disease
("D001943|D010051"); a lookup of the whole string finds at best a syndrome that happens
to have that name (MEDIC files "breast and ovarian cancer" under the hereditary syndrome).
`split` rebuilds each coordinated name ("breast cancer", "ovarian cancer") so each can be
normalised on its own.
"""

from __future__ import annotations

import re

from tools.diseases.vocab import Vocabulary

# "A, B, and C head" / "A and/or B head" / "A/B head": conjuncts of one word each, the
# last conjunct's first word followed by the shared head
_COMPOSITE = re.compile(
    r"^(?P<first>[A-Za-z][\w-]*(?:\s*,\s*[A-Za-z][\w-]*)*)"
    r"\s*(?:,\s*)?(?:\s(?:and/or|and|or)\s|/)\s*"
    r"(?P<last>[A-Za-z][\w-]*)\s+(?P<head>[A-Za-z][\w\s-]*)$"
)


def split(mention: str) -> list[str]:
    """The names a coordinated mention abbreviates, in order; [] when it is not one.

    "breast and ovarian cancer" -> ["breast cancer", "ovarian cancer"];
    "brain, breast, and prostate cancer" -> three; "breast/ovarian cancer" -> two.
    """
    m = _COMPOSITE.match(mention.strip())
    if m is None:
        return []
    firsts = [w.strip() for w in m.group("first").split(",") if w.strip()]
    head = " ".join(m.group("head").split())
    return [f"{w} {head}" for w in firsts] + [f"{m.group('last')} {head}"]


def composite_concepts(vocab: Vocabulary, mention: str) -> list[str]:
    """One MEDIC concept per coordinated name, when every name is in the vocabulary and
    they differ; [] otherwise (not a composite, or one the vocabulary cannot split)."""
    parts = split(mention)
    ids = [vocab.lookup(p) for p in parts]
    if len(parts) < 2 or None in ids:
        return []
    unique = list(dict.fromkeys(i for i in ids if i))
    return unique if len(unique) >= 2 else []
