"""Causal-LM classifier: P(Cancer) from the next-token logits of two label words.

The same scorer serves the zero-shot baseline (no adapter) and the LoRA-tuned model
(adapter on), so the comparison isolates what fine-tuning changed. Training
(finetune/train.py) optimises exactly the quantity scored here: cross-entropy over
the two label-word logits at the answer position.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from core.settings import ModelConfig
from tools.classifier.batching import score_by_length
from tools.classifier.prompts import LABEL_WORDS, render_messages
from tools.compute import compute_dtype


def resolve_base_path(cfg: ModelConfig) -> str:
    """A hub ID or local folder when configured, else the offline pinned weights."""
    if cfg.path:
        return cfg.path
    if not cfg.weights:
        raise ValueError(f"model {cfg.name}: set `path` or `weights`")
    from tools.weights import prepare

    return str(prepare(cfg.weights))


def label_token_ids(tokenizer) -> list[int]:
    """[Cancer word id, Non-Cancer word id]; refuses words that are not one token."""
    ids = []
    for label, word in LABEL_WORDS.items():
        pieces = tokenizer.encode(word, add_special_tokens=False)
        if len(pieces) != 1:
            raise ValueError(f"label word {word!r} for {label} is {len(pieces)} tokens, need 1")
        ids.append(pieces[0])
    return ids


def load_causal_lm(base: str, dtype: torch.dtype | None = None, four_bit: bool = False):
    """In `dtype`, by default the fast float type here (tools.compute: bf16 where native,
    else fp32); on CUDA, optionally 4-bit NF4 for QLoRA."""
    dtype = dtype or compute_dtype()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.padding_side = "left"  # the answer position is the last token of every row
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs: dict = {"dtype": dtype}
    if torch.cuda.is_available():
        kwargs["device_map"] = "cuda"
        if four_bit:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype
            )
    model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


class PromptEncoder:
    """Truncates the abstract (never the prompt) so the answer slot always survives.

    A text over the budget keeps its first tokens, or with `tail_share` > 0 its first and
    last ones joined by " ... " (the tail's share of the budget).
    """

    def __init__(self, tokenizer, max_length: int, tail_share: float = 0.0):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.tail_share = tail_share
        overhead = len(self._ids("", "default"))
        self.budget = max(16, max_length - overhead - 8)

    @staticmethod
    def kept(budget: int, tail_share: float) -> tuple[int, int]:
        """(head, tail): the tokens a text over `budget` keeps from its start and its end."""
        tail = int(budget * tail_share)
        return (budget, 0) if tail == 0 else (budget - tail - 2, tail)  # 2: the " ... " marker

    def clip(self, text: str) -> str:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) <= self.budget:
            return text
        head, tail = self.kept(self.budget, self.tail_share)
        if tail == 0:
            return self.tokenizer.decode(ids[:head])
        return self.tokenizer.decode(ids[:head]) + " ... " + self.tokenizer.decode(ids[-tail:])

    def _ids(self, text: str, prompt: str) -> list[int]:
        return self.tokenizer.apply_chat_template(
            render_messages(prompt, text), add_generation_prompt=True, tokenize=True,
            return_dict=False,
        )

    def encode(self, texts: list[str], prompt: str = "default") -> dict[str, torch.Tensor]:
        clipped = [self.clip(text) for text in texts]
        rendered = [
            self.tokenizer.apply_chat_template(
                render_messages(prompt, t), add_generation_prompt=True, tokenize=False
            )
            for t in clipped
        ]
        return self.tokenizer(
            rendered, return_tensors="pt", padding=True, add_special_tokens=False,
            truncation=True, max_length=self.max_length + 16,
        )


def answer_logits(model, batch: dict[str, torch.Tensor], label_ids: list[int]) -> torch.Tensor:
    """(batch, 2) logits of [Cancer word, Non-Cancer word] at the answer position.

    Runs the decoder, then projects the last position onto the two label-word rows of the
    output embedding only, in fp32. The model's own head (`logits_to_keep=1`) sends a
    sliced hidden state through a batched matmul that copies the 151,936 x 1536 weight
    once per row: about half of a 1.5B forward pass on this CPU (docs/classification.md).
    """
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft
    hidden = causal_lm.get_decoder()(
        input_ids=batch["input_ids"].to(causal_lm.device),
        attention_mask=batch["attention_mask"].to(causal_lm.device),
        use_cache=False,
    ).last_hidden_state[:, -1, :]
    head = causal_lm.get_output_embeddings()
    bias = None if head.bias is None else head.bias[label_ids].float()
    return torch.nn.functional.linear(hidden.float(), head.weight[label_ids].float(), bias)


class LabelWordClassifier:
    """Batched P(Cancer) for a causal LM with an optional LoRA adapter.

    With `merge_adapter: false` in the model config the adapter stays a peft layer, so the
    same loaded weights also serve as the plain base model (`disable_adapter()`) for the
    chat tasks (tools.chat_model.shared_chat_model).
    """

    def __init__(self, cfg: ModelConfig, use_adapter: bool = True, base: str | None = None):
        self.cfg = cfg
        base = base or resolve_base_path(cfg)
        model, self.tokenizer = load_causal_lm(base)
        self.adapter_version: str | None = None
        # held for every forward pass, so a chat call that switches the adapter off
        # (tools.chat_model.LocalChat) never overlaps a classification batch
        self.lock = threading.Lock()
        adapter = cfg.adapter_path() if use_adapter else None
        if adapter is not None and (adapter / "adapter_config.json").exists():
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter))
            if cfg.merge_adapter:  # plain weights: no LoRA overhead, but no base model either
                model = model.merge_and_unload()
            self.adapter_version = cfg.adapter_version()
        elif use_adapter and adapter is not None:
            raise FileNotFoundError(
                f"adapter for {cfg.name} not found at {adapter}; train it with "
                f"`python -m finetune.train --model {cfg.name}` or use the baseline variant"
            )
        self.model = model.eval()
        self.label_ids = label_token_ids(self.tokenizer)
        self.encoder = PromptEncoder(self.tokenizer, cfg.max_length, cfg.tail_share)

    @torch.inference_mode()
    def predict_proba(self, texts: list[str], prompt: str = "default",
                      batch_size: int | None = None) -> np.ndarray:
        """P(Cancer) per text, in batches of similar length."""

        def score(chunk: list[str]) -> np.ndarray:
            batch = self.encoder.encode(chunk, prompt)
            with self.lock:
                logits = answer_logits(self.model, batch, self.label_ids)
            return torch.softmax(logits, dim=-1)[:, 0].cpu().numpy()

        return score_by_length(texts, batch_size or self.cfg.batch_size, score)
