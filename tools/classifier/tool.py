"""The classifier as a LangChain tool: a batch of texts in, label probabilities out.

It works on its own inside any agent (`classify_abstracts.invoke({"texts": [...]})`);
the graph's classifier node calls it too. Calls from concurrent graph runs are merged
into batched forward passes by a per-model MicroBatcher.
"""

from __future__ import annotations

import threading
from functools import cache

from langchain_core.tools import tool
from pydantic import BaseModel, Field

from core.settings import load_model_config, load_settings
from tools.classifier.batching import MicroBatcher

_loading = threading.Lock()  # concurrent first calls must not load the model N times


@cache
def _batcher(model: str) -> MicroBatcher:
    from tools.classifier.registry import get_classifier

    classifier = get_classifier(model)
    return MicroBatcher(classifier.predict_proba, batch_size=load_model_config(model).batch_size)


def batcher_for(model: str) -> MicroBatcher:
    """One batcher (and one loaded model) per model per process, whichever thread asks first."""
    with _loading:
        return _batcher(model)


def clear_batchers() -> None:
    """Forget the batchers (and models) this process loaded, e.g. after swapping a registry."""
    with _loading:
        _batcher.cache_clear()


def as_scores(p_cancer: float) -> dict[str, float]:
    return {"Cancer": round(p_cancer, 6), "Non-Cancer": round(1.0 - p_cancer, 6)}


class ClassifyInput(BaseModel):
    texts: list[str] = Field(description="Title and abstract of each paper, one string per paper")
    model: str | None = Field(
        None, description="Classifier name under configs/models/; default: the configured one")
    prompt: str = Field("default", description="Prompt variant: 'default' or 'definition'")


@tool("classify_abstracts", args_schema=ClassifyInput)
def classify_abstracts(
    texts: list[str], model: str | None = None, prompt: str = "default"
) -> list[dict[str, float]]:
    """Classify PubMed abstracts as Cancer or Non-Cancer (any neoplasm counts as cancer).

    Returns one {"Cancer": p, "Non-Cancer": 1 - p} per text, in input order.
    """
    probs = batcher_for(model or load_settings().classifier.model).predict(texts, prompt)
    return [as_scores(float(p)) for p in probs]
