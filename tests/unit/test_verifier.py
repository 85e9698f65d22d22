"""The verifier loop: both routes, the bound, and that a re-query always changes the call.

The classifier here is scripted (P(Cancer) per prompt), so each route is reached on
purpose; the real models are tested in tests/test_classifier*.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from core.schema import ModelInfo
from core.settings import load_settings
from graph.builder import compile_graph

CANCER_TEXT = ("Non-small cell lung cancer (NSCLC) is the leading cause of cancer death. "
               "We treated 40 patients.")
PLAIN_TEXT = "Asthma is a chronic airway disease. We studied inhaled steroids in 40 children."


@dataclass
class ScriptedClassifier:
    by_prompt: dict[str, float]
    info: ModelInfo = field(default_factory=lambda: ModelInfo(name="scripted", kind="test"))

    def predict_proba(self, texts: list[str], prompt: str = "default") -> np.ndarray:
        return np.full(len(texts), self.by_prompt[prompt])


@pytest.fixture
def script(monkeypatch):
    import tools.classifier.registry as registry
    import tools.classifier.tool as tool

    def use(by_prompt: dict[str, float]) -> None:
        tool.clear_batchers()
        monkeypatch.setattr(registry, "get_classifier",
                            lambda model, variant="finetuned": ScriptedClassifier(by_prompt))

    yield use
    tool.clear_batchers()


def run(abstract: str, title: str = "A study", **overrides):
    # no fitted decision for the scripted calls (tests/test_decision.py covers the fusion):
    # the label is the first call at 0.5, the verifier's policy is what is tested here
    settings = load_settings(
        None,
        decision={"path": "tests/no-decision"},
        diseases={"routes": ["dictionary"]},
        verifier={
            "confidence_threshold": 0.8,
            "max_requeries": 2,
            "ladder": [
                {"view": "abstract_first", "prompt": "definition"},
                {"view": "head_and_tail", "prompt": "default"},
            ],
            **overrides,
        },
    )
    out = compile_graph().invoke(
        {"abstract_id": "t1", "title": title, "abstract": abstract},
        {"configurable": {"settings": settings}},
    )
    return out["record"]


def test_confident_and_consistent_needs_one_call(script):
    script({"default": 0.97, "definition": 0.97})
    record = run(CANCER_TEXT)
    assert record["verifier"]["attempts"] == 1
    assert record["verifier"]["agreed"] is True
    assert record["predicted_labels"] == ["Cancer"]
    assert record["confidence_scores"]["Cancer"] == pytest.approx(0.97)


def test_low_confidence_requeries_up_to_the_bound_with_distinct_calls(script):
    script({"default": 0.6, "definition": 0.55})
    record = run(CANCER_TEXT)
    history = record["verifier"]["history"]
    assert record["verifier"]["attempts"] == 3  # 1 call + max_requeries
    assert len({(a["model"], a["view"], a["prompt"]) for a in history}) == 3
    assert record["verifier"]["agreed"] is False
    assert "re-query limit (2) reached" in record["verifier"]["reason"]
    # never a plain mean: without a fitted decision the first call stands, and the record says so
    assert record["confidence_scores"]["Cancer"] == pytest.approx(0.6)
    assert record["decision"]["model"].startswith("none: no fitted decision")


def test_bound_of_zero_never_requeries(script):
    script({"default": 0.6, "definition": 0.6})
    record = run(CANCER_TEXT, max_requeries=0)
    assert record["verifier"]["attempts"] == 1
    assert "re-query limit (0)" in record["verifier"]["reason"]


def test_contradiction_with_diseases_requeries(script):
    # confidently Non-Cancer, but the text names lung cancer: the verifier asks again
    script({"default": 0.02, "definition": 0.02})
    record = run(CANCER_TEXT)
    history = record["verifier"]["history"]
    assert history[0]["reason"] == "first call"
    assert "cancer concepts were found" in history[1]["reason"]
    assert record["verifier"]["attempts"] == 3
    assert record["verifier"]["agreed"] is False


def test_confident_cancer_without_cancer_concept_is_questioned(script):
    script({"default": 0.95, "definition": 0.95})
    record = run(PLAIN_TEXT)
    assert record["verifier"]["attempts"] == 3
    assert "no cancer concept" in record["verifier"]["reason"]


def test_title_only_skips_rungs_that_would_repeat_a_call(script):
    script({"default": 0.6, "definition": 0.6})
    # every view collapses to the title: only the prompt change is a new call
    record = run("", title="Erratum: lung cancer screening outcomes")
    assert record["status"] == "no_abstract"
    assert record["verifier"]["attempts"] == 2
    assert "no different call left" in record["verifier"]["reason"]
    assert max(record["confidence_scores"].values()) <= 0.75
    assert any("title alone" in note for note in record["notes"])
