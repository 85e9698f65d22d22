"""The fuzzy look-up's own TF-IDF row gives the very floats scikit-learn's transform gives."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.diseases.normalise import key_similarities

pytestmark = pytest.mark.unit

KEYS = ["breast cancer", "lung neoplasm", "hepatotoxicity", "parkinson disease",
        "cancer of the breast", "renal cell carcinoma", "toxicity", "a"]


@pytest.fixture(scope="module")
def index():
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectoriser = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 4), sublinear_tf=True)
    return vectoriser, vectoriser.fit_transform(KEYS).T.tocsr()


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.sampled_from(KEYS + ["hepatotoxic", "breast cancers", "", "zzzz"]),
                 st.text(max_size=40)))
def test_equals_sklearn_transform_bit_for_bit(index, key: str) -> None:
    vectoriser, by_ngram = index
    expected = (vectoriser.transform([key]) @ by_ngram).toarray()
    got = key_similarities(vectoriser, by_ngram, key).toarray()
    assert np.array_equal(got, expected)


def test_a_spelling_variant_is_nearest_its_term(index) -> None:
    vectoriser, by_ngram = index
    sims = key_similarities(vectoriser, by_ngram, "hepatotoxic").toarray().ravel()
    assert KEYS[int(sims.argmax())] == "hepatotoxicity"
