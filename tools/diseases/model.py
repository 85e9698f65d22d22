"""Model route: the LoRA-tuned MiniLM token classifier, loaded once per process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from core.settings import PROJECT_ROOT, load_settings
from tools.compute import native_bf16
from tools.diseases.ner import (
    TokenScores,
    combine,
    decode,
    merged_ner,
    predict_tokens,
    sorted_windows,
)
from tools.diseases.normalise import normalise
from tools.diseases.spans import Span
from tools.diseases.vocab import Vocabulary

ADAPTER_DIR = PROJECT_ROOT / "adapters" / "ner-minilm"


@lru_cache(maxsize=2)
def load_ner(adapter_dir: str = str(ADAPTER_DIR), base_dir: str | None = None):
    """(model, tokenizer): base encoder + LoRA adapter merged for inference, once per process."""
    return merged_ner(adapter_dir, base_dir)


BACKENDS = ("torch", "ctranslate2")


@lru_cache(maxsize=4)
def load_ct2_ner(adapter_dir: str = str(ADAPTER_DIR), base_dir: str | None = None,
                 workers: int = 1):
    """(engine, tokenizer): the cached CTranslate2 int8 conversion of the merged model,
    computing `workers` windows at once on torch's thread count between them."""
    import torch
    from transformers import AutoTokenizer

    from tools.diseases.ct2_ner import Ct2TokenClassifier, converted_model
    from tools.weights import prepare

    base = Path(base_dir or prepare("minilm"))
    folder = converted_model(Path(adapter_dir), base)
    engine = Ct2TokenClassifier(folder, threads=torch.get_num_threads(), workers=workers)
    return engine, AutoTokenizer.from_pretrained(base)


def model_scores(texts: list[str], adapter_dir: str = str(ADAPTER_DIR),
                 backend: str | None = None, workers: int | None = None) -> list[TokenScores]:
    """Per text: the encoder's token labels and P(disease) (the model route's only costly
    step), on `backend` (None: the configured `diseases.model_backend`), ctranslate2 with
    `workers` windows at once (None: the configured `diseases.ner_workers`)."""
    settings = load_settings().diseases
    backend = backend or settings.model_backend
    if backend == "torch":
        model, tokenizer = load_ner(adapter_dir)
        return predict_tokens(model, tokenizer, texts, autocast=native_bf16())
    if backend == "ctranslate2":
        engine, tokenizer = load_ct2_ner(adapter_dir, None, workers or settings.ner_workers)
        wins = sorted_windows(tokenizer, texts)
        return combine(wins, engine.window_probs(wins), len(texts))
    raise ValueError(f"unknown NER backend {backend!r}; choose from {BACKENDS}")


def spans_from_scores(text: str, scores: TokenScores, vocab: Vocabulary) -> list[Span]:
    """Decoded spans, each normalised to a MEDIC concept (else dropped) and scored by its
    mean P(disease)."""
    found = []
    for s, e in decode(text, scores.offsets, scores.labels):
        cid = normalise(vocab, text[s:e])
        if cid:
            found.append(Span(s, e, cid, "model", score=scores.support(s, e)))
    return found

