"""The record written per abstract, defined once. `python -m core.schema` exports its JSON Schema
to schemas/record.schema.json (committed; the tests check the two agree and validate output)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from core.labels import Label

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "record.schema.json"

TextField = Literal["title", "abstract"]


class DiseaseMention(BaseModel):
    """A disease span; offsets index the record's `text` when it has one (the input contract
    changed the text), otherwise the input field (title or abstract) exactly as given."""

    text: str
    start: int
    end: int
    field: TextField
    concept_id: str  # "MESH:D008175" or "OMIM:114480"
    name: str  # readable normalised name, e.g. "Lung Cancer"
    is_cancer: bool  # concept under MeSH C04 (Neoplasms), excluding C04.182 (Cysts)
    site: str | None = None  # organ-level cancer of a neoplasm: NSCLC -> "Lung Cancer"
    source: str = "dictionary"  # dictionary | model | llm (+ "+abbreviation")
    # a composite mention's concepts, one per coordinated disease ("breast and ovarian
    # cancer" -> breast, ovarian; concept_id is the last); empty for a simple mention
    parts: list[str] = []


class Citation(BaseModel):
    kind: Literal["numeric", "author_year", "pmid", "pmcid", "doi", "url"]
    raw: str
    normalised: str  # "Smith et al. 2019", "doi:10.x/y", "PMID:123", "[1-3]"
    field: TextField
    start: int
    end: int
    sentence: str | None = None  # the sentence the citation supports
    function: str | None = None  # background | method | comparison | supporting | contrast


class CitationAnalysis(BaseModel):
    count: int = 0
    by_kind: dict[str, int] = Field(default_factory=dict)
    identifiers: dict[str, list[str]] = Field(default_factory=dict)  # doi, pmid, pmcid, trial, url
    citations: list[Citation] = Field(default_factory=list)
    summary: str | None = None
    analyser: str = "rules"  # rules | llm:<model>


class Attempt(BaseModel):
    """One classifier call: which model, input view and prompt, and what it said."""

    model: str
    view: str
    prompt: str
    p_cancer: float
    reason: str = "first call"  # why the verifier asked (for a re-query)


class VerifierReport(BaseModel):
    attempts: int  # classifier calls made (1 = no re-query)
    agreed: bool  # final label consistent with the confidence threshold and the diseases found
    reason: str  # why the loop stopped
    history: list[Attempt] = Field(default_factory=list)


class Contribution(BaseModel):
    """One piece of evidence the decision used and what it added to the log-odds of Cancer."""

    feature: str  # first_call | requery | cancer_concepts | cancer_in_title | cancer_mentions
    value: float  # the feature as the model reads it (a logit, a count transform, 0/1)
    contribution: float  # coefficient * value, in log-odds (the intercept is separate)
    detail: str  # what it is, for a reader: "qwen2.5-1.5b P=0.97", "Breast Cancer"


class Decision(BaseModel):
    """The fused Cancer decision: a logistic model over every classifier call and the disease
    evidence, read at a recall-first operating point (docs/decision.md)."""

    label: Literal["Cancer", "Non-Cancer"]
    p_cancer: float  # calibrated P(Cancer) of the fused model
    threshold: float  # the operating point: Cancer when p_cancer >= threshold (may be < 0.5)
    target_recall: float  # the Cancer recall the threshold was chosen for, on held-out folds
    intercept: float
    contributions: list[Contribution] = Field(default_factory=list)
    # one line: "Cancer: qwen2.5-1.5b 0.97; 2 cancer concepts, one in the title (...)"
    explanation: str
    model: str  # which fitted decision file, or why none was used


class ModelInfo(BaseModel):
    name: str
    kind: str
    adapter_version: str | None = None
    calibration: str | None = None  # Platt scaling fitted on val, when the adapter has one
    backend: str | None = None  # inference engine (causal LM, NER encoder): torch | ctranslate2


class RecordText(BaseModel):
    """The title and abstract as processed, when the input contract (core/contract.py) changed
    them: NFC, line separators, lone surrogates, NUL. Offsets index these strings."""

    title: str
    abstract: str


class AbstractRecord(BaseModel):
    abstract_id: str
    status: str  # ok | no_abstract | notice | skipped | error: ...
    predicted_labels: list[Label] = Field(default_factory=list)
    confidence_scores: dict[str, float] = Field(default_factory=dict)
    extracted_diseases: list[str] = Field(default_factory=list)
    disease_mentions: list[DiseaseMention] = Field(default_factory=list)
    citations: CitationAnalysis = Field(default_factory=CitationAnalysis)
    metadata: dict[str, list[str]] = Field(default_factory=dict)
    summary: str | None = None
    study_type: str | None = None  # e.g. "randomised controlled trial", "review", "case report"
    verifier: VerifierReport | None = None
    decision: Decision | None = None  # how the label was reached and why
    model: ModelInfo | None = None  # the classifier that decided the label
    disease_models: list[ModelInfo] = Field(default_factory=list)  # dictionary / NER / LLM routes
    notes: list[str] = Field(default_factory=list)  # e.g. "classified from the title alone"
    text: RecordText | None = None  # only when the input contract changed the text


def export_schema(path: Path = SCHEMA_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(AbstractRecord.model_json_schema(), indent=2) + "\n")
    return path


if __name__ == "__main__":
    print(export_schema())
