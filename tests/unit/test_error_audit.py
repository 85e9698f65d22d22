"""The error audit's rules: each category assigned by its rule, evidence measured in the real
Qwen tokenizer, counts and the upper bound computed from them."""

from __future__ import annotations

import numpy as np
import pytest

from eval import error_audit as A
from tools.classifier.classical import KEYWORD_PATTERN
from tools.classifier.label_words import PromptEncoder
from tools.diseases import extract_diseases
from tools.preprocess import model_text, preprocess


def ev(keyword: int | None = None, concept: int | None = None, concepts: tuple = (),
       title: tuple = (), budget: int = 200, seen: bool | None = None) -> A.Evidence:
    """Synthetic evidence; `seen` (evidence_in_input) defaults to "some position is inside
    a head-only clip of `budget` tokens"."""
    if seen is None:
        seen = any(t is not None and t < budget for t in (keyword, concept))
    return A.Evidence(keyword_hits=int(keyword is not None), first_keyword_token=keyword,
                      cancer_concepts=list(concepts or title), title_concepts=list(title),
                      first_concept_token=concept, tokens=400, budget=budget,
                      evidence_in_input=seen)


@pytest.mark.parametrize(("gold", "evidence", "expected"), [
    (True, ev(), "no_evidence"),
    (True, ev(keyword=200), "cut_by_clipping"),
    (True, ev(keyword=199), None),
    (True, ev(keyword=250, concept=10, concepts=("Thymoma",)), None),
    (True, ev(concept=257, concepts=("Thymoma",)), "cut_by_clipping"),
    (True, ev(concepts=("Thymoma",)), "cut_by_clipping"),  # a concept outside the model text
    # past the head but kept by the tail: the positions no longer decide
    (True, ev(keyword=380, concept=380, concepts=("Thymoma",), seen=True), None),
    (True, ev(keyword=3, seen=False), "cut_by_clipping"),  # the flag decides, not position
    (True, ev(keyword=3, concept=3, title=("Lung Cancer",)), None),
    (False, ev(keyword=3, concept=3, title=("Lung Cancer",)), "title_concept"),
    (False, ev(keyword=300, concept=300, title=("Lung Cancer",), seen=False), "title_concept"),
    (False, ev(keyword=40, concept=40, concepts=("Lung Cancer",)), None),
    (False, ev(), None),
])
def test_each_rule_assigns_its_category(gold, evidence, expected):
    assert A.categorise(gold, evidence) == expected


@pytest.fixture(scope="module")
def tokenizer(qwen_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen_tokenizer_dir)


@pytest.fixture(scope="module")
def encoder(tokenizer) -> PromptEncoder:
    enc = PromptEncoder(tokenizer, max_length=0)
    assert enc.budget == 16 and enc.tail_share == 0  # the floor: a short text passes it
    return enc


@pytest.fixture(scope="module")
def tail_encoder(tokenizer) -> PromptEncoder:
    enc = PromptEncoder(tokenizer, max_length=0, tail_share=0.5)
    assert enc.budget == 16  # head 6 tokens, " ... ", tail 8 tokens
    return enc


def _measure(title: str, abstract: str, encoder: PromptEncoder) -> A.Evidence:
    doc = preprocess(title, abstract)
    return A.measure(doc, extract_diseases(doc, ("dictionary",)), encoder)


def test_keyword_past_the_budget_is_where_the_clipped_text_ends(encoder):
    abstract = "Healthy adults " + "walked daily and slept well. " * 10 + \
        "Breast cancer survivors were excluded."
    e = _measure("Exercise and sleep quality", abstract, encoder)
    ids = encoder.tokenizer.encode(model_text(preprocess("Exercise and sleep quality", abstract)),
                                   add_special_tokens=False)
    pos = e.first_keyword_token
    assert pos >= e.budget and not e.evidence_in_input and e.tokens == len(ids)
    assert not KEYWORD_PATTERN.search(encoder.tokenizer.decode(ids[:pos]))
    assert KEYWORD_PATTERN.search(encoder.tokenizer.decode(ids[:pos + 3]))
    assert e.cancer_concepts == ["Breast Cancer"] and not e.concept_in_title
    assert e.first_concept_token == pos - 1  # "Breast" is the token before "cancer"
    assert A.categorise(True, e) == "cut_by_clipping"


LONG = "Healthy adults " + "walked daily and slept well. " * 10


def test_evidence_at_the_end_is_in_the_input_only_with_a_tail(encoder, tail_encoder):
    title, abstract = "Exercise and sleep quality", LONG + "Breast cancer survivors were excluded."
    text = model_text(preprocess(title, abstract))
    assert "cancer" in tail_encoder.clip(text) and "cancer" not in encoder.clip(text)
    head_only, with_tail = _measure(title, abstract, encoder), _measure(title, abstract,
                                                                         tail_encoder)
    assert not head_only.evidence_in_input and with_tail.evidence_in_input
    assert A.categorise(True, head_only) == "cut_by_clipping"
    assert A.categorise(True, with_tail) is None
    # the token columns describe the text, not the clipping: the same under both encoders
    assert with_tail.first_keyword_token == head_only.first_keyword_token >= with_tail.budget
    assert with_tail.tokens == head_only.tokens


