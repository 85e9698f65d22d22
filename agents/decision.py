"""Node: the Cancer decision, fused from every classifier call and the disease evidence.

Runs once the verifier is done. It reads the fitted logistic decision for the configured
classifier (tools/decision.py, `adapters/decision/<model>.json`) at the operating point
`decision.target_recall`, and writes the label, its calibrated P(Cancer), the threshold and
each piece of evidence's contribution into `classification["decision"]` (the record's
`decision` block). Without a fitted decision for the model it says so and uses the first
call at 0.5; the re-query is never averaged in.
"""

from __future__ import annotations

from langchain_core.runnables import RunnableConfig

from agents.runtime import settings_for
from core.schema import Decision
from core.settings import Settings, load_model_config
from core.state import OncoState
from tools.decision import Evidence, fallback_decision, load_decision


def fused_decision(state: OncoState, settings: Settings) -> Decision:
    """The decision for the calls made so far (the verifier reads it before asking again)."""
    evidence = Evidence.from_state(state["attempts"], state.get("mentions", []))
    name = load_model_config(evidence.first.model).name
    model = load_decision(settings.decision.folder(), name)
    if model is None:
        return fallback_decision(evidence, f"no fitted decision for {name} in "
                                           f"{settings.decision.path} (make decision-fit)")
    return model.decide(evidence, settings.decision.target_recall)


def cap_title_only(decision: Decision, cap: float) -> Decision:
    """A title alone is weak evidence: keep P(Cancer) inside [1 - cap, cap], unless that would
    carry it across the operating point (the label stays the model's)."""
    p = min(max(decision.p_cancer, 1.0 - cap), cap)
    if (p >= decision.threshold) != (decision.label == "Cancer"):
        p = decision.p_cancer
    return decision.model_copy(update={"p_cancer": round(p, 6)})


def decide_node(state: OncoState, config: RunnableConfig) -> dict:
    settings = settings_for(config)
    attempts = state.get("attempts", [])
    if not attempts:  # nothing was classified (row skipped by configuration)
        return {}
    decision = fused_decision(state, settings)
    if state.get("status") != "ok":
        decision = cap_title_only(decision, settings.preprocessing.title_only_confidence_cap)
    return {"classification": {"p_cancer": decision.p_cancer, "label": decision.label,
                               "model": attempts[0]["model"], "decision": decision.model_dump()}}
