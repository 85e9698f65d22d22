"""Make the fixed, stratified train/val/test split (70/10/20) and commit it as ID lists.

Near-duplicate pairs named in the data's PROVENANCE.md are kept in one split so the
test set never sees a paper the model trained on.

    python -m finetune.split [--seed 13]
"""

from __future__ import annotations

import argparse
import random

from finetune.data import SPLIT_DIR, load_corpus

# same paper under two PMIDs (PROVENANCE.md): each group moves as one unit
NEAR_DUPLICATES = [("31165234", "31309284"), ("29070606", "29627788")]
FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}


def make_split(seed: int = 13) -> dict[str, list[str]]:
    rows = load_corpus()
    label = {r.abstract_id: r.label for r in rows}
    grouped = {i for pair in NEAR_DUPLICATES for i in pair}
    splits: dict[str, list[str]] = {name: [] for name in FRACTIONS}
    rng = random.Random(seed)
    for cls in ("Cancer", "Non-Cancer"):
        units = [[i] for i in sorted(label) if label[i] == cls and i not in grouped]
        units += [list(p) for p in NEAR_DUPLICATES if label.get(p[0]) == cls]
        rng.shuffle(units)
        total = sum(len(u) for u in units)
        targets = {name: round(frac * total) for name, frac in FRACTIONS.items()}
        for unit in units:
            # fill the split furthest below its target, largest fraction first on ties
            name = max(FRACTIONS, key=lambda n: (
                targets[n] - sum(label[i] == cls for i in splits[n]), FRACTIONS[n]))
            splits[name].extend(unit)
    return {name: sorted(ids) for name, ids in splits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    SPLIT_DIR.mkdir(exist_ok=True)
    for name, ids in make_split(args.seed).items():
        (SPLIT_DIR / f"{name}.txt").write_text("\n".join(ids) + "\n")
        print(f"{name}: {len(ids)} abstracts")


if __name__ == "__main__":
    main()
