"""Build the disease vocabulary from CTD MEDIC and the corpora's train sets, and cache it.

The compiled index is pickled under the cache folder (~/.cache/oncograph/diseases/),
keyed by the source files' sizes and mtimes and this code, because parsing 11,865 concepts
with their ~80k synonyms takes a few seconds. Learning the stop-list and the modifier words
runs the dictionary matcher over the train texts, so this module sits above both
vocab.py (the types) and dictionary.py (the matcher).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import re
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from core.settings import load_settings
from tools.diseases.corpus import read_pubtator
from tools.diseases.dictionary import joinable_gaps, match_text
from tools.diseases.vocab import (
    FUNCTION_WORDS,
    Concept,
    Vocabulary,
    cancer_site,
    canonical_id,
    index,
    is_cancer_tree,
    key_of,
    readable_name,
    tokens,
)

VOCAB_FILE = "vocab/CTD_diseases_2017-06.tsv.gz"
_INDEX_VERSION = "4"
_EXTEND_MIN_SEEN, _EXTEND_MIN_SHARE = 5, 0.6  # see _learn_extensions


def source_files(data: Path) -> list[Path]:
    return [data / VOCAB_FILE, *(data / f for f in CORPUS_TRAIN)]


CORPUS_TRAIN = ("ncbi_disease/NCBItrainset_corpus.txt", "bc5cdr/CDR_TrainingSet.PubTator.txt")


def write_pickle(path: Path, obj: object) -> None:
    """Pickle into `path` atomically: a temporary file of this writer's own, then a rename,
    so processes building the same cache at once never read or leave a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=path.name,
                                     suffix=".tmp", delete=False) as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(fh.name, path)


