"""The local chat model (citation analyst, insight summary, LLM disease route).

`LocalChat` is a LangChain chat model over a loaded causal LM: it applies the tokenizer's
chat template and decodes greedily (the same abstract gives the same answer), within a
token budget the caller may lower per call (`llm.bind(max_new_tokens=n)`).

Two ways to get one, so that a run loads at most one extra model:
- `shared_chat_model(cfg)`: the classifier's own loaded torch model. A LoRA adapter kept
  unmerged (`merge_adapter: false`) is switched off for the call (peft `disable_adapter()`),
  so the chat runs on the base weights; no second model loads.
- `get_chat_model(name, backend)`: a `tools.weights` model, loaded once per process on first
  use, on torch or as a CTranslate2 int8 generator (`tools.chat_ct2.Ct2Chat`, `chat.backend`).
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from functools import cache
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel, SimpleChatModel
from langchain_core.messages import BaseMessage
from pydantic import ConfigDict, Field

from core.settings import Backend, ModelConfig, load_model_config
from tools.chat_base import DEFAULT_MAX_NEW_TOKENS, chat_turns, cut_at_stop


class LocalChat(SimpleChatModel):
    """Greedy generation on a loaded causal LM, optionally with its peft adapter off."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: Any
    tokenizer: Any
    model_id: str
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    adapter_off: bool = False  # run a peft model's base weights (disable_adapter)
    # shared with the classifier that owns `model`: its batches never see the adapter off
    lock: Any = Field(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "oncograph-local"

    def _call(self, messages: list[BaseMessage], stop: list[str] | None = None,
              run_manager: Any = None, **kwargs: Any) -> str:
        import torch
        from transformers import GenerationConfig

        inputs = self.tokenizer.apply_chat_template(
            chat_turns(messages), add_generation_prompt=True, return_tensors="pt",
            return_dict=True,
        )
        generation = GenerationConfig(
            max_new_tokens=int(kwargs.get("max_new_tokens", self.max_new_tokens)),
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            eos_token_id=self.model.generation_config.eos_token_id,
        )
        device = next(self.model.parameters()).device
        inputs = {k: v.to(device) for k, v in inputs.items()}
        adapter = self.model.disable_adapter() if self.adapter_off else nullcontext()
        with self.lock, adapter, torch.inference_mode():
            output = self.model.generate(**inputs, generation_config=generation)
        text = self.tokenizer.decode(
            output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True
        )
        return cut_at_stop(text, stop)


def load_plain(path: str | Path):
    """(model, tokenizer) of the Hugging Face folder at `path`, in the fast float type here."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tools.compute import compute_dtype

    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a model folder (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(path)
    dtype = compute_dtype()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()
    if torch.cuda.is_available():
        model.to("cuda")
    return model, tokenizer


def build_chat_model(
    path: str | Path, name: str | None = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
) -> BaseChatModel:
    """A deterministic chat model over the Hugging Face folder at `path` (never a hub ID)."""
    model, tokenizer = load_plain(path)
    return LocalChat(model=model, tokenizer=tokenizer, model_id=name or Path(path).name,
                     max_new_tokens=max_new_tokens)


def resolve_chat_backend(backend: Backend) -> Backend:
    """The engine the chat runs on: torch on CUDA (the int8 engine here is CPU-only)."""
    import torch

    return "torch" if torch.cuda.is_available() else backend


@cache
def get_chat_model(model_name: str, backend: Backend) -> BaseChatModel:
    """The named local model (`tools.weights` source name) on `backend`, loaded once per
    process (the int8 engine converts it into the cache on first use)."""
    from tools.weights import prepare

    path = prepare(model_name)
    if resolve_chat_backend(backend) == "ctranslate2":
        from tools.chat_ct2 import build_ct2_chat

        return build_ct2_chat(path, name=model_name)
    return build_chat_model(path, name=model_name)


def lends_base(cfg: ModelConfig) -> bool:
    """Whether this classifier's loaded model can also serve as the plain base chat model:
    a label-word causal LM on torch (an int8 engine holds no torch model) whose adapter,
    if any, stays unmerged."""
    return (cfg.kind == "causal-lm-label-words" and cfg.backend == "torch"
            and (cfg.adapter is None or not cfg.merge_adapter))


def shared_chat_model(cfg: ModelConfig, scorer: Any) -> LocalChat:
    """A chat model over the classifier's own loaded model (its `LabelWordClassifier`),
    adapter off; the classifier's lock keeps its batches and the chat calls apart."""
    if not lends_base(cfg):
        raise ValueError(f"classifier {cfg.name} does not lend its base model (merged adapter?)")
    adapter_off = hasattr(scorer.model, "disable_adapter")
    return LocalChat(
        model=scorer.model, tokenizer=scorer.tokenizer, lock=scorer.lock,
        model_id=f"{cfg.name}:base" if adapter_off else cfg.name, adapter_off=adapter_off,
    )


def chat_model_for(classifier_model: str, llm_model: str, backend: Backend) -> BaseChatModel:
    """The run's chat model: the classifier's base when it lends it (the classifier is
    already loaded by then: the graph classifies first), else `llm_model` on `backend`
    (`chat.backend`), loaded once."""
    cfg = load_model_config(classifier_model)
    if lends_base(cfg):
        from tools.classifier.registry import LoadedClassifier, get_classifier

        loaded = get_classifier(classifier_model)
        assert isinstance(loaded, LoadedClassifier)  # every registry entry is one
        return shared_chat_model(cfg, loaded.scorer)
    return get_chat_model(llm_model, backend)


def model_label(llm: BaseChatModel) -> str:
    """A readable name for the record's `analyser` field ("llm:qwen2.5-1.5b:base",
    "llm:qwen2.5-0.5b:int8")."""
    name = getattr(llm, "model_id", None) or getattr(llm, "model_name", None)
    return f"llm:{name or type(llm).__name__}"
