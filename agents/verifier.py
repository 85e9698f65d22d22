"""Node: check the decision against its confidence and the diseases found; ask again if needed.

It reads the fused decision for the calls made so far (agents/decision.py: a logistic model
over every call's logit and the disease evidence, at the recall-first operating point) and
sends the abstract back when that decision is unsure (its log-odds lie within
logit(`confidence_threshold`) of the operating point's) or contradicts the extracted
diseases (a cancer concept in a Non-Cancer abstract, none in a Cancer one), at most
`max_requeries` times, and records why it stopped. The re-query's answer feeds the fusion;
it is never averaged with the first call.
"""

from __future__ import annotations

from langchain_core.runnables import RunnableConfig

from agents.classifier import next_call
from agents.decision import fused_decision
from agents.runtime import settings_for
from core.schema import Attempt, VerifierReport
from core.state import OncoState
from tools.decision import find_problem


def verify_node(state: OncoState, config: RunnableConfig) -> dict:
    settings = settings_for(config)
    attempts = state.get("attempts", [])
    if not attempts:  # nothing was classified (row skipped by configuration)
        report = VerifierReport(attempts=0, agreed=True, reason="not classified")
        return {"verifier": report.model_dump()}
    decision = fused_decision(state, settings)
    problem = find_problem(decision.p_cancer, state.get("mentions", []),
                           settings.verifier.confidence_threshold, decision.threshold)
    requeries = len(attempts) - 1
    if problem and requeries < settings.verifier.max_requeries and next_call(state, settings):
        return {"requery_reason": problem}
    if problem is None:
        reason = "confident and consistent with the diseases found"
    elif requeries >= settings.verifier.max_requeries:
        reason = f"re-query limit ({settings.verifier.max_requeries}) reached; {problem}"
    else:
        reason = f"no different call left on the ladder; {problem}"
    report = VerifierReport(
        attempts=len(attempts),
        agreed=problem is None,
        reason=reason,
        history=[Attempt(**a) for a in attempts],
    )
    return {"verifier": report.model_dump(), "requery_reason": None}


def route_after_verify(state: OncoState) -> str:
    return "requery" if state.get("requery_reason") else "done"
