"""Distant supervision from MEDIC for the NER trainer: mention replacement.

A gold mention is swapped, with probability `p`, for another MEDIC name of the same
concept ("breast cancer" -> "Mammary Carcinoma, Human"), in the same context. The
encoder then sees many more disease surface forms than the ~10k train mentions carry,
labelled by construction. Composite and unnormalised mentions ("D1|D2", "-1") and
inverted MeSH headings ("Carcinoma, Non-Small-Cell Lung", never written so in prose)
are left alone. Offsets of every later mention shift with each swap.
"""

from __future__ import annotations

import random
import re

from tools.diseases.corpus import GoldDoc, GoldMention
from tools.diseases.vocab import Vocabulary


def _prose_names(vocab: Vocabulary, concept: str) -> list[str]:
    if re.search(r"[|+]", concept) or concept.strip() in ("", "-1"):
        return []
    c = vocab.concepts.get(vocab.canonical(concept))
    if c is None:
        return []
    return [n for n in dict.fromkeys([c.name, *c.synonyms])
            if "," not in n and "(" not in n and 3 <= len(n) <= 60]


def replace_mentions(doc: GoldDoc, vocab: Vocabulary, rng: random.Random, p: float) -> GoldDoc:
    """A copy of `doc` with some mentions replaced by MEDIC synonyms (offsets kept exact)."""
    title_end = len(doc.title)
    text = doc.text
    pieces: list[str] = []
    mentions: list[GoldMention] = []
    cursor = shift = title_shift = 0
    for m in sorted(doc.mentions, key=lambda m: m.start):
        if m.start < cursor:  # overlapping annotation: keep as is, no swap
            mentions.append(GoldMention(m.start + shift, m.end + shift, m.text, m.kind, m.concept))
            continue
        names = [n for n in _prose_names(vocab, m.concept) if n.lower() != m.text.lower()]
        new = rng.choice(names) if names and rng.random() < p else m.text
        pieces.append(text[cursor:m.start])
        start = m.start + shift
        pieces.append(new)
        mentions.append(GoldMention(start, start + len(new), new, m.kind, m.concept))
        delta = len(new) - (m.end - m.start)
        shift += delta
        if m.end <= title_end:
            title_shift += delta
        cursor = m.end
    pieces.append(text[cursor:])
    full = "".join(pieces)
    cut = title_end + title_shift
    return GoldDoc(doc.pmid, full[:cut], full[cut + 1:], mentions)
