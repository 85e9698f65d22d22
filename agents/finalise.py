"""Node: assemble the one output record (core.schema.AbstractRecord) from the state."""

from __future__ import annotations

from functools import lru_cache

from langchain_core.runnables import RunnableConfig

from agents.runtime import settings_for
from core.schema import (
    AbstractRecord,
    CitationAnalysis,
    DiseaseMention,
    ModelInfo,
    VerifierReport,
)
from core.settings import load_model_config
from core.state import OncoState
from tools.classifier.tool import as_scores
from tools.diseases import model_info as disease_model_info
from tools.preprocess import Preprocessed
from tools.summary import study_type


@lru_cache(maxsize=8)
def _disease_models(routes: tuple[str, ...], backend: str) -> list[ModelInfo]:
    """Hashes the NER adapter once per process, not once per abstract."""
    return disease_model_info(routes, backend)


def _model_info(name: str, classified: bool) -> ModelInfo:
    if classified:
        from tools.classifier.registry import get_classifier

        return get_classifier(name).info
    return ModelInfo(name=name, kind=load_model_config(name).kind)


def finalise_node(state: OncoState, config: RunnableConfig) -> dict:
    settings = settings_for(config)
    doc = Preprocessed.model_validate(state["doc"])
    classification = state.get("classification") or {}
    notes = []
    if doc.status != "ok":
        notes.append(doc.reason or doc.status)
        if classification:
            cap = settings.preprocessing.title_only_confidence_cap
            notes.append(f"classified from the title alone; confidence capped at {cap:.2f}")
        else:
            notes.append("not classified: preprocessing.missing_abstract is 'skip'")
    verifier = state.get("verifier")
    record = AbstractRecord(
        abstract_id=str(state.get("abstract_id", "")),
        status=doc.status,
        predicted_labels=[classification["label"]] if classification else [],
        confidence_scores=as_scores(classification["p_cancer"]) if classification else {},
        extracted_diseases=state.get("diseases", []),
        disease_mentions=[DiseaseMention.model_validate(m) for m in state.get("mentions", [])],
        citations=CitationAnalysis.model_validate(state.get("citation_analysis", {})),
        metadata=doc.metadata,
        summary=state.get("summary"),
        study_type=study_type(doc) if doc.status == "ok" else None,
        verifier=None if verifier is None else VerifierReport.model_validate(verifier),
        decision=classification.get("decision"),
        model=_model_info(classification.get("model", settings.classifier.model),
                          bool(classification)),
        disease_models=_disease_models(tuple(settings.diseases.routes),
                                       settings.diseases.model_backend),
        notes=notes,
    )
    return {"record": record.model_dump(mode="json")}
