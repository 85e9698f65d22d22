"""An out-of-domain Cancer / Non-Cancer set from the shared disease corpora's DEV sets.

    python -m eval.ood --predict qwen2.5-1.5b minilm   # score and cache (never test sets)

50 abstracts each of NCBI Disease dev (100) and BC5CDR dev (500), a seeded draw in file
order, are PubMed abstracts the project never trained on: 100 in all, because on the
shared 2-core machine of 2026-12-03 (load average 15-19) the 1.5B scored about 3 abstracts
a minute. An abstract is labelled Cancer when one of its gold disease mentions has
a MEDIC concept under MeSH Neoplasms (C04) that is not a cyst (C04.182), the same rule
`tools.diseases.vocab.is_cancer_tree` applies to extracted mentions. It is a report only:
no threshold or weight is chosen on it. Predictions are cached like the split's
(`eval.compare.predict`, keyed by adapter version and a hash of the texts) as
`<model>__<variant>__ood-dev.csv`, so the 1.5B's ~20 CPU-minutes are paid once.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import Settings, load_settings
from finetune.data import Example
from tools.preprocess import Preprocessed, model_text, preprocess

OOD_NAME = "ood-dev"
CORPORA = {  # never the test sets
    "ncbi_dev": "ncbi_disease/NCBIdevelopset_corpus.txt",
    "bc5cdr_dev": "bc5cdr/CDR_DevelopmentSet.PubTator.txt",
}
PER_CORPUS = 50  # abstracts drawn from each dev set (seeded)
SEED = 13


@dataclass
class OodDoc:
    abstract_id: str  # "<corpus>:<PMID>" (bookkeeping only, never model text)
    corpus: str
    title: str
    abstract: str
    label: int  # 1 = a gold mention is a neoplasm (C04, not C04.182)
    cancer_concepts: list[str] = field(default_factory=list)  # readable names, gold

    def doc(self) -> Preprocessed:
        return preprocess(self.title, self.abstract)


def gold_cancer_concepts(concepts: list[str], vocab) -> list[str]:
    """Readable names of the gold concept ids ("D001943|D009369") that are neoplasms."""
    names = []
    for raw in concepts:
        for cid in raw.split("|"):
            if cid.strip() in {"", "-1"}:
                continue
            concept = vocab.concepts.get(vocab.canonical(cid))
            if concept is not None and concept.is_cancer:
                names.append(concept.readable)
    return sorted(set(names))


def load_ood(settings: Settings | None = None, per_corpus: int = PER_CORPUS) -> list[OodDoc]:
    """`per_corpus` abstracts of each dev set (seeded draw, file order kept); a PMID present
    in both is kept once (NCBI first)."""
    import random

    from tools.diseases.corpus import read_pubtator
    from tools.diseases.lexicon import load_vocabulary

    settings = settings or load_settings()
    data = settings.data_path()
    vocab = load_vocabulary(str(data))
    docs, seen = [], set()
    for corpus, rel in CORPORA.items():
        path = data / rel
        if not path.exists():
            raise FileNotFoundError(f"out-of-domain corpus missing: {path}")
        golds = [g for g in read_pubtator(path) if g.pmid not in seen]
        if len(golds) > per_corpus:
            keep = set(random.Random(SEED).sample(range(len(golds)), per_corpus))
            golds = [g for k, g in enumerate(golds) if k in keep]
        for gold in golds:
            seen.add(gold.pmid)
            names = gold_cancer_concepts([m.concept for m in gold.mentions], vocab)
            docs.append(OodDoc(f"{corpus}:{gold.pmid}", corpus, gold.title, gold.abstract,
                               int(bool(names)), names))
    return docs


def ood_examples(docs: list[OodDoc]) -> list[Example]:
    """The text the graph's first classifier call sees (title + abstract, cleaned)."""
    return [Example(d.abstract_id, model_text(d.doc()), d.label) for d in docs]


def main(argv: list[str] | None = None) -> int:
    from eval.compare import REPORT_DIR, predict

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predict", nargs="+", default=["keyword-rule", "minilm"],
                        help="models whose fine-tuned predictions to cache")
    parser.add_argument("--out", type=Path, default=REPORT_DIR)
    args = parser.parse_args(argv)
    docs = load_ood()
    examples = ood_examples(docs)
    print(f"{len(docs)} abstracts, {sum(d.label for d in docs)} Cancer", file=sys.stderr)
    for model in args.predict:
        got = predict(model, "finetuned", OOD_NAME, args.out, refresh=False, examples=examples)
        print(f"{model}: {got['run'].get('abstracts_per_s')} abstracts/s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
