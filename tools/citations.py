"""Citation analyst: what an abstract cites, and why.

`preprocess` already found every citation (kind, normalised form, ORIGINAL span, the
sentence it supports). Here we count them, collect the cited identifiers (DOIs, PMIDs,
PMCIDs, URLs, and the trial registrations kept as metadata) and label each citation's
function. The rules always run; a chat model, when given and when the abstract has
citations, may replace the functions and the summary through a pydantic-parsed answer
(greedy, within a token budget that grows with the citation count). Any failure or
invalid answer keeps the rule-based result, and `analyser` says which one answered.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from typing import Literal, get_args

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import PydanticOutputParser
from langchain_core.prompts import ChatPromptTemplate
from pydantic import BaseModel, Field, ValidationError

from core.schema import Citation, CitationAnalysis
from tools.chat_model import DEFAULT_MAX_NEW_TOKENS, model_label
from tools.preprocess import CITATION_MARKER, Preprocessed

log = logging.getLogger(__name__)

Function = Literal["background", "method", "comparison", "supporting", "contrast"]
FUNCTIONS: tuple[str, ...] = get_args(Function)
_ID_KINDS = {"doi": "doi", "pmid": "pmid", "pmcid": "pmcid", "url": "url"}
_DOI_IN_TEXT = re.compile(r"10\.\d{4,9}/[^\s\"<>\]]+")

# sentence cues, checked in this order; the first that matches decides
_CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("contrast", re.compile(
        r"\b(?:however|in contrast|contrary|unlike|whereas|conflicting|inconsistent|differ(?:s|ed)?"
        r"|disagree|controvers|although|but not)\b", re.I)),
    ("comparison", re.compile(
        r"\b(?:compared (?:with|to)|comparison|similar(?:ly)? to|in line with|comparable"
        r"|as reported|previous(?:ly)? reported|consistent with previous)\b", re.I)),
    ("method", re.compile(
        r"\b(?:using|used|method|technique|protocol|algorithm|software|pipeline|as described"
        r"|according to|available (?:at|from|via|through|here)|code|database|catalog|calculator"
        r"|score|guidelines?|criteria|classification)\b", re.I)),
    ("supporting", re.compile(
        r"\b(?:confirm|support|consistent|demonstrated|shown|showed|evidence|reported good"
        r"|agree|corroborat|validated)\w*", re.I)),
)


class LLMCitationAnswer(BaseModel):
    """What the chat model must return (parsed and validated with pydantic).

    A bare list of labels, the k-th for citation k: about 3 tokens a citation where an
    {"index": k, "function": ...} object costs 12, and generated tokens are the CPU cost.
    """

    functions: list[Function] = Field(description="one label per citation, in list order")
    summary: str = Field(description="one sentence: what the abstract cites and for what")


SYSTEM_PROMPT = (
    "You analyse the citations of a biomedical abstract. Each numbered citation comes with "
    "the sentence that cites it. Give each citation's function: background (prior knowledge "
    "or context), method (a method, tool, dataset, guideline or resource that was used), "
    "comparison (results compared with it), supporting (evidence that supports a claim or "
    "finding) or contrast (work that disagrees or differs). Then write one sentence "
    "summarising what the abstract cites and for what. Answer with JSON only."
)
# the citing sentences, not the whole abstract: the prompt's prefill is most of the CPU cost
# of a short answer, and the sentence is what decides a citation's function
HUMAN_PROMPT = (
    "Title: {title}\n\nCitations ({marker} marks where each is cited):\n{citations}\n\n"
    "{format_instructions}"
)


SUMMARY_PLACEHOLDER = "<one sentence on what is cited>"
MIN_SUMMARY_CHARS = 20
# the answer's token budget: the summary and JSON frame, then a few tokens per label
ANSWER_BASE_TOKENS = 48
ANSWER_TOKENS_PER_CITATION = 6


def answer_budget(n_citations: int, cap: int) -> int:
    """max_new_tokens for an answer on `n_citations`: enough for a valid one, never over `cap`."""
    return min(cap, ANSWER_BASE_TOKENS + ANSWER_TOKENS_PER_CITATION * n_citations)


def format_instructions(n: int) -> str:
    """A short example beats a JSON schema for a small local model; pydantic still validates."""
    example = ", ".join(['"background"'] * n)
    return (
        f"Answer with one JSON object whose functions list has exactly {n} labels, the k-th "
        f"for citation k, for example:\n"
        f'{{"functions": [{example}], "summary": "{SUMMARY_PLACEHOLDER}"}}\n'
        f"Each label is one of: {', '.join(FUNCTIONS)}."
    )


def build_prompt() -> ChatPromptTemplate:
    return ChatPromptTemplate.from_messages([("system", SYSTEM_PROMPT), ("human", HUMAN_PROMPT)])


def rule_function(citation: Citation) -> str:
    """A deterministic function label from the citing sentence's wording."""
    if citation.kind == "url":
        return "method"  # links in abstracts point at code, data or calculators
    sentence = citation.sentence or ""
    for function, cue in _CUES:
        if cue.search(sentence):
            return function
    return "background"


