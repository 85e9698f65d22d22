"""Every concept a mention string could name, and the evidence for each (concept chooser input).

The vocabulary (`vocab.Vocabulary`) keeps one concept per key, the best-supported one. The
chooser (`chooser.py`) needs them all, with where each came from, so this index keeps:

- `MedicIndex`: per normalised key the concepts whose MEDIC name, synonym or organ-cancer
  variant it is, per bag key the same, plus each concept's MeSH depth and the content
  words of its names and definition;
- `TrainStats`: what the train annotations say (per key the concepts annotators chose,
  per concept the words around its mentions). It is built from any subset of the train
  mentions, so the chooser's fit can compute it out of fold (the vocabulary's lexicon is
  built from the same mentions: in-sample counts would be perfect and teach nothing).
"""

from __future__ import annotations

import bisect
import hashlib
import math
import pickle
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from core.settings import load_settings
from tools.diseases.corpus import GoldDoc, read_pubtator
from tools.diseases.lexicon import (
    CORPUS_TRAIN,
    VOCAB_FILE,
    cache_root,
    load_vocabulary,
    medic_rows,
    source_files,
    write_pickle,
)
from tools.diseases.vocab import FUNCTION_WORDS, Vocabulary, bag_key, canonical_id, key_of, tokens

# words that say nothing about which disease: function words, coordination, generic heads
STOP_WORDS = FUNCTION_WORDS | frozenset({
    "and", "or", "is", "are", "was", "were", "be", "been", "this", "that", "these", "those",
    "on", "at", "as", "from", "we", "our", "it", "its", "their", "which", "not", "no", "than",
    "have", "has", "had", "who", "whom", "also", "but", "into", "can", "may", "all", "both",
})
CONTEXT_WINDOW = 25  # words each side of a mention that describe its context
ORGAN_HEADS = ("tumor", "cancer", "carcinoma", "adenocarcinoma", "malignancy")


def content_words(text: str) -> list[str]:
    return [t for t, _, _ in tokens(text) if t not in STOP_WORDS and not t.isdigit()]


@dataclass
class MedicIndex:
    """MEDIC's names per key: key -> {concept: "name" | "synonym" | "organ"}."""

    exact: dict[str, dict[str, str]]
    bag: dict[str, set[str]]
    depth: dict[str, int]  # deepest MeSH tree level (more specific = deeper)
    words: dict[str, frozenset[str]]  # content words of the names, synonyms, definition
    parents: dict[str, tuple[str, ...]] = field(default_factory=dict)  # MeSH/MEDIC parents
    children: dict[str, tuple[str, ...]] = field(default_factory=dict)


def build_medic(path: Path) -> MedicIndex:
    """Parse CTD MEDIC (name, synonyms, trees, definition) into the per-key index."""
    exact: dict[str, dict[str, str]] = defaultdict(dict)
    bag: dict[str, set[str]] = defaultdict(set)
    depth: dict[str, int] = {}
    words: dict[str, frozenset[str]] = {}
    parents: dict[str, tuple[str, ...]] = {}
    children: dict[str, list[str]] = defaultdict(list)
    rank = {"name": 0, "synonym": 1, "organ": 2}

    def add(term: str, cid: str, kind: str) -> None:
        key = key_of(term)
        if not key:
            return
        previous = exact[key].get(cid)
        if previous is None or rank[kind] < rank[previous]:
            exact[key][cid] = kind
        b = bag_key(key.split())
        if b:
            bag[b].add(cid)

    for cols in medic_rows(path):
        name, cid, definition, trees, syns = cols[0], cols[1], cols[3], cols[5], cols[7]
        parents[cid] = tuple(p for p in cols[4].split("|") if p)
        for parent in parents[cid]:
            children[parent].append(cid)
        synonyms = [s for s in syns.split("|") if s]
        add(name, cid, "name")
        for s in synonyms:
            add(s, cid, "synonym")
        for term in (name, *synonyms):
            toks = key_of(term).split()
            if len(toks) >= 2 and toks[-1] == "neoplasm":
                for head in ORGAN_HEADS:
                    add(" ".join([*toks[:-1], head]), cid, "organ")
        levels = [len(t.split("/")[0].split(".")) for t in trees.split("|") if t]
        depth[cid] = max(levels, default=0)
        words[cid] = frozenset(content_words(" ".join([name, *synonyms, definition])))
    return MedicIndex(dict(exact), dict(bag), depth, words, parents,
                      {c: tuple(k) for c, k in children.items()})


@dataclass(frozen=True)
class TrainMention:
    """One gold train mention, as the chooser sees it."""

    doc: str  # PMID: the unit of out-of-fold splits
    key: str
    ids: frozenset[str]  # canonical gold ids (a composite's all)
    head: str  # the id the vocabulary's lexicon files the string under (the last)
    context: frozenset[str]  # content words around it (DocWords.around)
    doc_words: frozenset[str]


