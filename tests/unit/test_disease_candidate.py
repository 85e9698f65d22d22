"""The NER adapter adoption rule (docs/diseases.md) as eval.disease_candidate applies it."""

import pytest

from eval.disease_candidate import verdict

pytestmark = pytest.mark.unit

CURRENT = {"ncbi_dev": 0.875, "bc5cdr_dev": 0.848}


def test_adopts_a_clear_gain_on_both_corpora() -> None:
    v = verdict(CURRENT, {"ncbi_dev": 0.881, "bc5cdr_dev": 0.854})
    assert v["adopt"] and v["mean_gain"] == pytest.approx(0.006)


def test_a_small_mean_gain_is_not_enough() -> None:
    # the synonym candidate's shape: one corpus up, the other down, mean +0.0024
    v = verdict(CURRENT, {"ncbi_dev": 0.8714, "bc5cdr_dev": 0.8565})
    assert not v["adopt"]
    assert v["delta"] == {"ncbi_dev": -0.0036, "bc5cdr_dev": 0.0085}


def test_a_corpus_losing_more_than_the_tolerance_vetoes_a_large_mean_gain() -> None:
    v = verdict(CURRENT, {"ncbi_dev": 0.869, "bc5cdr_dev": 0.868})
    assert v["mean_gain"] >= 0.005 and not v["adopt"]
