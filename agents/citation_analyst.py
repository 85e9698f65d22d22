"""Node: analyse the abstract's citations and write its short insight summary.

LLM analysis only when configured; the tools fall back to deterministic rules when no
LLM is set, the abstract has no citations, or the LLM fails.
"""

from __future__ import annotations

from langchain_core.runnables import RunnableConfig

from agents.runtime import settings_for
from core.state import OncoState
from tools.citations import analyse_citations
from tools.preprocess import Preprocessed
from tools.summary import summarise


def _chat_model(enabled: bool, name: str):
    if not enabled:
        return None
    from tools.chat_model import get_chat_model

    return get_chat_model(name)


def analyse_citations_node(state: OncoState, config: RunnableConfig) -> dict:
    settings = settings_for(config)
    doc = Preprocessed.model_validate(state["doc"])
    analysis = analyse_citations(doc, llm=_chat_model(settings.citations.llm, settings.citations.llm_model))
    label = state.get("classification", {}).get("label")
    summary = summarise(
        doc, label, state.get("diseases", []),
        llm=_chat_model(settings.summary.llm, settings.citations.llm_model),
    )
    return {"citation_analysis": analysis.model_dump(), "summary": summary}
