"""Node: score the abstract with the classifier tool, on the view the verifier asks for.

Attempt 0 uses the configured model, default view and prompt; re-query k uses rung k of
the verifier's escalation ladder (another view, prompt or model). A rung that would
repeat an earlier call exactly is skipped, so a re-query always changes something.
"""

from __future__ import annotations

from langchain_core.runnables import RunnableConfig

from agents.runtime import settings_for
from core.schema import Attempt
from core.settings import LadderStep, Settings, View
from core.state import OncoState
from tools.classifier.tool import classify_abstracts
from tools.preprocess import Preprocessed, model_text


def _effective(step: LadderStep, doc: Preprocessed, settings: Settings) -> tuple[str, View, str]:
    view: View = step.view if doc.status == "ok" else "title_only"
    return step.model or settings.classifier.model, view, step.prompt


def next_call(state: OncoState, settings: Settings) -> tuple[str, View, str] | None:
    """(model, view, prompt) of the next classifier call, or None when the ladder is spent."""
    doc = Preprocessed.model_validate(state["doc"])
    done = {(a["model"], a["view"], a["prompt"]) for a in state.get("attempts", [])}
    rungs = [LadderStep(), *settings.verifier.ladder][: settings.verifier.max_requeries + 1]
    for step in rungs:
        call = _effective(step, doc, settings)
        if call not in done:
            return call
    return None


def classify_node(state: OncoState, config: RunnableConfig) -> dict:
    settings = settings_for(config)
    call = next_call(state, settings)
    if call is None:  # the verifier checks this too; nothing new to ask
        return {}
    model, view, prompt = call
    doc = Preprocessed.model_validate(state["doc"])
    [scores] = classify_abstracts.invoke(
        {"texts": [model_text(doc, view)], "model": model, "prompt": prompt}
    )
    attempt = Attempt(
        model=model, view=view, prompt=prompt, p_cancer=scores["Cancer"],
        reason=state.get("requery_reason") or "first call",
    )
    return {"attempts": [attempt.model_dump()], "requery_reason": None}
