"""Insight summaries (extractive and LLM with fake chat models), study types, the run report
and the preprocessing benchmark command."""

from __future__ import annotations

import json

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from core.schema import AbstractRecord, CitationAnalysis, DiseaseMention
from graph.run_report import breakdown, write_run_report
from tools.preprocess import preprocess
from tools.summary import main_finding, study_type, summarise, topic

STRUCTURED = (
    "BACKGROUND: Little is known about X. METHODS: We enrolled 40 patients in a prospective "
    "cohort. RESULTS: X rose in 30 patients (75%). CONCLUSIONS: X is a marker of poor outcome "
    "[1]. Larger studies are needed."
)


@pytest.mark.parametrize(
    "title,abstract,expected",
    [
        ("Drug A versus B: a randomized, double-blind trial", "We randomized 200 patients.",
         "randomised controlled trial"),
        ("Giant skin tag: a case report", "We report a case.", "case report"),
        ("X in Y", "We present a 54-year-old woman with a mass.", "case report"),
        ("X: a systematic review and meta-analysis", "We pooled 12 studies.", "meta-analysis"),
        ("Advances in X", "In this review, we summarize recent findings.", "review"),
        ("X and outcome", STRUCTURED, "cohort study"),
        ("X in mice", "Knockout mice developed tumours.", "laboratory study"),
        ("Phase 2 study of drug A in lymphoma", "Patients received drug A.", "clinical trial"),
        ("A note", "Something was measured.", "original research"),
    ],
)
def test_study_type_rules(title, abstract, expected):
    assert study_type(preprocess(title, abstract)) == expected


def test_topic_strips_the_period_and_translation_brackets():
    assert topic(preprocess("[Pituitary adenomas].", "x")) == "Pituitary adenomas"
    assert topic(preprocess("", "x")) == "untitled abstract"


def test_main_finding_prefers_the_conclusion_section_without_labels_or_markers():
    doc = preprocess("t", STRUCTURED)
    assert main_finding(doc) == "X is a marker of poor outcome."


def test_main_finding_without_sections_uses_cue_words():
    doc = preprocess("t", "Cancer is common. We measured Y in 50 cases. These results suggest "
                          "that Y predicts relapse. Funding was public.")
    assert main_finding(doc) == "These results suggest that Y predicts relapse."


def test_extractive_summary_has_topic_type_label_diseases_and_finding():
    doc = preprocess("X as a marker in lung cancer.", STRUCTURED)
    text = summarise(doc, "Cancer", ["Lung Cancer", {"name": "Lung Cancer"}, {"text": "NSCLC"}])
    assert text == (
        'Cohort study on "X as a marker in lung cancer" (labelled Cancer; diseases: Lung Cancer, '
        'NSCLC). Main finding: X is a marker of poor outcome.'
    )


def test_summary_of_a_missing_abstract_says_why():
    text = summarise(preprocess("A title", "No abstract available"), None, [])
    assert text.startswith('Original research on "A title".') and "No abstract text" in text


def test_llm_summary_is_used_when_valid():
    llm = FakeListChatModel(responses=['{"summary": "A cohort study finds X marks poor outcome."}'])
    doc = preprocess("X as a marker", STRUCTURED)
    assert summarise(doc, "Cancer", [], llm=llm) == "A cohort study finds X marks poor outcome."


@pytest.mark.parametrize(
    "response",
    ["not json", '{"summary": ""}', '{"text": "wrong key"}',
     json.dumps({"summary": "One. Two. Three. Four. Five."}), json.dumps({"summary": "x " * 400})],
)
def test_invalid_llm_summary_falls_back_to_extractive(response):
    doc = preprocess("X as a marker", STRUCTURED)
    expected = summarise(doc, "Cancer", [])
    assert summarise(doc, "Cancer", [], llm=FakeListChatModel(responses=[response])) == expected


def test_llm_is_not_asked_without_an_abstract():
    llm = FakeListChatModel(responses=['{"summary": "invented"}'])
    assert "invented" not in summarise(preprocess("T", ""), None, [], llm=llm)


def _record(i: int, label: str, summary: str, diseases: list[str], cancer: bool, cites: int):
    mentions = [
        DiseaseMention(text=d, start=0, end=len(d), field="abstract", concept_id="MESH:D0",
                       name=d, is_cancer=cancer)
        for d in diseases
    ]
    return AbstractRecord(
        abstract_id=str(i), status="ok", predicted_labels=[label],
        confidence_scores={label: 0.9}, extracted_diseases=diseases, disease_mentions=mentions,
        citations=CitationAnalysis(count=cites, by_kind={"numeric": cites} if cites else {},
                                   identifiers={"trial": ["NCT01234567"]} if cites else {}),
        metadata={"copyright": ["2016 Wiley"]} if i == 0 else {}, summary=summary,
    ).model_dump(mode="json")


def test_run_report_breakdown_and_files(tmp_path):
    records = [
        _record(0, "Cancer", 'Case report on "A".', ["Lung Cancer"], True, 2),
        _record(1, "Cancer", 'Cohort study on "B".', ["Lung Cancer", "Melanoma"], True, 0),
        _record(2, "Non-Cancer", "A free-text LLM summary.", ["Asthma"], False, 1),
        {"abstract_id": "3", "status": "error: bad row"},
    ]
    data = breakdown(records)
    assert data["labels"] == {"Cancer": 2, "Non-Cancer": 1, "none": 1}
    assert data["statuses"] == {"ok": 3, "error": 1}
    assert data["top_diseases"]["Lung Cancer"] == 2
    assert data["cancer_types"] == {"Lung Cancer": 2, "Melanoma": 1}
    assert data["study_types"] == {"case report": 1, "cohort study": 1, "unknown": 2}
    assert data["citations"] == {"total": 3, "abstracts_with_citations": 2,
                                 "by_kind": {"numeric": 3}, "identifiers": {"trial": 2}}
    assert data["metadata"] == {"copyright": 1}
    md = write_run_report(records, "my run/1", out_dir=tmp_path)
    assert md.name == "my_run_1.md"
    assert (tmp_path / "my_run_1.png").stat().st_size > 1000
    assert json.loads((tmp_path / "my_run_1.json").read_text()) == data
    text = md.read_text()
    assert "| Lung Cancer | 2 | 50.0% |" in text and "3 citations in 2 of 4 abstracts" in text


def test_run_report_cli_rejects_bad_input(tmp_path, capsys):
    from graph.run_report import main

    bad = tmp_path / "out.jsonl"
    bad.write_text('{"abstract_id": "1", "status": "ok"}\nnot json\n')
    assert main([str(bad), "--out-dir", str(tmp_path)]) == 2
    assert "out.jsonl:2: not JSON" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.jsonl")]) == 2


def test_bench_preprocess_writes_its_report(tmp_path, data_dir):
    from eval.bench_preprocess import main

    assert main(["--passes", "1", "--out-dir", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "bench.json").read_text())
    assert result["abstracts"] == 1000 and result["throughput"]["median"] > 0
    assert result["census"]["statuses"] == {"ok": 999, "notice": 1}
    assert (tmp_path / "bench.png").exists()
    assert "abstracts/s" in (tmp_path / "bench.md").read_text()
