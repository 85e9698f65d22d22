"""Node: check the classifier against its confidence and the diseases found; ask again if needed.

The label is the mean P(Cancer) over all attempts so far (each re-query adds evidence
from a different view, prompt or model). The verifier sends the abstract back when
that label is unsure (below the threshold) or contradicts the extracted diseases (a
cancer concept in a Non-Cancer abstract, none in a confident Cancer one), at most
`max_requeries` times, and records why it stopped.
"""

from __future__ import annotations

from statistics import fmean

from langchain_core.runnables import RunnableConfig

from agents.classifier import next_call
from agents.runtime import settings_for
from core.schema import Attempt, VerifierReport
from core.settings import Settings
from core.state import OncoState


def aggregate_p(state: OncoState, settings: Settings) -> float:
    """Mean P(Cancer) over attempts; capped when only the title was available."""
    p = fmean(a["p_cancer"] for a in state["attempts"])
    if state.get("status") != "ok":
        cap = settings.preprocessing.title_only_confidence_cap
        p = min(max(p, 1.0 - cap), cap)
    return p


def find_problem(p_cancer: float, mentions: list[dict], threshold: float) -> str | None:
    confidence = max(p_cancer, 1.0 - p_cancer)
    cancer = sorted({m["name"] for m in mentions if m.get("is_cancer")})
    if confidence < threshold:
        return f"confidence {confidence:.2f} is below the threshold {threshold:.2f}"
    if p_cancer < 0.5 and cancer:
        return f"labelled Non-Cancer but cancer concepts were found: {', '.join(cancer[:3])}"
    if p_cancer >= 0.5 and not cancer:
        return "labelled Cancer but no cancer concept was found"
    return None


def verify_node(state: OncoState, config: RunnableConfig) -> dict:
    settings = settings_for(config)
    attempts = state.get("attempts", [])
    if not attempts:  # nothing was classified (row skipped by configuration)
        return {"verifier": VerifierReport(attempts=0, agreed=True, reason="not classified").model_dump()}
    p_cancer = aggregate_p(state, settings)
    problem = find_problem(p_cancer, state.get("mentions", []), settings.verifier.confidence_threshold)
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
    label = "Cancer" if p_cancer >= 0.5 else "Non-Cancer"
    return {
        "verifier": report.model_dump(),
        "requery_reason": None,
        "classification": {"p_cancer": p_cancer, "label": label, "model": attempts[0]["model"]},
    }


def route_after_verify(state: OncoState) -> str:
    return "requery" if state.get("requery_reason") else "done"
