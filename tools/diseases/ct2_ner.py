"""CTranslate2 int8 engine for the NER encoder: the torch model's token labels, cheaper arithmetic.

The LoRA adapter is merged into all-MiniLM-L6-v2 and the BERT encoder converted once into
the cache (`~/.cache/oncograph/ct2/ner-minilm-<key>`), keyed by the base weights, the
adapter weights, the quantization and the ctranslate2 version, so a retrained adapter never
reads a stale conversion. `ctranslate2.Encoder` returns the last hidden state; the
token-classification head (384 x 3) is saved beside it and applied in numpy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tools.diseases.ner import Window, merged_ner

FORMAT = "bert-encoder+head-v1"  # bump when what the conversion writes changes
QUANTIZATION = "int8"
_META = "oncograph.json"
_HEAD = "head.npz"
_CONVERTING = threading.Lock()


def conversion_key(adapter_dir: Path, base_dir: Path, quantization: str = QUANTIZATION) -> dict:
    """Everything the converted weights depend on; its hash names the cache folder."""
    import ctranslate2

    from tools.weights import sha256_file

    base = sorted(Path(base_dir).glob("*.safetensors")) + sorted(Path(base_dir).glob("*.bin"))
    if not base:
        raise FileNotFoundError(f"no weights in {base_dir}")
    adapter = Path(adapter_dir) / "adapter_model.safetensors"
    if not adapter.exists():
        raise FileNotFoundError(
            f"NER adapter not found in {adapter_dir}; run `python -m finetune.train_ner`")
    return {
        "format": FORMAT,
        "base": {p.name: sha256_file(p) for p in base},
        "adapter_sha256": sha256_file(adapter),
        "quantization": quantization,
        "ctranslate2": ctranslate2.__version__,
    }


def cache_folder(key: dict) -> Path:
    from tools.weights import cache_dir

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "ct2" / f"ner-minilm-{digest}"


def convert(model, tokenizer, out: Path, quantization: str = QUANTIZATION,
            key: dict | None = None) -> Path:
    """Write a (merged) BertForTokenClassification as a CTranslate2 encoder plus its head
    (and `key`, the conversion's key) into a private folder, then move it into place whole.

    The converter takes the torch modules apart as it goes: `model` is unusable afterwards.
    """
    from ctranslate2.converters.converter import Converter
    from ctranslate2.converters.transformers import BertLoader
    from transformers.models.bert.modeling_bert import BertPooler

    head = {"weight": model.classifier.weight.detach().float().numpy().copy(),
            "bias": model.classifier.bias.detach().float().numpy().copy()}
    bert = model.bert
    # transformers 5 BERT has absolute positions only and a config built in code no longer
    # names them; the converter asserts the name
    if getattr(bert.config, "position_embedding_type", "absolute") != "absolute":
        raise ValueError("ctranslate2 converts BERT with absolute position embeddings only")
    bert.config.position_embedding_type = "absolute"
    if bert.pooler is None:  # the converter writes a pooler; the tagger never reads its output
        bert.pooler = BertPooler(bert.config)

    class _InMemory(Converter):
        def _load(self):
            return BertLoader()(bert, tokenizer)

    partial = out.with_name(f"{out.name}.partial-{os.getpid()}")  # one per process
    _InMemory().convert(str(partial), quantization=quantization, force=True)
    np.savez(partial / _HEAD, **head)
    if key is not None:
        (partial / _META).write_text(json.dumps(key, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    try:
        partial.replace(out)
    except OSError:  # another process moved its conversion of the same key in first
        shutil.rmtree(partial, ignore_errors=True)
    return out


def converted_model(adapter_dir: Path, base_dir: Path, quantization: str = QUANTIZATION) -> Path:
    """The cached conversion for this base + adapter, made on first use (~3 s)."""
    key = conversion_key(adapter_dir, base_dir, quantization)
    folder = cache_folder(key)
    with _CONVERTING:  # concurrent first calls (graph workers) convert once
        if (folder / _META).exists() and json.loads((folder / _META).read_text()) == key:
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        model, tokenizer = merged_ner(str(adapter_dir), str(base_dir))  # a copy to consume
        return convert(model, tokenizer, folder, quantization, key)


class Ct2TokenClassifier:
    """Label probabilities per window from a CTranslate2 conversion (`convert`).

    `workers` windows are computed at once, each on `threads // workers` intra-op threads
    (ctranslate2 `inter_threads` replicas fed from a small thread pool; the encoder releases
    the GIL): a 300-token window's matrices are too small for two threads to share well.
    """

    def __init__(self, folder: Path, compute_type: str = QUANTIZATION, threads: int = 0,
                 workers: int = 1):
        import ctranslate2
        import torch

        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        threads = threads or os.cpu_count() or 1
        self.folder, self.workers = Path(folder), workers
        torch_threads = torch.get_num_threads()
        self.encoder = ctranslate2.Encoder(str(folder), device="cpu", compute_type=compute_type,
                                           inter_threads=workers,
                                           intra_threads=max(1, threads // workers))
        # ctranslate2 sets the calling thread's OpenMP thread count to intra_threads, and
        # torch models run on that thread's count: a classifier would drop to one thread
        torch.set_num_threads(torch_threads)
        head = np.load(Path(folder) / _HEAD)
        self.weight, self.bias = head["weight"], head["bias"]
        self._pool = ThreadPoolExecutor(workers, "ner-ct2") if workers > 1 else None

    def _forward(self, chunk: list[Window]) -> list[np.ndarray]:
        hidden = np.asarray(self.encoder.forward_batch([w.input_ids for w in chunk])
                            .last_hidden_state, dtype=np.float32)
        out = []
        for j, w in enumerate(chunk):
            logits = hidden[j, : len(w.input_ids)] @ self.weight.T + self.bias
            logits -= logits.max(-1, keepdims=True)
            e = np.exp(logits)
            out.append(e / e.sum(-1, keepdims=True))
        return out

    def window_probs(self, wins: list[Window], batch_size: int = 1) -> list[np.ndarray]:
        """(tokens, labels) softmax per window, in the order of `wins`, as
        `ner.torch_window_probs` gives."""
        chunks = [wins[i : i + batch_size] for i in range(0, len(wins), batch_size)]
        done = self._pool.map(self._forward, chunks) if self._pool else map(self._forward, chunks)
        return [p for probs in done for p in probs]
