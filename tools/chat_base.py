"""What both chat engines share (torch `tools.chat_model.LocalChat`, CTranslate2
`tools.chat_ct2.Ct2Chat`): the answer budget, the chat turns, the stop words."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage

DEFAULT_MAX_NEW_TOKENS = 256  # enough for the JSON answers; CPU time grows with it
_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def chat_turns(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as the tokenizer's chat template wants them."""
    return [{"role": _ROLES.get(m.type, "user"), "content": m.content} for m in messages]


def cut_at_stop(text: str, stop: list[str] | None) -> str:
    for word in stop or []:
        text = text.split(word, 1)[0]
    return text