def medic_rows(path: Path) -> Iterator[list[str]]:
    """CTD MEDIC's data rows as columns (name, id, alt ids, definition, parents, trees, _,
    synonyms), comment and blank lines skipped."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#") or not line.strip():
                continue
            yield line.rstrip("\n").split("\t")


def _parse_medic(path: Path) -> tuple[dict[str, Concept], dict[str, str]]:
    concepts: dict[str, Concept] = {}
    alt_ids: dict[str, str] = {}
    trees_of: dict[str, list[str]] = {}
    for cols in medic_rows(path):
        name, cid, alts, trees, syns = cols[0], cols[1], cols[2], cols[5], cols[7]
        synonyms = [s for s in syns.split("|") if s]
        trees_of[cid] = [t for t in trees.split("|") if t]
        concepts[cid] = Concept(
            concept_id=cid, name=name, readable=readable_name(name, synonyms),
            is_cancer=is_cancer_tree(trees_of[cid]), synonyms=synonyms,
        )
        for alt in alts.split("|"):
            if alt.startswith(("MESH:", "OMIM:")):
                alt_ids.setdefault(alt, cid)
    readable_at = {t: concepts[cid].readable for cid, ts in trees_of.items() for t in ts}
    for cid, concept in concepts.items():
        if concept.is_cancer:
            concept.site = cancer_site(trees_of[cid], readable_at)
    return concepts, alt_ids


def _short_upper(term: str) -> bool:
    return len(term) <= 6 and term.upper() == term and " " not in term.strip()


def build(data: Path) -> Vocabulary:
    """Compile MEDIC (+ the train-set mention strings, + a train-set stop-list) into an index."""
    concepts, alt_ids = _parse_medic(data / VOCAB_FILE)
    candidates: dict[str, Counter[str]] = defaultdict(Counter)  # key -> concept -> evidence
    upper_only: dict[str, bool] = {}

    def add(term: str, cid: str, weight: float) -> None:
        key = key_of(term)
        if not key or (len(key) <= 2 and (weight < 10 or not _short_upper(term))):
            return  # two-letter keys only as upper-case short forms annotated in train
        # typeshed's Counter counts ints; the evidence weights are floats (most_common ranks them)
        candidates[key][cid] += weight  # type: ignore[assignment]
        upper_only[key] = upper_only.get(key, True) and _short_upper(term)

    for cid, c in concepts.items():
        add(c.name, cid, 3)  # the preferred name outranks a shared synonym
        for s in c.synonyms:
            add(s, cid, 1)
        # MeSH files organ cancers under "<organ> Neoplasms"; writers say tumor, cancer,
        # (adeno)carcinoma or malignancy ("pancreatic tumors", "prostatic adenocarcinoma"):
        # weakest evidence (0.5), so a histology name of its own still wins.
        for term in (c.name, *c.synonyms):
            words = key_of(term).split()
            if len(words) >= 2 and words[-1] == "neoplasm":
                for head in ("tumor", "cancer", "carcinoma", "adenocarcinoma", "malignancy"):
                    # float evidence in a Counter: the typeshed gap noted in add()
                    candidates[" ".join([*words[:-1], head])][cid] += 0.5  # type: ignore[assignment]
    # Modifier words are learnt against MEDIC names alone: with the train mentions in the
    # lexicon, every train phrase would already match whole and nothing would be learnt.
    docs = [d for f in CORPUS_TRAIN if (data / f).exists() for d in read_pubtator(data / f)]
    extend_left, extend_right = _learn_extensions(
        index(concepts, alt_ids, candidates, upper_only), docs)
    # Training annotations: corpus spellings ("G6PD deficiency") and the concept annotators
    # chose for ambiguous strings outrank vocabulary ties.
    for doc in docs:
        for m in doc.mentions:
            ids = [i for i in re.split(r"[|+]", m.concept) if i.strip() and i.strip() != "-1"]
            if ids:  # composite ("hemorrhagic cystitis": D006470|D003556): the head, last
                cid = canonical_id(ids[-1], concepts, alt_ids)
                if cid in concepts:
                    add(m.text, cid, 10)
    vocab = index(concepts, alt_ids, candidates, upper_only)
    vocab.stopped = _learn_stoplist(vocab, docs)
    vocab.extend_left, vocab.extend_right = extend_left, extend_right
    return vocab


def _learn_stoplist(vocab: Vocabulary, docs: list) -> set[str]:
    """Keys the dictionary matches in the train texts but annotators rarely marked.

    A key matched at least twice (three times for multi-word keys) and found to be a gold
    disease span under 30% of the time ("strain", "injury", "HDL") is ambiguous in running
    text, so it is stopped; a two-letter short form needs 50%.
    """
    hits: Counter[str] = Counter()
    good: Counter[str] = Counter()
    for doc in docs:
        gold = {(m.start, m.end) for m in doc.mentions}
        gold_tokens = {i for m in doc.mentions for i in range(m.start, m.end)}
        for key, start, end, _ in match_text(vocab, doc.text):
            hits[key] += 1
            if (start, end) in gold or (start in gold_tokens and end - 1 in gold_tokens):
                good[key] += 1
    return {
        k for k, n in hits.items()
        if (n >= (2 if " " not in k else 3) and good[k] / n < 0.3)
        or (len(k) <= 2 and good[k] / n < 0.5)  # two-letter short forms: a stricter bar
    }


def _learn_extensions(vocab: Vocabulary, docs: list) -> tuple[set[str], set[str]]:
    """Words that belong to the mention when they touch a dictionary match.

    MEDIC names the disease ("hamartoma", "von Hippel-Lindau disease"); the corpora
    annotate the whole phrase ("renal hamartomas", "type IID von Willebrand disease",
    "VHL tumor"). A word directly before (after) a match in the train texts, joined to it
    by a space or hyphen, that the gold mention covering the match includes in at least
    60% of its >= 5 occurrences, extends matches on that side. Function words never do.
    (Chosen on dev: 3 / 50% helped NCBI more but cost BC5CDR; see docs/diseases.md.)
    """
    seen: dict[str, Counter[str]] = {"left": Counter(), "right": Counter()}
    kept: dict[str, Counter[str]] = {"left": Counter(), "right": Counter()}
    for doc in docs:
        toks = tokens(doc.text)
        joinable = joinable_gaps(doc.text, toks)
        first = {s: k for k, (_, s, _) in enumerate(toks)}
        last = {e: k for k, (_, _, e) in enumerate(toks)}
        for _, start, end, _ in match_text(vocab, doc.text):
            k0, k1 = first.get(start), last.get(end)
            if k0 is None or k1 is None:
                continue
            covering = [(gs, ge) for gs, ge in ((m.start, m.end) for m in doc.mentions)
                        if gs <= start and end <= ge]
            if k0 > 0 and joinable[k0 - 1]:
                word, w_start, _ = toks[k0 - 1]
                seen["left"][word] += 1
                kept["left"][word] += any(gs <= w_start for gs, _ in covering)
            if k1 + 1 < len(toks) and joinable[k1]:
                word, _, w_end = toks[k1 + 1]
                seen["right"][word] += 1
                kept["right"][word] += any(w_end <= ge for _, ge in covering)
    learnt = tuple(
        {w for w, n in seen[side].items()
         if n >= _EXTEND_MIN_SEEN and kept[side][w] / n >= _EXTEND_MIN_SHARE
         and w not in FUNCTION_WORDS | {"and", "or"}}
        for side in ("left", "right")
    )
    return learnt[0], learnt[1]


def _fingerprint(paths: list[Path]) -> str:
    """Sources' sizes and mtimes plus the code that compiles them (matcher included)."""
    h = hashlib.sha256(_INDEX_VERSION.encode())
    for module in ("vocab.py", "dictionary.py", "lexicon.py"):
        h.update((Path(__file__).parent / module).read_bytes())
    for p in paths:
        st = p.stat() if p.exists() else None
        h.update(f"{p.name}:{st.st_size if st else 0}:{int(st.st_mtime) if st else 0}".encode())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    default = Path.home() / ".cache" / "oncograph"
    return Path(os.environ.get("ONCOGRAPH_CACHE", default)).expanduser()


@lru_cache(maxsize=2)
def load_vocabulary(data_dir: str | None = None) -> Vocabulary:
    """The compiled vocabulary (built once, then read from the on-disk cache)."""
    data = Path(data_dir) if data_dir else load_settings().data_path()
    if not (data / VOCAB_FILE).exists():
        raise FileNotFoundError(f"disease vocabulary not found: {data / VOCAB_FILE}")
    cache = cache_root() / "diseases" / f"vocab-{_fingerprint(source_files(data))}.pkl"
    if cache.exists():
        with cache.open("rb") as fh:
            return pickle.load(fh)
    vocab = build(data)
    write_pickle(cache, vocab)
    return vocab
