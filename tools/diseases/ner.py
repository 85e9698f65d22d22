"""BIO token labels for the encoder: windows with offsets, labelling, decoding to char spans.

Shared by the trainer (finetune/train_ner.py) and inference (tools/diseases/model.py), so
training and prediction cut texts into identical windows.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

LABELS = ("O", "B-Disease", "I-Disease")
MAX_LENGTH = 512
STRIDE = 64


@dataclass
class Window:
    doc: int  # index of the text in the batch
    input_ids: list[int]
    offsets: list[tuple[int, int]]  # char span per token; (0, 0) for special tokens


def windows(tokenizer, texts: list[str]) -> list[Window]:
    """Overlapping windows of at most MAX_LENGTH tokens over each text."""
    if not texts:  # the fast tokenizer fails on an empty batch
        return []
    enc = tokenizer(
        texts, truncation=True, max_length=MAX_LENGTH, stride=STRIDE,
        return_overflowing_tokens=True, return_offsets_mapping=True,
    )
    return [
        Window(doc, ids, [tuple(o) for o in offs])
        for doc, ids, offs in zip(
            enc["overflow_to_sample_mapping"], enc["input_ids"], enc["offset_mapping"], strict=True
        )
    ]


def bio_labels(window: Window, spans: list[tuple[int, int]]) -> list[int]:
    """0/1/2 (O/B/I) per token; -100 for special tokens (ignored by the loss)."""
    labels = []
    for s, e in window.offsets:
        if s == e:
            labels.append(-100)
            continue
        inside = next(((gs, ge) for gs, ge in spans if s < ge and gs < e), None)
        if inside is None:
            labels.append(0)
        else:
            labels.append(1 if s <= inside[0] else 2)
    return labels


def _word_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and text[start - 1].isalnum() and text[start].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum() and text[end - 1].isalnum():
        end += 1
    return start, end


# words a mention never starts or ends with ("haemopericardium and", "of galactosemia")
_EDGE_WORDS = re.compile(r"^(?:and|or|and/or|of|the|a|an|in|with|to|by|for)$", re.I)
_EDGE_PUNCT = " \t\n,;:./"


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """A decoded span without edge spacing, punctuation or function words (a tagger's
    near-misses that the corpora never annotate)."""
    while start < end:
        before = (start, end)
        while start < end and text[start] in _EDGE_PUNCT:
            start += 1
        while end > start and text[end - 1] in _EDGE_PUNCT:
            end -= 1
        words = text[start:end].split()
        if words and _EDGE_WORDS.match(words[0]):
            start = text.index(words[0], start) + len(words[0])
        elif words and _EDGE_WORDS.match(words[-1]):
            end = text.rindex(words[-1], start, end)
        if (start, end) == before:
            break
    return start, end


def decode(text: str, offsets: list[tuple[int, int]], labels: list[int]) -> list[tuple[int, int]]:
    """Char spans from token labels; "I" after "O" opens a span; spans snap to whole words."""
    spans: list[list[int]] = []
    prev = 0
    for (s, e), lab in zip(offsets, labels, strict=True):
        if s == e:
            continue
        if lab == 1 or (lab == 2 and prev == 0):
            spans.append([s, e])
        elif lab == 2:
            spans[-1][1] = e
        prev = lab
    out: list[tuple[int, int]] = []
    for s, e in spans:
        s, e = _trim(text, *_word_bounds(text, s, e))
        if s >= e:
            continue
        if out and s < out[-1][1]:
            out[-1] = (out[-1][0], max(e, out[-1][1]))
        else:
            out.append((s, e))
    return out


def collate(items: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in items)
    ids = torch.full((len(items), width), pad_id)
    labels = torch.full((len(items), width), -100)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for i, (x, y) in enumerate(items):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@dataclass
class TokenScores:
    """One text's tokens (char offsets, sorted), argmax labels and P(disease) = 1 - P(O)."""

    offsets: list[tuple[int, int]]
    labels: list[int]
    p_disease: list[float]

    @cached_property
    def _starts(self) -> list[int]:
        return [s for s, _ in self.offsets]

    def support(self, start: int, end: int) -> float:
        """Mean P(disease) over the tokens inside [start, end): how much the model backs a
        span another route found (0.0 where it has no token there). Offsets are sorted, so
        a bisection finds the first token (the rule sweep asks ~10^6 times)."""
        total, n = 0.0, 0
        i = bisect_left(self._starts, start)
        while i < len(self.offsets) and self.offsets[i][0] < end:
            if self.offsets[i][1] <= end:
                total += self.p_disease[i]
                n += 1
            i += 1
        return total / n if n else 0.0


