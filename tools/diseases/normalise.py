"""Concept normalisation for free-text mentions (model and LLM routes).

Order: the dictionary's exact normalised key, then its word-order key, then the
nearest vocabulary term by TF-IDF cosine over character 3-4-grams (catches spelling
and morphology variants the key normaliser misses: "hepatotoxic" -> "hepatotoxicity").
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from tools.diseases.vocab import FUNCTION_WORDS, Vocabulary, key_of

MIN_SIMILARITY = 0.5
_INDEXES: dict[int, tuple] = {}


def char_index(vocab: Vocabulary) -> tuple:
    """TF-IDF over every vocabulary key, built on first use (about 4 s; a server builds it
    at warm-up) and kept per vocabulary.

    Kept transposed (n-grams x keys, CSR): a mention's few n-grams then select a few
    rows instead of multiplying the whole key matrix."""
    if id(vocab) in _INDEXES:
        return _INDEXES[id(vocab)]
    from sklearn.feature_extraction.text import TfidfVectorizer

    keys = list(vocab.exact)
    vectoriser = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 4), sublinear_tf=True)
    matrix = vectoriser.fit_transform(keys)
    _INDEXES[id(vocab)] = (vectoriser, matrix.T.tocsr(), [vocab.exact[k] for k in keys])
    return _INDEXES[id(vocab)]


def key_similarities(vectoriser: Any, by_ngram: Any, key: str) -> Any:
    """Cosine of `key` to every indexed key, a 1 x keys CSR row: the same floats as
    `vectoriser.transform([key]) @ by_ngram`, without scikit-learn's per-call input
    validation, which was most of a look-up's cost (~3 of the route's ~50 ms per BC5CDR
    abstract went to 4 such calls)."""
    from scipy.sparse import csr_matrix

    columns = vectoriser.vocabulary_
    counts = Counter(columns[g] for g in vectoriser.build_analyzer()(key) if g in columns)
    cols = np.array(sorted(counts), dtype=np.int32)
    tf = np.array([counts[c] for c in cols.tolist()], dtype=float)
    data = (np.log(tf) + 1) * vectoriser.idf_[cols]  # sublinear tf times idf, as TfidfTransformer
    norm = 0.0
    for v in data.tolist():  # summed in order, as scikit-learn's l2 row normaliser does
        norm += v * v
    if norm:
        data /= np.sqrt(norm)
    query = csr_matrix((data, cols, np.array([0, len(cols)])), shape=(1, len(columns)))
    return query @ by_ngram


def normalise(vocab: Vocabulary, mention: str) -> str | None:
    """MEDIC concept id for a mention string, or None when nothing is similar enough."""
    found = vocab.lookup(mention)
    if found:
        return found
    key = key_of(mention)
    if not set(key.split()) - FUNCTION_WORDS - {"and", "or"}:
        return None  # nothing but function words: not a name
    vectoriser, by_ngram, ids = char_index(vocab)
    sims = key_similarities(vectoriser, by_ngram, key).toarray().ravel()
    best = int(sims.argmax())
    return ids[best] if sims[best] >= MIN_SIMILARITY else None
