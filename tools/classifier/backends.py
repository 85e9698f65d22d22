"""Trainable wrappers: one per model kind, each exposing the 2-way logits training needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from core.labels import Example
from core.settings import ModelConfig
from tools.compute import autocast


def _top_layer_ids(model, top: int | None) -> list[int] | None:
    if top is None:
        return None
    n = model.config.num_hidden_layers
    return list(range(max(0, n - top), n))


@dataclass
class LabelWordTrainable:
    """Causal LM scored by its "Yes"/"No" next-token logits (no new head)."""

    model: Any
    tokenizer: Any
    encoder: Any
    label_ids: list[int]
    modules_to_save: list[str] | None = None
    task_type: str = "CAUSAL_LM"
    prompt: str = "default"

    def top_layer_ids(self, top: int | None) -> list[int] | None:
        return _top_layer_ids(self.model, top)

    def logits(self, examples: list[Example]) -> torch.Tensor:
        from tools.classifier.label_words import answer_logits

        batch = self.encoder.encode([ex.text for ex in examples], self.prompt)
        return answer_logits(self.model, batch, self.label_ids)


@dataclass
class EncoderTrainable:
    """Sentence encoder with a 2-way classification head trained alongside LoRA."""

    model: Any
    tokenizer: Any
    max_length: int
    modules_to_save: list[str] = field(default_factory=lambda: ["classifier"])
    task_type: str = "SEQ_CLS"

    def top_layer_ids(self, top: int | None) -> list[int] | None:
        return _top_layer_ids(self.model, top)

    def logits(self, examples: list[Example]) -> torch.Tensor:
        batch = self.tokenizer(
            [ex.text for ex in examples], return_tensors="pt", padding=True,
            truncation=True, max_length=self.max_length,
        )
        # head index 0 = Cancer, 1 = Non-Cancer, like the label-word columns; the float type
        # of inference (tools.compute: bf16 autocast where the CPU has it natively)
        with autocast():
            return self.model(**batch).logits.float()


def build_trainable(cfg: ModelConfig, base: str | None = None):
    from tools.classifier.label_words import (
        PromptEncoder,
        label_token_ids,
        load_causal_lm,
        resolve_base_path,
    )

    base = base or resolve_base_path(cfg)
    if cfg.kind == "causal-lm-label-words":
        # QLoRA when CUDA is present (bitsandbytes 4-bit base, bf16 LoRA); bf16 LoRA on CPU
        four_bit = cfg.train.qlora and torch.cuda.is_available()
        model, tokenizer = load_causal_lm(base, four_bit=four_bit)
        if getattr(model, "is_loaded_in_4bit", False):
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        return LabelWordTrainable(
            model, tokenizer, PromptEncoder(tokenizer, cfg.max_length, cfg.tail_share),
            label_token_ids(tokenizer),
        )
    if cfg.kind == "encoder-lora":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base)
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)
        return EncoderTrainable(model, tokenizer, cfg.max_length)
    raise ValueError(f"{cfg.name}: kind {cfg.kind} is not trainable with LoRA")
