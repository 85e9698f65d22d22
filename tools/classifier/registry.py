"""One entry point for every classifier: `get_classifier(model, variant)` -> P(Cancer) scorer.

Models load once per process (lru_cache on model + variant), never at import time.
Variants: "finetuned" (the trained adapter / fitted model, Platt-calibrated on val when the
adapter folder holds a `calibration.json`) and "baseline" (the same base model zero-shot,
never calibrated: zero-shot means no labelled data). The classical references have one
model each: tfidf-logreg's baseline is the same fitted model, keyword-rule has nothing to
train, so both variants are the rule.

A causal LM scores with its config's `backend` (torch, or the CTranslate2 int8 conversion on
CPU); `get_classifier(..., backend=...)` overrides it, e.g. to compare the two in one run.
The API, the CLI and the stream workers all come through here, so they share the backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from core.schema import ModelInfo
from core.settings import Backend, ModelConfig, load_model_config
from tools.classifier.calibration import Calibration

Variant = Literal["finetuned", "baseline"]
VARIANTS: tuple[Variant, ...] = ("finetuned", "baseline")
# kinds whose "baseline" is the very same model: nothing separate to compare
SINGLE_VARIANT_KINDS = {"tfidf-logreg", "keyword-rule"}


@dataclass
class LoadedClassifier:
    """A scorer plus the ModelInfo the output record carries."""

    info: ModelInfo
    scorer: Any
    config: ModelConfig
    calibration: Calibration | None = None

    def predict_proba(self, texts: list[str], prompt: str = "default",
                      calibrated: bool = True) -> np.ndarray:
        """P(Cancer) per text; `calibrated=False` gives the model's raw softmax."""
        if isinstance(texts, str):
            raise TypeError("predict_proba takes a list of texts, not one string")
        if not texts:
            return np.zeros(0, dtype=np.float64)
        p = np.asarray(self.scorer.predict_proba(list(texts), prompt), dtype=np.float64)
        if calibrated and self.calibration is not None:
            p = self.calibration.apply(p)
        return p


def resolve_backend(cfg: ModelConfig, backend: Backend | None = None) -> Backend | None:
    """The engine a causal LM scores with: torch on CUDA (the int8 engine here is CPU-only)."""
    if cfg.kind != "causal-lm-label-words":
        return None
    import torch

    return "torch" if torch.cuda.is_available() else (backend or cfg.backend)


def _build(cfg: ModelConfig, variant: Variant, backend: Backend | None) -> tuple[Any, str | None]:
    """(scorer, adapter_version) for one model config and variant."""
    if cfg.kind == "keyword-rule":
        from tools.classifier.classical import KeywordRule

        return KeywordRule(), None
    if cfg.kind == "tfidf-logreg":
        from tools.classifier.classical import TfidfLogReg

        folder = cfg.adapter_path()
        if folder is None:
            raise ValueError(f"model {cfg.name}: set `adapter` (the fitted model's folder)")
        model = TfidfLogReg.load(folder)
        return model, model.meta.get("version")
    from tools.classifier.label_words import resolve_base_path

    base = resolve_base_path(cfg)
    if cfg.kind == "causal-lm-label-words" and backend == "ctranslate2":
        from tools.classifier.ct2_engine import Ct2LabelWordClassifier

        ct2 = Ct2LabelWordClassifier(cfg, use_adapter=variant == "finetuned", base=base)
        return ct2, ct2.adapter_version
    if cfg.kind == "causal-lm-label-words":
        from tools.classifier.label_words import LabelWordClassifier

        scorer = LabelWordClassifier(cfg, use_adapter=variant == "finetuned", base=base)
        return scorer, scorer.adapter_version
    if cfg.kind == "encoder-lora":
        from tools.classifier.encoder import EncoderClassifier, SimilarityClassifier

        if variant == "baseline":
            return SimilarityClassifier(cfg, base), None
        return EncoderClassifier(cfg, base), cfg.adapter_version()
    raise ValueError(f"model {cfg.name}: unknown kind {cfg.kind}")


@lru_cache(maxsize=8)
def get_classifier(model: str, variant: Variant = "finetuned",
                   backend: Backend | None = None) -> LoadedClassifier:
    """The classifier named `model` (configs/models/<model>.yaml or a YAML path), loaded once;
    `backend` overrides the config's inference engine of a causal LM."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}")
    cfg = load_model_config(model)
    backend = resolve_backend(cfg, backend)
    scorer, version = _build(cfg, variant, backend)
    if variant == "baseline" and cfg.kind not in SINGLE_VARIANT_KINDS:
        version = None
    calibration = None
    if variant == "finetuned" and cfg.kind not in SINGLE_VARIANT_KINDS:
        calibration = Calibration.load(cfg.adapter_path(), backend or "torch")
    info = ModelInfo(name=cfg.name if variant == "finetuned" else f"{cfg.name}:baseline",
                     kind=cfg.kind, adapter_version=version,
                     calibration=calibration.describe() if calibration else None, backend=backend)
    return LoadedClassifier(info, scorer, cfg, calibration)