# windows per forward call: padding a batch to its longest window costs more than the batch
# saves here (NCBI dev, 2 cores: batch 16 ran 4.9 abstracts/s, batch 1 10.0, interleaved)
BATCH_SIZE = 1


def torch_window_probs(model, pad_id: int, wins: list[Window], batch_size: int = BATCH_SIZE,
                       autocast: bool = False) -> list[np.ndarray]:
    """(tokens, labels) softmax per window from a torch token classifier."""
    out: list[np.ndarray] = []
    model.eval()
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
        for i in range(0, len(wins), batch_size):
            chunk = wins[i : i + batch_size]
            batch = collate([(w.input_ids, []) for w in chunk], pad_id)
            probs = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits.float().softmax(-1).numpy()
            out += [probs[j, : len(w.input_ids)] for j, w in enumerate(chunk)]
    return out


def combine(wins: list[Window], probs: list[np.ndarray], n_texts: int) -> list[TokenScores]:
    """Token scores per text from per-window label probabilities; a token in two windows
    takes its more central window's."""
    # per text: token offset -> (distance to the window edge, label, P(disease))
    best: list[dict[tuple[int, int], tuple[int, int, float]]] = [{} for _ in range(n_texts)]
    for w, pw in zip(wins, probs, strict=True):
        n = len(w.input_ids)
        labels = pw.argmax(-1).tolist()
        p_disease = (1.0 - pw[:, 0]).tolist()
        for t, off in enumerate(w.offsets):
            if off[0] == off[1]:
                continue
            edge = min(t, n - 1 - t)
            if off not in best[w.doc] or best[w.doc][off][0] < edge:
                best[w.doc][off] = (edge, labels[t], p_disease[t])
    out = []
    for toks in best:
        offs = sorted(toks)
        out.append(TokenScores(offs, [toks[o][1] for o in offs], [toks[o][2] for o in offs]))
    return out


def sorted_windows(tokenizer, texts: list[str]) -> list[Window]:
    """The texts' windows, shortest first (a batch then pads little)."""
    return sorted(windows(tokenizer, texts), key=lambda w: len(w.input_ids))


def predict_tokens(model, tokenizer, texts: list[str], batch_size: int = BATCH_SIZE,
                   autocast: bool = False) -> list[TokenScores]:
    """Token scores per text from a torch token classifier."""
    wins = sorted_windows(tokenizer, texts)
    probs = torch_window_probs(model, tokenizer.pad_token_id, wins, batch_size, autocast)
    return combine(wins, probs, len(texts))


def predict_spans(model, tokenizer, texts: list[str], batch_size: int = BATCH_SIZE,
                  autocast: bool = False) -> list[list[tuple[int, int]]]:
    """Char spans per text (argmax labels, decoded)."""
    return [
        decode(text, ts.offsets, ts.labels)
        for text, ts in zip(
            texts, predict_tokens(model, tokenizer, texts, batch_size, autocast), strict=True
        )
    ]


def merged_ner(adapter_dir: str, base_dir: str | None = None):
    """(model, tokenizer): the base encoder with the LoRA adapter merged in (a fresh copy;
    tools.diseases.model.load_ner keeps one per process)."""
    from peft import PeftModel
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from tools.weights import prepare

    if not (Path(adapter_dir) / "adapter_config.json").exists():
        raise FileNotFoundError(
            f"NER adapter not found in {adapter_dir}; run `python -m finetune.train_ner`"
        )
    base = base_dir or str(prepare("minilm"))
    model = AutoModelForTokenClassification.from_pretrained(
        base, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={lab: i for i, lab in enumerate(LABELS)},
    )
    model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    model.eval()
    return model, AutoTokenizer.from_pretrained(base)
