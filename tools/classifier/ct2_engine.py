"""CTranslate2 int8 engine for the label-word classifier: the same scores, cheaper arithmetic.

The torch bf16 path already runs near this CPU's bf16 matrix ceiling; only int8 (AVX512-VNNI
does twice the multiply-adds of bf16) can go past it. The LoRA adapter is merged into the
base once and converted into the cache, keyed by the base weights, the adapter's version and
weights, the label words and the ctranslate2 version, so a retrained adapter never reads a
stale conversion.

The converted model's output layer keeps only the two label-word rows of the embedding
(Cancer word, Non-Cancer word): `Generator.forward_batch` then returns (batch, length, 2)
logits instead of the whole 151,936-word vocabulary, and it takes rows of different lengths
without padding them (`generate_batch` feeds a longer prompt's extra tokens one decoding
step at a time, which made its batch of 8 three times slower than batch 1).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from core.settings import ModelConfig
from tools.classifier.batching import score_by_length
from tools.classifier.label_words import (
    PromptEncoder,
    label_token_ids,
    load_causal_lm,
    resolve_base_path,
)

FORMAT = "two-label-rows-v1"  # bump when what the conversion writes changes
_META = "oncograph.json"


def base_fingerprint(base: str, weights: str | None = None) -> str:
    """The pinned sha256 of the offline source `weights` (a tools.weights name), else the
    folder's config and weight sizes."""
    from tools.weights import SOURCES, GgufSplit

    source = SOURCES.get(weights or "")
    if isinstance(source, GgufSplit):
        return source.sha256
    folder = Path(base)
    parts = [(folder / "config.json").read_text()] if (folder / "config.json").exists() else [base]
    parts += [f"{p.name}:{p.stat().st_size}" for p in sorted(folder.glob("*.safetensors"))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def conversion_key(cfg: ModelConfig, base: str, use_adapter: bool, label_ids: list[int]) -> dict:
    """Everything the converted weights depend on; its hash names the cache folder."""
    import ctranslate2

    from tools.weights import sha256_file

    adapter = cfg.adapter_path() if use_adapter else None
    weights = adapter / "adapter_model.safetensors" if adapter is not None else None
    return {
        "format": FORMAT,
        "base": base_fingerprint(base, None if cfg.path else cfg.weights),
        "adapter_version": cfg.adapter_version() if adapter is not None else None,
        "adapter_sha256": (sha256_file(weights) if weights is not None and weights.exists()
                           else None),
        "label_ids": label_ids,
        "quantization": cfg.ct2_compute_type,
        "ctranslate2": ctranslate2.__version__,
    }


def cache_folder(name: str, key: dict) -> Path:
    from tools.weights import cache_dir

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "ct2" / f"{name}-{digest}"


def _merged_model(cfg: ModelConfig, base: str, use_adapter: bool):
    """The bf16 base with the LoRA merged in, whatever this machine computes in, so that a
    conversion is the same on every machine."""
    model, tokenizer = load_causal_lm(base, dtype=torch.bfloat16)  # the same merge everywhere
    adapter = cfg.adapter_path() if use_adapter else None
    if adapter is not None and (adapter / "adapter_config.json").exists():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    elif adapter is not None:
        raise FileNotFoundError(
            f"adapter for {cfg.name} not found at {adapter}; train it with "
            f"`python -m finetune.train --model {cfg.name}` or use the baseline variant"
        )
    return model.eval(), tokenizer


def convert(model, tokenizer, label_ids: list[int] | None, out: Path, quantization: str) -> Path:
    """Write `model` as a CTranslate2 decoder whose output layer is the label-word rows, or
    the whole vocabulary when `label_ids` is None (a generator: tools.chat_ct2).

    The converter takes the torch modules apart as it goes: `model` is unusable afterwards.
    """
    from ctranslate2.converters.converter import Converter
    from ctranslate2.converters.transformers import _MODEL_LOADERS

    if label_ids is not None:
        rows = model.get_output_embeddings().weight.detach()[label_ids].clone()
        head = torch.nn.Linear(rows.shape[1], len(label_ids), bias=False, dtype=rows.dtype)
        head.weight = torch.nn.Parameter(rows, requires_grad=False)
        model.lm_head = head
    loader = _MODEL_LOADERS.get(type(model.config).__name__)
    if loader is None:
        raise ValueError(f"ctranslate2 cannot convert {type(model.config).__name__}")

    class _InMemory(Converter):
        def _load(self):
            return loader(model, tokenizer)

    partial = out.with_name(out.name + ".partial")
    _InMemory().convert(str(partial), quantization=quantization, force=True)
    shutil.rmtree(out, ignore_errors=True)
    partial.replace(out)
    return out


def cached_conversion(name: str, key: dict, load: Callable[[], tuple],
                      label_ids: list[int] | None) -> Path:
    """The conversion cached under `key` (its hash names the folder), made on first use from
    the (model, tokenizer) that `load` returns: minutes for a 1.5B model."""
    folder = cache_folder(name, key)
    if (folder / _META).exists() and json.loads((folder / _META).read_text()) == key:
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load()
    convert(model, tokenizer, label_ids, folder, key["quantization"])
    (folder / _META).write_text(json.dumps(key, indent=2) + "\n")
    return folder


def converted_model(cfg: ModelConfig, base: str, use_adapter: bool, label_ids: list[int]) -> Path:
    """The cached conversion for this base + adapter."""
    key = conversion_key(cfg, base, use_adapter, label_ids)
    return cached_conversion(cfg.name, key, lambda: _merged_model(cfg, base, use_adapter),
                             label_ids)


class Ct2LabelWordClassifier:
    """Batched P(Cancer) from a CTranslate2 int8 conversion of the (merged) label-word model."""

    backend = "ctranslate2"

    def __init__(self, cfg: ModelConfig, use_adapter: bool = True, base: str | None = None,
                 threads: int | None = None):
        import ctranslate2
        from transformers import AutoTokenizer

        self.cfg = cfg
        base = base or resolve_base_path(cfg)
        self.tokenizer = AutoTokenizer.from_pretrained(base)
        self.label_ids = label_token_ids(self.tokenizer)
        self.encoder = PromptEncoder(self.tokenizer, cfg.max_length, cfg.tail_share)
        self.folder = converted_model(cfg, base, use_adapter, self.label_ids)
        self.adapter_version = cfg.adapter_version() if use_adapter and cfg.adapter_path() else None
        self.generator = ctranslate2.Generator(
            str(self.folder), device="cpu", compute_type=cfg.ct2_compute_type,
            intra_threads=threads or torch.get_num_threads(),
        )

    def token_ids(self, texts: list[str], prompt: str = "default") -> list[list[int]]:
        """The torch path's token ids, unpadded: the same PromptEncoder, clipping and template."""
        batch = self.encoder.encode(texts, prompt)
        return [row[mask.bool()].tolist()
                for row, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True)]

    def answer_logits(self, ids: list[list[int]]) -> np.ndarray:
        """(batch, 2) [Cancer word, Non-Cancer word] logits at each row's last token."""
        out = np.asarray(self.generator.forward_batch(ids), dtype=np.float32)
        return np.stack([out[i, len(row) - 1] for i, row in enumerate(ids)])

    def predict_proba(self, texts: list[str], prompt: str = "default",
                      batch_size: int | None = None) -> np.ndarray:
        """P(Cancer) per text, in batches of similar length."""

        def score(chunk: list[str]) -> np.ndarray:
            logits = torch.from_numpy(self.answer_logits(self.token_ids(chunk, prompt)))
            return torch.softmax(logits, dim=-1)[:, 0].numpy()

        return score_by_length(texts, batch_size or self.cfg.batch_size, score)
