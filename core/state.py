"""The typed state that flows through the graph, one abstract per run.

Heavy objects are stored as plain dicts (pydantic `model_dump`) so the SQLite checkpointer
and LangGraph Studio can serialise every step.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


class InputState(TypedDict, total=False):
    abstract_id: str
    title: str
    abstract: str


class OutputState(TypedDict, total=False):
    record: dict[str, Any]  # a core.schema.AbstractRecord as a dict


class OncoState(InputState, OutputState, total=False):
    doc: dict[str, Any]  # tools.preprocess.Preprocessed (original text untouched + clean view)
    status: str
    classification: dict[str, Any]  # the fused decision: p_cancer, label, model, decision block
    attempts: Annotated[list[dict[str, Any]], operator.add]  # core.schema.Attempt dicts
    requery_reason: str | None  # set by the verifier when it sends the abstract back
    verifier: dict[str, Any]  # core.schema.VerifierReport
    mentions: list[dict[str, Any]]  # core.schema.DiseaseMention dicts
    diseases: list[str]
    citation_analysis: dict[str, Any]
    summary: str | None
    errors: Annotated[list[str], operator.add]
