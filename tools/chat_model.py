"""The shared local chat model (citation analyst, insight summary, LLM disease route).

A LangChain `ChatHuggingFace` over a transformers text-generation pipeline on a local
folder from `tools.weights.prepare`, so it runs offline. Greedy decoding (no sampling):
the same abstract gives the same answer. Loaded once per process, on first use.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from langchain_core.language_models import BaseChatModel

DEFAULT_MAX_NEW_TOKENS = 256  # enough for the JSON answers; CPU time grows with it


def build_chat_model(
    path: str | Path, name: str | None = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
) -> BaseChatModel:
    """A deterministic chat model over the Hugging Face folder at `path` (never a hub ID)."""
    import torch
    from langchain_huggingface import ChatHuggingFace, HuggingFacePipeline
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a model folder (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(path)
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model.eval()
    if torch.cuda.is_available():
        model.to("cuda")
    model.generation_config.do_sample = False
    for unused in ("temperature", "top_p", "top_k"):  # sampling knobs: silence the warnings
        setattr(model.generation_config, unused, None)
    generate = pipeline(
        "text-generation",
        model=model,
        tokenizer=tokenizer,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        return_full_text=False,
    )
    model_id = name or path.name
    llm = HuggingFacePipeline(pipeline=generate, model_id=model_id)
    return ChatHuggingFace(llm=llm, tokenizer=tokenizer, model_id=model_id)


@cache
def get_chat_model(model_name: str = "qwen2.5-0.5b") -> BaseChatModel:
    """The named local model (`tools.weights` source name), loaded once per process."""
    from tools.weights import prepare

    return build_chat_model(prepare(model_name), name=model_name)


def model_label(llm: BaseChatModel) -> str:
    """A readable name for the record's `analyser` field ("llm:qwen2.5-0.5b")."""
    name = getattr(llm, "model_id", None) or getattr(llm, "model_name", None)
    return f"llm:{name or type(llm).__name__}"
