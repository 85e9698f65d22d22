"""Citation analyst: rules, the pydantic-parsed LLM route and every fallback, on fake chat
models (langchain_core) and on a tiny random-weight Qwen, including the classifier's own
model with its LoRA adapter switched off."""

from __future__ import annotations

import json

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from core.schema import CitationAnalysis
from tools.citations import (
    FUNCTIONS,
    analyse_citations,
    answer_budget,
    build_prompt,
    identifiers,
    rule_function,
)
from tools.preprocess import preprocess

ABSTRACT = (
    "BACKGROUND: Skin tags are common [1]. However, giant ones differ from small ones (Smith "
    "2019; Lee and Park 2020). METHODS: We used the protocol described by Brown et al., 2018 "
    "and code at https://github.com/x/y. RESULTS: Similar to earlier work [2, 3], lesions "
    "shrank. This trial was registered at ClinicalTrials.gov, number NCT01234567."
)


class RecordingChat(FakeListChatModel):
    """A fake chat model that also keeps the prompts and call options it was sent."""

    seen: list = []
    options: list = []

    def _call(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(messages)
        self.options.append(kwargs)
        return super()._call(messages, stop=stop, run_manager=run_manager, **kwargs)


class BrokenChat(FakeListChatModel):
    def _call(self, messages, stop=None, run_manager=None, **kwargs):
        raise RuntimeError("model crashed")


def _answer(functions: list[str], summary: str = "Cites prior work and a protocol.") -> str:
    return json.dumps({"functions": functions, "summary": summary})


@pytest.fixture()
def doc():
    return preprocess("Giant skin tags", ABSTRACT)


def test_rules_count_kinds_identifiers_and_sentences(doc):
    result = analyse_citations(doc)
    assert isinstance(result, CitationAnalysis)
    assert result.analyser == "rules"
    assert [c.normalised for c in result.citations] == [
        "[1]", "Smith 2019", "Lee and Park 2020", "Brown et al. 2018", "https://github.com/x/y",
        "[2,3]",
    ]
    assert result.count == 6
    assert result.by_kind == {"numeric": 2, "author_year": 3, "url": 1}
    assert result.identifiers == {"url": ["https://github.com/x/y"], "trial": ["NCT01234567"]}
    assert [c.function for c in result.citations] == [
        "background", "contrast", "contrast", "method", "method", "comparison",
    ]
    assert result.citations[1].sentence.startswith("However, giant ones differ")
    assert "6 citations" in result.summary


def test_rule_function_defaults_to_background():
    doc = preprocess("t", "Tumours grow [1].")
    assert rule_function(doc.citations[0]) == "background"


def test_identifiers_include_the_notice_doi():
    doc = preprocess("t", "[This corrects the article DOI: 10.3389/fimmu.2023.1178582.].")
    assert identifiers(doc) == {"doi": ["doi:10.3389/fimmu.2023.1178582"]}
    result = analyse_citations(doc)
    assert result.count == 0 and "doi:10.3389" in result.summary


def test_llm_answer_is_used_when_valid(doc):
    functions = ["background", "contrast", "comparison", "method", "method", "supporting"]
    llm = RecordingChat(responses=[f"```json\n{_answer(functions)}\n```"])
    llm.seen, llm.options = [], []
    result = analyse_citations(doc, llm=llm, max_new_tokens=200)
    assert [c.function for c in result.citations] == functions
    assert result.summary == "Cites prior work and a protocol."
    assert result.analyser.startswith("llm:")
    assert result.identifiers["trial"] == ["NCT01234567"]  # counts stay rule-based facts
    sent = "\n".join(m.content for m in llm.seen[0])
    assert "1. [1] (numeric)" in sent and "6. [2,3] (numeric)" in sent
    assert "NCT01234567" not in sent  # metadata is not part of the model text
    assert "exactly 6 labels" in sent
    # greedy answers are bounded per abstract: 48 + 6 per citation, at most the cap
    assert llm.options[0]["max_new_tokens"] == answer_budget(6, 200) == 84
    assert answer_budget(40, 200) == 200


def test_a_factory_is_called_only_for_an_abstract_with_citations(doc):
    calls = []

    def factory():
        calls.append(1)
        return FakeListChatModel(responses=[_answer(["method"] * 6)])

    plain = preprocess("t", "No references here.")
    assert analyse_citations(plain, llm=factory).analyser == "rules" and calls == []
    assert analyse_citations(doc, llm=factory).analyser.startswith("llm:") and calls == [1]


def test_a_factory_that_cannot_load_falls_back_to_rules(doc):
    def factory():
        raise FileNotFoundError("no weights")

    assert analyse_citations(doc, llm=factory) == analyse_citations(doc)


@pytest.mark.parametrize(
    "response",
    [
        "I think these are background citations.",  # not JSON
        '{"functions": ["background"], "summary": "Cites one prior study here."}',  # too few
        _answer(["background"] * 7),  # too many
        _answer(["background"] * 5 + ["praise"]),  # a function outside the vocabulary
        _answer(["background"] * 6, summary="   "),  # empty summary
        _answer(["background"] * 6, summary="<one sentence on what is cited>"),  # the example
        _answer(["background"] * 6, summary="The abstract cites ..."),  # a stub
        '{"functions": ["background", "method", ',  # cut off by the token budget
    ],
)
def test_invalid_llm_output_falls_back_to_rules(doc, response):
    result = analyse_citations(doc, llm=FakeListChatModel(responses=[response]))
    assert result == analyse_citations(doc)
    assert result.analyser == "rules"


def test_llm_errors_fall_back_to_rules(doc):
    assert analyse_citations(doc, llm=BrokenChat(responses=["unused"])).analyser == "rules"


def test_llm_is_not_called_without_citations():
    doc = preprocess("t", "No references here. Trial NCT01234567.")
    llm = RecordingChat(responses=["never used"])
    llm.seen = []
    result = analyse_citations(doc, llm=llm)
    assert llm.seen == [] and result.analyser == "rules"
    assert result.identifiers == {"trial": ["NCT01234567"]}


def test_prompt_names_every_function_and_asks_for_json():
    messages = build_prompt().format_messages(
        marker="[ref]", title="T", citations="1. [1]", format_instructions="SCHEMA"
    )
    text = "\n".join(m.content for m in messages)
    for function in FUNCTIONS:
        assert function in text
    assert "JSON" in text and "SCHEMA" in text


def test_real_corpus_citations(data_dir):
    from core.io import read_folder

    rows = {r.abstract_id: r for r in read_folder(data_dir / "abstracts")}
    row = rows["31292799"]
    result = analyse_citations(preprocess(row.title, row.abstract))
    assert result.count == 9 and result.by_kind == {"author_year": 9}
    assert result.citations[0].function == "method"  # "defined in several clinical guidelines"


def test_tiny_random_qwen_output_falls_back_to_rules(tiny_qwen_dir, doc):
    """The real generation path: random weights produce garbage, so rules answer."""
    from tools.chat_model import build_chat_model

    llm = build_chat_model(tiny_qwen_dir, name="tiny-qwen", max_new_tokens=8)
    assert analyse_citations(doc, llm=llm) == analyse_citations(doc)


def test_get_chat_model_loads_once_per_process(tiny_qwen_dir, monkeypatch):
    import tools.weights
    from tools.chat_model import get_chat_model, model_label

    calls = []
    monkeypatch.setattr(tools.weights, "prepare", lambda name: calls.append(name) or tiny_qwen_dir)
    get_chat_model.cache_clear()
    try:
        first = get_chat_model("qwen2.5-0.5b", "torch")
        assert get_chat_model("qwen2.5-0.5b", "torch") is first
        assert calls == ["qwen2.5-0.5b"]
        assert model_label(first) == "llm:qwen2.5-0.5b"
        assert first.adapter_off is False
    finally:
        get_chat_model.cache_clear()


def test_build_chat_model_rejects_a_folder_without_a_model(tmp_path):
    from tools.chat_model import build_chat_model

    with pytest.raises(FileNotFoundError, match="no config.json"):
        build_chat_model(tmp_path)
