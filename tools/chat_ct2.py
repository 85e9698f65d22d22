"""CTranslate2 int8 engine for the local chat model: the same greedy answers, cheaper arithmetic.

On a CPU without native bf16 the torch chat model computes in fp32; an int8 conversion reads
a quarter of the weight bytes per generated token and multiplies in int8. The conversion is
the plain base (no adapter) with its whole output layer, made once into the cache by the
classifier engine's helpers (`tools.classifier.ct2_engine`: one conversion routine, one
cache layout), keyed by the base weights, the quantization and the ctranslate2 version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from langchain_core.language_models import SimpleChatModel
from langchain_core.messages import BaseMessage
from pydantic import ConfigDict

from tools.chat_base import DEFAULT_MAX_NEW_TOKENS, chat_turns, cut_at_stop
from tools.classifier.ct2_engine import base_fingerprint, cached_conversion
from tools.classifier.label_words import load_causal_lm

FORMAT = "full-vocabulary-v1"  # bump when what the conversion writes changes
COMPUTE_TYPE = "int8"


def conversion_key(name: str, base: str, compute_type: str) -> dict:
    """Everything the converted generator depends on; its hash names the cache folder."""
    import ctranslate2

    return {"format": FORMAT, "base": base_fingerprint(base, name), "quantization": compute_type,
            "ctranslate2": ctranslate2.__version__}


def converted_generator(name: str, base: str, compute_type: str = COMPUTE_TYPE) -> Path:
    """The cached full-vocabulary conversion of the base at `base` (about a minute for 0.5B).
    It loads in bf16 whatever this machine computes in, so a conversion is the same
    everywhere (the pinned weights are stored in bf16: no rounding)."""
    key = conversion_key(name, base, compute_type)
    return cached_conversion(f"{name}-chat", key,
                             lambda: load_causal_lm(base, dtype=torch.bfloat16), None)


class Ct2Chat(SimpleChatModel):
    """Greedy generation on a CTranslate2 generator, prompted like `LocalChat`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    generator: Any
    tokenizer: Any
    model_id: str
    end_ids: list[int]  # the base's generation_config EOS ids, as LocalChat stops on
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS

    @property
    def _llm_type(self) -> str:
        return "oncograph-ct2"

    def answer_ids(self, messages: list[BaseMessage], max_new_tokens: int) -> list[int]:
        """The greedy answer's token ids, at most `max_new_tokens`, without the end token."""
        ids = self.tokenizer.apply_chat_template(
            chat_turns(messages), add_generation_prompt=True, return_dict=True
        )["input_ids"]
        result = self.generator.generate_batch(
            [self.tokenizer.convert_ids_to_tokens(ids)], max_length=max_new_tokens,
            beam_size=1, sampling_topk=1, end_token=self.end_ids,
            include_prompt_in_result=False,  # the prompt goes through in one forward pass
        )[0]
        return list(result.sequences_ids[0])

    def _call(self, messages: list[BaseMessage], stop: list[str] | None = None,
              run_manager: Any = None, **kwargs: Any) -> str:
        ids = self.answer_ids(messages, int(kwargs.get("max_new_tokens", self.max_new_tokens)))
        return cut_at_stop(self.tokenizer.decode(ids, skip_special_tokens=True), stop)


def build_ct2_chat(path: str | Path, name: str | None = None,
                   max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                   compute_type: str = COMPUTE_TYPE, threads: int | None = None) -> Ct2Chat:
    """A deterministic int8 chat model over the Hugging Face folder at `path`."""
    import ctranslate2
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a model folder (no config.json)")
    name = name or path.name
    folder = converted_generator(name, str(path), compute_type)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if (path / "generation_config.json").exists():  # what transformers' generate stops on
        generation = GenerationConfig.from_pretrained(path)
    else:
        generation = GenerationConfig.from_model_config(AutoConfig.from_pretrained(path))
    eos = generation.eos_token_id if generation.eos_token_id is not None \
        else tokenizer.eos_token_id
    generator = ctranslate2.Generator(str(folder), device="cpu", compute_type=compute_type,
                                      intra_threads=threads or torch.get_num_threads())
    return Ct2Chat(generator=generator, tokenizer=tokenizer, model_id=f"{name}:{compute_type}",
                   end_ids=eos if isinstance(eos, list) else [eos],
                   max_new_tokens=max_new_tokens)
