"""Wires the nodes into the OncoGraph StateGraph.

 preprocess ─┬─> classify ─> extract_diseases ─> verify ─┬─> decide ─> analyse_citations ─> finalise
             │       ^                                   │
             │       └──────── re-query (bounded) ───────┘
             └─> extract_diseases  (abstract missing and missing_abstract: skip)
"""

from __future__ import annotations

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agents.citation_analyst import analyse_citations_node
from agents.classifier import classify_node
from agents.decision import decide_node
from agents.disease_extractor import extract_diseases_node
from agents.finalise import finalise_node
from agents.preprocessing import preprocess_node
from agents.runtime import settings_for
from agents.verifier import route_after_verify, verify_node
from core.state import InputState, OncoState, OutputState


def route_after_preprocess(state: OncoState, config: RunnableConfig) -> str:
    skip = settings_for(config).preprocessing.missing_abstract == "skip"
    return "extract_diseases" if state.get("status") != "ok" and skip else "classify"


def route_after_classify(state: OncoState) -> str:
    # on a re-query the diseases are already known: go straight back to the verifier
    return "verify" if "mentions" in state else "extract_diseases"


def build_graph() -> StateGraph:
    builder = StateGraph(OncoState, input_schema=InputState, output_schema=OutputState)
    builder.add_node("preprocess", preprocess_node)
    builder.add_node("classify", classify_node)
    builder.add_node("extract_diseases", extract_diseases_node)
    builder.add_node("verify", verify_node)
    builder.add_node("decide", decide_node)
    builder.add_node("analyse_citations", analyse_citations_node)
    builder.add_node("finalise", finalise_node)
    builder.add_edge(START, "preprocess")
    builder.add_conditional_edges("preprocess", route_after_preprocess,
                                  ["classify", "extract_diseases"])
    builder.add_conditional_edges("classify", route_after_classify, ["verify", "extract_diseases"])
    builder.add_edge("extract_diseases", "verify")
    builder.add_conditional_edges(
        "verify", route_after_verify, {"requery": "classify", "done": "decide"}
    )
    builder.add_edge("decide", "analyse_citations")
    builder.add_edge("analyse_citations", "finalise")
    builder.add_edge("finalise", END)
    return builder


def compile_graph(checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    return build_graph().compile(checkpointer=checkpointer, name="oncograph")