def test_a_concept_without_keyword_counts_through_its_surface_text(encoder, tail_encoder):
    title, abstract = "Exercise and sleep quality", LONG + "One adult had a thymoma."
    e = _measure(title, abstract, tail_encoder)
    assert e.keyword_hits == 0 and e.cancer_concepts == ["Thymoma"]
    assert not KEYWORD_PATTERN.search(tail_encoder.clip(model_text(preprocess(title, abstract))))
    assert e.evidence_in_input and A.categorise(True, e) is None
    assert A.categorise(True, _measure(title, abstract, encoder)) == "cut_by_clipping"


def test_evidence_in_the_middle_is_cut_by_head_and_tail(tail_encoder):
    abstract = "Healthy adults " + "walked daily. " * 5 + "Breast cancer was rare. " + \
        "They slept well. " * 10
    e = _measure("Exercise and sleep quality", abstract, tail_encoder)
    assert e.keyword_hits == 1 and e.cancer_concepts == ["Breast Cancer"]
    assert not e.evidence_in_input and A.categorise(True, e) == "cut_by_clipping"


def test_title_concept_and_no_evidence_from_real_text(encoder):
    titled = _measure("Lung cancer screening uptake in rural clinics", "We surveyed clinics.",
                      encoder)
    assert titled.title_concepts == ["Lung Cancer"] and titled.first_keyword_token <= 2
    assert A.categorise(False, titled) == "title_concept"
    assert A.categorise(True, titled) is None
    plain = _measure("Sleep in shift workers", "Nurses on night shifts slept less.", encoder)
    assert plain.keyword_hits == 0 and plain.cancer_concepts == []
    assert A.categorise(True, plain) == "no_evidence"


def _report(tail_share: float = 0.0) -> dict:
    evidence = [ev(), ev(keyword=300, concept=300, concepts=("Cancer",)),
                ev(keyword=2, concept=2, title=("Lung Cancer",)), ev()]
    gold = np.array([True, True, False, False])
    probs = {"a": np.array([0.1, 0.2, 0.9, 0.8]), "b": np.array([0.1, 0.9, 0.2, 0.5])}
    return A.build_report(["1", "2", "3", "4"], ["t1", "t2", "t3", "t4"], gold, probs,
                          evidence, "a", tail_share)


def test_report_counts_categories_and_the_upper_bound():
    report = _report()
    assert [r["category"] for r in report["rows"]] == [
        "no_evidence", "cut_by_clipping", "title_concept", "model_error"]
    assert [r["n_wrong"] for r in report["rows"]] == [2, 1, 1, 2]
    assert [r["wrong_by_all"] for r in report["rows"]] == [True, False, False, True]
    a, b = report["models"]["a"], report["models"]["b"]
    assert a["errors"] == 4 and a["upper_bound_accuracy"] == 0.5  # 2 label-conflict errors
    assert b["accuracy"] == 0.5 and b["categories"]["model_error"] == 1  # 0.5 is Cancer
    assert b["upper_bound_accuracy"] == 0.75
    assert report["split_counts"] == {"no_evidence": 1, "cut_by_clipping": 1,
                                      "title_concept": 1}
    assert report["title_concepts_of_non_cancer"] == {"Lung Cancer": 1}
    assert report["clipped"] == 4 and report["budget"] == 200 and report["tail_share"] == 0
    assert [r["evidence_in_input"] for r in report["rows"]] == [False, False, True, False]
    assert "evidence_past_budget" not in report["rows"][0]


def test_markdown_states_rules_and_bound():
    md = A._markdown({**_report(), "when": "now", "adapter_versions": {"a": "v1"},
                      "skipped": {"c": "no cached predictions"}})
    for label, rule in A.RULES.values():
        assert f"**{label}**: {rule}." in md
    assert "not a measurement" in md and "Not audited: c" in md
    assert "| a | 0.000 | 4 | 1 | 1 | 1 | 1 | 0.500 |" in md
    assert "| no_evidence | cut_by_clipping | title_concept | model_error |" in md
    assert "past_budget" not in md and "head only: it keeps the first 200 tokens" in md


def test_markdown_states_a_head_and_tail_clipping():
    md = A._markdown({**_report(tail_share=0.33), "when": "now",
                      "adapter_versions": {"a": "v1"}, "skipped": {}})
    # PromptEncoder.clip: tail int(200 * 0.33) = 66, head 200 - 66 - 2 = 132
    assert "head + tail: it keeps the first 132 and the last 66 tokens" in md
    assert "tail_share 0.33" in md and "head only" not in md


def test_missing_cache_is_one_line_error(tmp_path, capsys):
    assert A.main(["--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "error: no cached predictions" in err and "Traceback" not in err
