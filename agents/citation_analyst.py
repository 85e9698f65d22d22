"""Node: analyse the abstract's citations and write its short insight summary.

The citation LLM (on by default) is asked only about abstracts that have citations, and
its chat model is built only then (`tools.chat_model.chat_model_for`: the classifier's
base with the adapter off, or `citations.llm_model` on `chat.backend`); the rules answer
the rest and are the fallback when the LLM fails or its answer does not parse.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig

from agents.runtime import settings_for
from core.settings import Settings
from core.state import OncoState
from tools.chat_model import chat_model_for
from tools.citations import analyse_citations
from tools.preprocess import Preprocessed
from tools.summary import summarise


def _chat_factory(settings: Settings) -> Callable[[], BaseChatModel]:
    return partial(chat_model_for, settings.classifier.model, settings.citations.llm_model,
                   settings.chat.backend)


def analyse_citations_node(state: OncoState, config: RunnableConfig) -> dict:
    settings = settings_for(config)
    doc = Preprocessed.model_validate(state["doc"])
    chat = _chat_factory(settings)
    analysis = analyse_citations(
        doc, llm=chat if settings.citations.llm else None,
        max_new_tokens=settings.citations.max_new_tokens,
    )
    label = state.get("classification", {}).get("label")
    summary = summarise(doc, label, state.get("diseases", []),
                        llm=chat() if settings.summary.llm else None)
    return {"citation_analysis": analysis.model_dump(), "summary": summary}
