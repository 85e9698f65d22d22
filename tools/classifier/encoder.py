"""Sentence-encoder classifiers (all-MiniLM-L6-v2): LoRA + 2-way head, or zero-shot similarity.

Fine-tuned: the encoder with its LoRA adapter and trained head (column 0 = Cancer), merged
for inference. Zero-shot baseline: cosine similarity of the mean-pooled abstract embedding
to mean-pooled label descriptions, turned into P(Cancer) by a softmax at a fixed temperature
chosen a priori (sentence-transformers' usual scale 20, T = 0.05), never tuned on data.
Both run under bf16 autocast where the CPU has native bf16 (as in training), else fp32
(tools.compute).
"""

from __future__ import annotations

import numpy as np
import torch

from core.settings import ModelConfig
from tools.classifier.batching import score_by_length
from tools.compute import autocast

LABEL_DESCRIPTIONS = {
    "Cancer": [
        "A study about cancer: malignant tumours, carcinoma, leukaemia, lymphoma or other "
        "neoplasms, their diagnosis, treatment, genetics or prognosis.",
        "Oncology research on tumour growth, metastasis and cancer patients.",
    ],
    "Non-Cancer": [
        "A biomedical study about a disease or condition that is not cancer, such as "
        "infections, cardiovascular, metabolic, neurological or psychiatric disorders.",
        "Medical research unrelated to tumours or oncology.",
    ],
}
TEMPERATURE = 0.05


class EncoderClassifier:
    """Fine-tuned encoder: P(Cancer) from the LoRA-tuned 2-way head."""

    def __init__(self, cfg: ModelConfig, base: str):
        from peft import PeftModel
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        adapter = cfg.adapter_path()
        if adapter is None or not (adapter / "adapter_config.json").exists():
            raise FileNotFoundError(
                f"adapter for {cfg.name} not found at {adapter}; train it with "
                f"`python -m finetune.train --model {cfg.name}` or use the baseline variant"
            )
        self.cfg = cfg
        self.tokenizer = AutoTokenizer.from_pretrained(base)
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        self.model = model.eval()

    @torch.inference_mode()
    def predict_proba(self, texts: list[str], prompt: str = "default",
                      batch_size: int | None = None) -> np.ndarray:
        def score(chunk: list[str]) -> np.ndarray:
            batch = self.tokenizer(chunk, return_tensors="pt", padding=True,
                                   truncation=True, max_length=self.cfg.max_length)
            with autocast():
                logits = self.model(**batch).logits.float()
            return torch.softmax(logits, dim=-1)[:, 0].numpy()

        return score_by_length(texts, batch_size or self.cfg.batch_size, score)


class SimilarityClassifier:
    """Zero-shot baseline: softmax over cosine similarities to the two label descriptions."""

    def __init__(self, cfg: ModelConfig, base: str):
        from transformers import AutoModel, AutoTokenizer

        self.cfg = cfg
        self.tokenizer = AutoTokenizer.from_pretrained(base)
        self.model = AutoModel.from_pretrained(base).eval()
        self.label_vectors = torch.stack([
            torch.nn.functional.normalize(self.embed(descs).mean(0), dim=-1)
            for descs in LABEL_DESCRIPTIONS.values()
        ])  # row 0 = Cancer

    @torch.inference_mode()
    def embed(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                               max_length=self.cfg.max_length)
        with autocast():
            hidden = self.model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def predict_proba(self, texts: list[str], prompt: str = "default",
                      batch_size: int | None = None) -> np.ndarray:
        def score(chunk: list[str]) -> np.ndarray:
            sims = self.embed(chunk) @ self.label_vectors.T
            return torch.softmax(sims / TEMPERATURE, dim=-1)[:, 0].numpy()

        return score_by_length(texts, batch_size or self.cfg.batch_size, score)
