"""Pipeline.warm_up loads every model a request can reach, not only the first call's."""

from __future__ import annotations

import pytest

import tools.chat_model
import tools.classifier.tool
import tools.diseases.lexicon
import tools.diseases.normalise
from core.settings import load_settings
from graph.pipeline import Pipeline

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("llm", "routes"), [(True, ["dictionary", "model"]),
                                              (False, ["dictionary"])])
def test_warm_up_loads_what_only_some_abstracts_reach(monkeypatch, llm, routes):
    settings = load_settings(citations={"llm": llm}, verifier={"max_requeries": 1},
                             diseases={"routes": routes})
    loaded: list[tuple] = []
    monkeypatch.setattr(Pipeline, "process", lambda self, rows, run_id="run": [])
    monkeypatch.setattr(tools.classifier.tool, "batcher_for",
                        lambda model: loaded.append(("classifier", model)))
    monkeypatch.setattr(tools.chat_model, "chat_model_for",
                        lambda *args: loaded.append(("chat", *args)))
    monkeypatch.setattr(tools.diseases.lexicon, "load_vocabulary", lambda: "vocab")
    monkeypatch.setattr(tools.diseases.normalise, "char_index",
                        lambda vocab: loaded.append(("normaliser", vocab)))
    pipeline = Pipeline(settings)
    pipeline.warm_up()
    ladder = [("classifier", s.model) for s in settings.verifier.ladder[:1] if s.model]
    chat = [("chat", settings.classifier.model, settings.citations.llm_model,
             settings.chat.backend)] if llm else []
    assert ladder, "the default ladder re-queries another model"
    normaliser = [("normaliser", "vocab")] if "model" in routes else []
    assert loaded == normaliser + ladder + chat
    assert pipeline.ready
