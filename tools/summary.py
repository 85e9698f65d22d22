"""Insight summary per abstract: topic, study type and main finding in one or two sentences.

Extractive by default, so it is fast, deterministic and never invents a finding: the topic
is the title, the study type comes from wording rules, the main finding is the most
conclusion-like sentence of the abstract. With a chat model, the model writes the summary
from the same facts; an empty, overlong or unparsable answer keeps the extractive one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import PydanticOutputParser
from langchain_core.prompts import ChatPromptTemplate
from pydantic import BaseModel, Field

from tools.preprocess import CITATION_MARKER, Preprocessed, sentence_spans

log = logging.getLogger(__name__)
MAX_FINDING_CHARS = 300
MAX_LLM_SUMMARY_CHARS = 600

# checked in order; the first match names the study type
_STUDY_TYPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("meta-analysis", re.compile(r"meta-?analys[ie]s|pooled analysis of", re.I)),
    ("systematic review", re.compile(r"systematic(?:ally)? review|scoping review|prisma", re.I)),
    ("randomised controlled trial", re.compile(
        r"\brandomi[sz]ed\b[^.]{0,80}\b(?:trial|study)|\bplacebo-controlled|double-blind", re.I)),
    ("clinical trial", re.compile(
        r"\bphase (?:i{1,3}|iv|[1-4])(?:/(?:i{1,3}|[1-4]))?[ab]?\b[^.]{0,40}\b(?:trial|study)"
        r"|\b(?:single|open)-arm\b|\bclinical trial\b[^.]{0,60}\b(?:enrolled|patients received)"
        r"|\bdose-escalation", re.I)),
    ("case report", re.compile(
        r"\bcase reports?\b|\bwe (?:report|present|describe) (?:a|an|the|two|three|one)\b[^.]{0,80}"
        r"\b(?:case|patient|man|woman|boy|girl|child|infant|family|proband)\b"
        r"|\ban? \d{1,3}-(?:year|month|day|week)-old\b|\bcase presentation\b"
        r"|\bpatient concerns\b", re.I)),
    ("case series", re.compile(r"\bcase series\b|\bseries of \d+ (?:cases|patients)", re.I)),
    ("guideline / consensus", re.compile(
        r"\bguidelines?\b[^.]{0,40}\b(?:recommend|update|develop)|\bconsensus (?:statement|"
        r"conference|recommendations)|\bbest practice advice\b|\bexpert panel\b", re.I)),
    ("review", re.compile(
        r"\b(?:this|our|the present|in this|narrative|comprehensive|brief) (?:mini-?)?review\b"
        r"|\bwe (?:review|summari[sz]e|discuss)\b|\breview (?:of|on) (?:the )?(?:recent|current)"
        r"|\bpurpose of review\b|\bareas? covered\b|^review\b", re.I)),
    ("case-control study", re.compile(r"\bcase-control\b", re.I)),
    ("cohort study", re.compile(
        r"\b(?:retrospective|prospective|longitudinal|registry-based|population-based)\b"
        r"|\bcohort\b", re.I)),
    ("cross-sectional study", re.compile(r"\bcross-sectional\b|\bsurvey\b|\bquestionnaire", re.I)),
    ("genetic association study", re.compile(
        r"\bgenome-wide association|\bgwas\b|\bpolygenic|\bassociation stud", re.I)),
    ("computational study", re.compile(
        r"\bdeep learning\b|\bmachine learning\b|\bneural network|\bbioinformatic|\bin silico\b"
        r"|\bsimulat(?:ed|ion)|\balgorithm\b", re.I)),
    ("laboratory study", re.compile(
        r"\b(?:mice|mouse|murine|rats?|zebrafish|xenografts?|in vitro|in vivo|cell lines?|"
        r"knockout|knockdown|organoids?)\b", re.I)),
    ("diagnostic accuracy study", re.compile(
        r"\bsensitivity and specificity\b|\bdiagnostic (?:accuracy|performance)\b|\bauc\b", re.I)),
)
_CONCLUSION_SECTIONS = ("CONCLUSION", "INTERPRETATION", "SUMMARY ANSWER", "IMPLICATIONS",
                        "KEY FINDINGS", "SIGNIFICANCE", "LESSONS")
_FINDING_CUES = re.compile(
    r"\b(?:in conclusion|we conclude|conclusions?|these (?:results|findings|data)|our "
    r"(?:results|findings|data|study)|this study (?:shows|demonstrates|suggests)|we (?:found|show|"
    r"demonstrate|identified|observed)|suggest|indicate|demonstrate|reveal|highlight|"
    r"associated with|significantly)\w*",
    re.I,
)
_LEADING_LABEL = re.compile(r"^(?:[A-Z][A-Z /&,()-]{2,60}|[A-Z][a-z]+(?: [a-z]+){0,3})\s?:\s*")


def study_type(doc: Preprocessed) -> str:
    """The study design, from wording rules on the title, section labels and abstract."""
    labels = " ".join(s.label.lower() for s in doc.sections)
    body = f"{labels}\n{doc.abstract.text if doc.status == 'ok' else ''}"
    for text in (doc.title.text, body):  # the title names the design most reliably
        for name, pattern in _STUDY_TYPES:
            if pattern.search(text):
                return name
    return "original research"


def topic(doc: Preprocessed) -> str:
    """The title without its closing period or the brackets of translated titles."""
    title = doc.title.text.strip()
    if title.startswith("[") and title.rstrip(".").endswith("]"):
        title = title.rstrip(".")[1:-1]
    return title.rstrip(". ") or "untitled abstract"


def _clean_sentence(sentence: str) -> str:
    sentence = _LEADING_LABEL.sub("", sentence.strip())
    sentence = re.sub(r"\s*" + re.escape(CITATION_MARKER), "", sentence)
    if len(sentence) > MAX_FINDING_CHARS:
        cut = sentence[:MAX_FINDING_CHARS].rsplit(" ", 1)[0]
        sentence = cut.rstrip(",;:") + " ..."
    return sentence


def main_finding(doc: Preprocessed) -> str | None:
    """The most conclusion-like sentence: a CONCLUSION section first, then cue words, late first."""
    text = doc.abstract.text
    spans = sentence_spans(text)
    if not spans or doc.status != "ok":
        return None
    for section in reversed(doc.sections):
        if section.label.startswith(_CONCLUSION_SECTIONS):
            start = doc.abstract.to_clean(section.body_start)
            for s, e in spans:
                if s <= start < e or s >= start:
                    return _clean_sentence(text[s:e])
    best, best_score = spans[-1], -1.0
    for i, (s, e) in enumerate(spans):
        cues = len(_FINDING_CUES.findall(text[s:e]))
        score = cues + i / len(spans)  # later sentences carry the finding in most abstracts
        if cues and score > best_score:
            best, best_score = (s, e), score
    return _clean_sentence(text[best[0] : best[1]])


def _disease_names(diseases: Sequence[str | Mapping]) -> list[str]:
    names = [d.get("name") or d.get("text") if isinstance(d, Mapping) else d for d in diseases]
    return list(dict.fromkeys(str(n) for n in names if n))


def extractive_summary(doc: Preprocessed, label: str | None, diseases: Sequence) -> str:
    kind = study_type(doc)
    about = f"{kind[0].upper()}{kind[1:]} on \"{topic(doc)}\""
    facts = [f"labelled {label}"] if label else []
    names = _disease_names(diseases)
    if names:
        facts.append("diseases: " + ", ".join(names[:4]) + (" ..." if len(names) > 4 else ""))
    head = about + (f" ({'; '.join(facts)})" if facts else "") + "."
    if doc.status != "ok":
        return f"{head} No abstract text: {doc.reason or doc.status}."
    finding = main_finding(doc)
    return f"{head} Main finding: {finding}" if finding else head


class LLMSummary(BaseModel):
    summary: str = Field(description="one or two sentences: topic, study type, main finding")


SYSTEM_PROMPT = (
    "You write one or two sentence insight summaries of biomedical abstracts: the topic, the "
    "study type and the main finding. Use only facts stated in the abstract. Answer with JSON only."
)
HUMAN_PROMPT = (
    "Title: {title}\nStudy type (rule-based guess): {study_type}\nLabel: {label}\n"
    "Diseases: {diseases}\nAbstract:\n{abstract}\n\n{format_instructions}"
)


def llm_summary(
    doc: Preprocessed, label: str | None, diseases: Sequence, llm: BaseChatModel
) -> str:
    """The chat model's summary; raises on unusable output."""
    parser = PydanticOutputParser(pydantic_object=LLMSummary)
    prompt = ChatPromptTemplate.from_messages([("system", SYSTEM_PROMPT), ("human", HUMAN_PROMPT)])
    answer: LLMSummary = (prompt | llm | parser).invoke(
        {
            "title": doc.title.text,
            "study_type": study_type(doc),
            "label": label or "unknown",
            "diseases": ", ".join(_disease_names(diseases)) or "none found",
            "abstract": doc.abstract.text,
            "format_instructions": 'Answer with one JSON object: {"summary": "..."}',
        }
    )
    summary = " ".join(answer.summary.split())
    if not summary or len(summary) > MAX_LLM_SUMMARY_CHARS or len(sentence_spans(summary)) > 3:
        raise ValueError(f"summary empty or too long ({len(summary)} chars)")
    return summary


def summarise(
    doc: Preprocessed,
    label: str | None,
    diseases: Sequence[str | Mapping],
    llm: BaseChatModel | None = None,
) -> str:
    """1-2 sentences: topic, study type, main finding; extractive unless a chat model is given."""
    if llm is not None and doc.status == "ok":
        try:
            return llm_summary(doc, label, diseases, llm)
        except Exception as exc:  # a model error or bad answer must not break a run
            log.warning("summary LLM output unusable, using the extractive summary: %s", exc)
    return extractive_summary(doc, label, diseases)