def identifiers(doc: Preprocessed) -> dict[str, list[str]]:
    """Cited identifiers by type, in order of appearance, without duplicates."""
    found: dict[str, list[str]] = {}

    def add(kind: str, value: str) -> None:
        if value not in found.setdefault(kind, []):
            found[kind].append(value)

    for citation in doc.citations:
        if citation.kind in _ID_KINDS:
            add(_ID_KINDS[citation.kind], citation.normalised)
    for item in doc.removed:
        if item.kind == "trial_registration":
            add("trial", item.value)
        elif item.kind == "notice":  # "[This corrects the article DOI: 10.x/y.]"
            for doi in _DOI_IN_TEXT.findall(item.value):
                add("doi", "doi:" + doi.rstrip(".,;").lower())
    return {kind: values for kind, values in found.items() if values}


def _rules_summary(citations: list[Citation], ids: dict[str, list[str]]) -> str:
    if not citations:
        if ids:
            listed = "; ".join(f"{k}: {', '.join(v)}" for k, v in ids.items())
            return f"No in-text citations; identifiers in the metadata ({listed})."
        return "No citations."
    kinds = Counter(c.kind for c in citations)
    functions = Counter(c.function for c in citations)
    names = list(dict.fromkeys(c.normalised for c in citations))
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    by_kind = ", ".join(f"{n} {k.replace('_', '-')}" for k, n in kinds.most_common())
    by_function = ", ".join(f"{n} {f}" for f, n in functions.most_common())
    plural = "citation" if len(citations) == 1 else "citations"
    return f"{len(citations)} {plural} ({by_kind}): {shown}; functions: {by_function}."


def rule_analysis(doc: Preprocessed) -> CitationAnalysis:
    """The deterministic analysis; also the fallback for every LLM failure."""
    citations = [c.model_copy(update={"function": rule_function(c)}) for c in doc.citations]
    ids = identifiers(doc)
    return CitationAnalysis(
        count=len(citations),
        by_kind=dict(Counter(c.kind for c in citations)),
        identifiers=ids,
        citations=citations,
        summary=_rules_summary(citations, ids),
        analyser="rules",
    )


def _citation_lines(citations: list[Citation]) -> str:
    return "\n".join(
        f'{i}. {c.normalised} ({c.kind.replace("_", "-")}) in: "{c.sentence or ""}"'
        for i, c in enumerate(citations, 1)
    )


def llm_answer(doc: Preprocessed, llm: BaseChatModel,
               max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> LLMCitationAnswer:
    """Ask the chat model; raises on unusable output (the caller falls back to rules)."""
    parser = PydanticOutputParser(pydantic_object=LLMCitationAnswer)
    n = len(doc.citations)
    bound = llm.bind(max_new_tokens=answer_budget(n, max_new_tokens))
    chain = build_prompt() | bound | parser
    answer: LLMCitationAnswer = chain.invoke(
        {
            "marker": CITATION_MARKER,
            "title": doc.title.text,  # cleaned texts only: no IDs, no metadata
            "citations": _citation_lines(doc.citations),
            "format_instructions": format_instructions(n),
        }
    )
    if len(answer.functions) != n:
        raise ValueError(f"answer has {len(answer.functions)} labels for {n} citations")
    summary = answer.summary.strip()
    if len(summary) < MIN_SUMMARY_CHARS or "<" in summary or summary.endswith("..."):
        raise ValueError(f"summary is empty or copies the example: {summary!r}")
    return answer


def analyse_citations(
    doc: Preprocessed,
    llm: BaseChatModel | Callable[[], BaseChatModel] | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
) -> CitationAnalysis:
    """Counts, identifiers, functions and a summary; the LLM only when there are citations.

    `llm` may be a zero-argument factory, called only for an abstract with citations, so
    a run loads its chat model when the first such abstract arrives, and never otherwise.
    """
    result = rule_analysis(doc)
    if llm is None or not doc.citations:
        return result
    try:
        chat = llm if isinstance(llm, BaseChatModel) else llm()
        answer = llm_answer(doc, chat, max_new_tokens)
    except (ValueError, ValidationError) as exc:  # OutputParserException is a ValueError
        log.warning("citation LLM output unusable, using rules: %s", str(exc)[:200])
        return result
    except Exception as exc:  # a model error must not break a run
        log.warning("citation LLM failed, using rules: %s: %s", type(exc).__name__, exc)
        return result
    citations = [
        c.model_copy(update={"function": f})
        for c, f in zip(doc.citations, answer.functions, strict=True)
    ]
    return result.model_copy(
        update={
            "citations": citations,
            "summary": answer.summary.strip(),
            "analyser": model_label(chat),
        }
    )
