"""Dev documents and their disease candidates, with the encoder's token scores cached on disk.

The NER encoder is the only costly step of the disease routes; its scores depend only on
the adapter weights, the engine that runs it and the text, so they are kept under
outputs/diseases/ (keyed by the adapter's sha256 and the engine: torch and its float type, or
ctranslate2 and its version) and the rule sweep, the audit and the evaluations reuse them.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

from core.settings import PROJECT_ROOT, load_settings
from tools.diseases import Candidates, find_candidates, joined_text
from tools.diseases.corpus import GoldDoc, read_pubtator
from tools.diseases.model import ADAPTER_DIR
from tools.diseases.ner import TokenScores
from tools.preprocess import preprocess

CORPORA = {
    "ncbi_dev": "ncbi_disease/NCBIdevelopset_corpus.txt",
    "bc5cdr_dev": "bc5cdr/CDR_DevelopmentSet.PubTator.txt",
}
CACHE_DIR = PROJECT_ROOT / "outputs" / "diseases"


def read_corpus(corpus: str, limit: int | None = None) -> list[GoldDoc]:
    return read_pubtator(load_settings().data_path() / CORPORA[corpus])[:limit]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def engine_tag(backend: str) -> str:
    """What, besides the adapter, the scores depend on: the engine and its arithmetic."""
    if backend == "ctranslate2":
        import ctranslate2

        from tools.diseases.ct2_ner import QUANTIZATION

        return f"ctranslate2-{ctranslate2.__version__}-{QUANTIZATION}"
    from tools.compute import compute_dtype

    return f"torch-{str(compute_dtype()).removeprefix('torch.')}"


def token_scores(texts: list[str], adapter_dir: Path = ADAPTER_DIR,
                 backend: str | None = None) -> list[TokenScores]:
    """The encoder's scores per text, computed once per adapter, engine and text (`backend`
    None: the configured one)."""
    from tools.diseases.model import model_scores

    backend = backend or load_settings().diseases.model_backend
    weights = _digest((Path(adapter_dir) / "adapter_model.safetensors").read_bytes())[:16]
    path = CACHE_DIR / f"token-scores-{weights}-{engine_tag(backend)}.pkl"
    cache: dict[str, TokenScores] = {}
    if path.exists():
        with path.open("rb") as fh:
            cache = pickle.load(fh)
    keys = [_digest(t.encode()) for t in texts]
    missing = [i for i, k in enumerate(keys) if k not in cache]
    if missing:
        fresh = model_scores([texts[i] for i in missing], str(adapter_dir), backend)
        cache.update({keys[i]: s for i, s in zip(missing, fresh, strict=True)})
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.with_suffix(".tmp").open("wb") as fh:
            pickle.dump(cache, fh, protocol=pickle.HIGHEST_PROTOCOL)
        path.with_suffix(".tmp").replace(path)
    return [cache[k] for k in keys]


def candidates(docs: list[GoldDoc], adapter_dir: Path = ADAPTER_DIR,
               backend: str | None = None) -> list[Candidates]:
    """Dictionary and model candidates per document (model scores from the cache)."""
    pre = [preprocess(d.title, d.abstract) for d in docs]
    scores = token_scores([joined_text(p) for p in pre], adapter_dir, backend)
    return find_candidates(pre, ("dictionary", "model"), token_scores=scores)
