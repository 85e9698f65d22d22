"""Node: find and normalise the diseases the abstract mentions (spans index the original text)."""

from __future__ import annotations

from langchain_core.runnables import RunnableConfig

from agents.runtime import settings_for
from core.state import OncoState
from tools.diseases import disease_names, extract_diseases
from tools.preprocess import Preprocessed


def extract_diseases_node(state: OncoState, config: RunnableConfig) -> dict:
    settings = settings_for(config)
    doc = Preprocessed.model_validate(state["doc"])
    mentions = extract_diseases(
        doc, routes=settings.diseases.routes, rule=settings.diseases.merge_rule(),
        backend=settings.diseases.model_backend,
    )
    return {
        "mentions": [m.model_dump() for m in mentions],
        "diseases": disease_names(mentions),
    }