@dataclass(frozen=True)
class DocWords:
    """A document's content words with their offsets, tokenised once for all its mentions."""

    starts: list[int]
    ends: list[int]
    words: list[str]

    @classmethod
    def of(cls, text: str) -> DocWords:
        toks = [(t, s, e) for t, s, e in tokens(text) if t not in STOP_WORDS and not t.isdigit()]
        return cls([s for _, s, _ in toks], [e for _, _, e in toks], [t for t, _, _ in toks])

    def all(self) -> frozenset[str]:
        return frozenset(self.words)

    def around(self, start: int, end: int) -> frozenset[str]:
        """Content words within CONTEXT_WINDOW words of [start, end), the span's own excluded."""
        left = bisect.bisect_right(self.ends, start)
        right = bisect.bisect_left(self.starts, end)
        return frozenset(self.words[max(0, left - CONTEXT_WINDOW):left]
                         + self.words[right:right + CONTEXT_WINDOW])


def train_mentions(docs: list[GoldDoc], vocab: Vocabulary) -> list[TrainMention]:
    out = []
    for doc in docs:
        words = DocWords.of(doc.text)
        doc_words = words.all()
        for m in doc.mentions:
            raw = [i for i in re.split(r"[|+]", m.concept) if i.strip() and i.strip() != "-1"]
            ids = [canonical_id(i, vocab.concepts, vocab.alt_ids) for i in raw]
            ids = [i for i in ids if i in vocab.concepts]
            key = key_of(m.text)
            if not ids or not key:
                continue
            out.append(TrainMention(doc.pmid, key, frozenset(ids), ids[-1],
                                    words.around(m.start, m.end), doc_words))
    return out


def context_weight(count: int) -> float:
    """Sublinear: a word seen around a concept 50 times is not 50 times the evidence."""
    return 1.0 + math.log(count)


@dataclass
class TrainStats:
    """What a set of train mentions says: key -> concept counts, concept contexts."""

    by_key: dict[str, Counter[str]] = field(default_factory=dict)
    by_bag: dict[str, Counter[str]] = field(default_factory=dict)
    concept_count: Counter[str] = field(default_factory=Counter)
    context: dict[str, Counter[str]] = field(default_factory=dict)
    context_norm: dict[str, float] = field(default_factory=dict)
    idf: dict[str, float] = field(default_factory=dict)
    mentions: int = 0


def train_stats(mentions: list[TrainMention]) -> TrainStats:
    """Counts over `mentions` only (the fit passes the other folds' mentions)."""
    by_key: dict[str, Counter[str]] = defaultdict(Counter)
    by_bag: dict[str, Counter[str]] = defaultdict(Counter)
    context: dict[str, Counter[str]] = defaultdict(Counter)
    df: Counter[str] = Counter()
    concept_count: Counter[str] = Counter()
    for m in mentions:
        by_key[m.key][m.head] += 1
        b = bag_key(m.key.split())
        if b:
            by_bag[b][m.head] += 1
        concept_count[m.head] += 1
        df.update(m.context)
        for cid in m.ids:
            context[cid].update(m.context)
    n = max(1, len(mentions))
    idf = {w: math.log(n / c) for w, c in df.items()}
    norms = {cid: math.sqrt(sum((context_weight(v) * idf[w]) ** 2 for w, v in ctx.items()))
             for cid, ctx in context.items()}
    return TrainStats(dict(by_key), dict(by_bag), concept_count, dict(context), norms, idf,
                      len(mentions))


@dataclass
class ConceptData:
    """MEDIC's index, the train mentions, and their statistics over all of train."""

    medic: MedicIndex
    mentions: list[TrainMention]
    stats: TrainStats


def _fingerprint(paths: list[Path]) -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    for module in ("vocab.py", "corpus.py"):
        h.update((Path(__file__).parent / module).read_bytes())
    for p in paths:
        st = p.stat() if p.exists() else None
        h.update(f"{p.name}:{st.st_size if st else 0}:{int(st.st_mtime) if st else 0}".encode())
    return h.hexdigest()[:16]


@lru_cache(maxsize=2)
def load_concept_data(data_dir: str | None = None) -> ConceptData:
    """Built once (~8 s: MEDIC parse, the train corpora), then read from the on-disk cache
    beside the vocabulary's, keyed by the sources and this code."""
    data = Path(data_dir) if data_dir else load_settings().data_path()
    vocab = load_vocabulary(data_dir)
    cache = (cache_root() / "diseases"
             / f"concepts-{_fingerprint(source_files(data))}.pkl")
    if cache.exists():
        with cache.open("rb") as fh:
            return pickle.load(fh)
    docs = [d for f in CORPUS_TRAIN if (data / f).exists() for d in read_pubtator(data / f)]
    mentions = train_mentions(docs, vocab)
    found = ConceptData(build_medic(data / VOCAB_FILE), mentions, train_stats(mentions))
    write_pickle(cache, found)
    return found
