"""Node: clean the text once; every later node works from this view and its offset map."""

from __future__ import annotations

from core.state import OncoState
from tools.preprocess import preprocess


def preprocess_node(state: OncoState) -> dict:
    doc = preprocess(state.get("title"), state.get("abstract"))
    return {"doc": doc.model_dump(), "status": doc.status}
