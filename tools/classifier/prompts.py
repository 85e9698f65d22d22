"""LangChain prompt templates for the label-word classifier.

The answer is read off the next-token logits of two single-token label words
("Yes" / "No"; checked against the tokenizer at load time), never parsed from free text.
"Cancer" itself is two Qwen tokens ("C" + "ancer"), so it cannot serve as a label word.
"""

from __future__ import annotations

from langchain_core.prompts import ChatPromptTemplate

LABEL_WORDS = {"Cancer": "Yes", "Non-Cancer": "No"}

_SYSTEM = "You are a biomedical literature curator. Answer with one word: Yes or No."

PROMPTS: dict[str, ChatPromptTemplate] = {
    "default": ChatPromptTemplate.from_messages(
        [
            ("system", _SYSTEM),
            (
                "human",
                "Is the following PubMed abstract about cancer?\n\n{text}\n\n"
                "Is this abstract about cancer? Answer Yes or No.",
            ),
        ]
    ),
    # a second wording for the verifier's re-query: spells out what counts as cancer
    "definition": ChatPromptTemplate.from_messages(
        [
            ("system", _SYSTEM),
            (
                "human",
                "Cancer research here means any work on neoplasms: malignant tumours, "
                "benign and hereditary tumour conditions (adenomas, polyposis, "
                "neurofibromatosis), their treatment, genetics, screening or "
                "complications.\n\nAbstract:\n{text}\n\n"
                "Is this abstract cancer research? Answer Yes or No.",
            ),
        ]
    ),
}


def render_messages(prompt: str, text: str) -> list[dict[str, str]]:
    """Prompt -> chat messages in the Hugging Face chat-template format."""
    roles = {"system": "system", "human": "user", "ai": "assistant"}
    out: list[dict[str, str]] = []
    for m in PROMPTS[prompt].format_messages(text=text):
        if not isinstance(m.content, str):  # only multimodal messages carry a list
            raise TypeError(f"prompt {prompt!r}: message content must be text")
        out.append({"role": roles[m.type], "content": m.content})
    return out
