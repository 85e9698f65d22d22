"""LLM route (off by default): LangChain structured prompting, grounded before it is trusted.

The chat model lists disease mentions in a pydantic schema. A listed string is kept
only where it occurs verbatim (case-insensitive, whole words) in the text AND it maps
to a CTD MEDIC concept, so a disease the model invents, or paraphrases, is dropped.
"""

from __future__ import annotations

import logging
import re

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import PydanticOutputParser
from langchain_core.prompts import ChatPromptTemplate
from pydantic import BaseModel, Field

from tools.diseases.normalise import normalise
from tools.diseases.spans import Span
from tools.diseases.vocab import Vocabulary

log = logging.getLogger(__name__)


class DiseaseList(BaseModel):
    """What the chat model must return."""

    diseases: list[str] = Field(
        default_factory=list,
        description="every disease, disorder, syndrome or cancer mentioned, copied exactly "
        "as written in the text (one entry per distinct wording)",
    )


_PARSER = PydanticOutputParser(pydantic_object=DiseaseList)
_PROMPT = ChatPromptTemplate.from_messages([
    ("system", "You are a biomedical annotator. List the diseases mentioned in the text. "
               "Copy each mention exactly as written; do not add diseases that are not in "
               "the text.\n{format_instructions}"),
    ("human", "{text}"),
]).partial(format_instructions=_PARSER.get_format_instructions())


def ask(text: str, chat: BaseChatModel) -> list[str]:
    """The chat model's disease strings; [] when its answer does not parse."""
    try:
        return (_PROMPT | chat | _PARSER).invoke({"text": text}).diseases
    except Exception as exc:  # a small model's malformed JSON must not stop the pipeline
        log.warning("LLM disease output ignored: %s", exc)
        return []


def ground(text: str, names: list[str], vocab: Vocabulary) -> list[Span]:
    """Spans for the names that occur verbatim in `text` and normalise to a concept."""
    out: list[Span] = []
    for name in dict.fromkeys(n.strip() for n in names if n and n.strip()):
        cid = normalise(vocab, name)
        if cid is None:
            continue
        pattern = rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])"
        out.extend(Span(m.start(), m.end(), cid, "llm")
                   for m in re.finditer(pattern, text, re.IGNORECASE))
    return out


def llm_spans(text: str, vocab: Vocabulary, chat: BaseChatModel) -> list[Span]:
    return ground(text, ask(text, chat), vocab)
