"""The int8 NER engine computing several windows at once (`workers`) on a tiny random-weight
BERT (real MiniLM tokenizer): the same token scores and spans as one window per call, each
document's results in its own place, also when callers share the engine from threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.settings import ConfigError, load_settings
from tools.diseases import ct2_ner
from tools.diseases.ner import TokenScores, combine, decode, sorted_windows

WORDS = ["lung", "cancer", "asthma", "von", "Willebrand", "disease", "patients", "with",
         "cystic", "fibrosis", "BRCA1", "(NSCLC)", "tumour", "and", "of", "the", "Type",
         "IID", "renal", "carcinoma", ",", "."]


@pytest.fixture(scope="module")
def engines(tiny_ner, tmp_path_factory):
    """(tokenizer, {workers: engine}): one window per call on one thread, and two workers
    on one thread each (the same arithmetic per window)."""
    import os

    from transformers import AutoTokenizer

    cache = tmp_path_factory.mktemp("ct2-cache")
    old = os.environ.get("ONCOGRAPH_CACHE")
    os.environ["ONCOGRAPH_CACHE"] = str(cache)
    try:
        folder = ct2_ner.converted_model(tiny_ner[0], tiny_ner[1], "int8")
    finally:
        if old is None:
            os.environ.pop("ONCOGRAPH_CACHE")
        else:
            os.environ["ONCOGRAPH_CACHE"] = old
    tokenizer = AutoTokenizer.from_pretrained(tiny_ner[1])
    return tokenizer, {1: ct2_ner.Ct2TokenClassifier(folder, threads=1, workers=1),
                       2: ct2_ner.Ct2TokenClassifier(folder, threads=2, workers=2),
                       3: ct2_ner.Ct2TokenClassifier(folder, threads=1, workers=3)}


def _scores(tokenizer, engine, texts: list[str]) -> list[TokenScores]:
    wins = sorted_windows(tokenizer, texts)
    return combine(wins, engine.window_probs(wins), len(texts))


def _same(a: list[TokenScores], b: list[TokenScores], texts: list[str]) -> None:
    assert [s.offsets for s in a] == [s.offsets for s in b]
    assert [s.labels for s in a] == [s.labels for s in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.p_disease, y.p_disease, atol=1e-6)
    assert ([decode(t, s.offsets, s.labels) for t, s in zip(texts, a, strict=True)]
            == [decode(t, s.offsets, s.labels) for t, s in zip(texts, b, strict=True)])


def test_workers_give_the_one_window_per_call_scores(engines):
    tokenizer, by_workers = engines
    texts = ["Lung cancer and asthma were seen in two patients with cystic fibrosis.",
             "Type IID von Willebrand disease. " * 70,  # > 512 tokens: two windows
             "", "renal carcinoma"]
    ref = _scores(tokenizer, by_workers[1], texts)
    assert any(s.labels for s in ref) and len(set(map(tuple, (s.labels for s in ref)))) > 1
    for workers in (2, 3):
        assert by_workers[workers].encoder.num_encoders == workers  # windows really run at once
        _same(ref, _scores(tokenizer, by_workers[workers], texts), texts)
    assert sorted_windows(tokenizer, []) == [] and _scores(tokenizer, by_workers[2], []) == []


def test_batched_windows_keep_their_order(engines):
    tokenizer, by_workers = engines
    texts = [" ".join(WORDS[i:] + WORDS[:i]) * (1 + i) for i in range(7)]
    wins = sorted_windows(tokenizer, texts)
    ref = by_workers[1].window_probs(wins)
    for batch_size in (2, 3):
        got = by_workers[2].window_probs(wins, batch_size=batch_size)
        assert [g.shape for g in got] == [r.shape for r in ref]
        _same(combine(wins, ref, len(texts)), combine(wins, got, len(texts)), texts)


_TEXT = st.lists(st.sampled_from(WORDS), max_size=400).map(" ".join)


@settings(max_examples=20, deadline=None)
@given(docs=st.lists(_TEXT, max_size=6))
def test_concurrent_callers_each_get_their_own_documents(engines, docs):
    """Random document lists (empty, short, past one window), scored by four callers at once
    through one two-worker engine: each caller's list comes back whole, in its order."""
    tokenizer, by_workers = engines
    lists = [docs, docs[::-1], docs[1:], [*docs, "cystic fibrosis"]]
    ref = [_scores(tokenizer, by_workers[1], texts) for texts in lists]
    with ThreadPoolExecutor(4) as callers:
        got = list(callers.map(lambda texts: _scores(tokenizer, by_workers[2], texts), lists))
    for texts, r, g in zip(lists, ref, got, strict=True):
        assert len(g) == len(texts)
        _same(r, g, texts)


def test_engine_leaves_torch_threads_alone(engines):
    """ctranslate2 sets its caller's OpenMP threads to intra_threads; a torch classifier in
    the same thread must keep its own count."""
    import torch

    folder = engines[1][1].folder
    before = torch.get_num_threads()
    for threads, workers in ((before + 3, 1), (2 * before + 2, 2)):
        ct2_ner.Ct2TokenClassifier(folder, threads=threads, workers=workers)
        assert torch.get_num_threads() == before


def test_worker_count_is_validated(engines):
    folder = engines[1][1].folder
    with pytest.raises(ValueError, match="workers"):
        ct2_ner.Ct2TokenClassifier(folder, workers=0)
    assert load_settings().diseases.ner_workers >= 1
    with pytest.raises(ConfigError, match="ner_workers"):
        load_settings(diseases={"ner_workers": 0})
