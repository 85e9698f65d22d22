"""Audit the disease route's dev errors: which kind of mistake each one is.

    python -m eval.disease_audit [--examples 6] [--limit N]

Runs the default route (dictionary + model, the merge rule of configs/default.yaml; the
encoder's scores come from the eval cache) over NCBI Disease dev and BC5CDR dev and sorts
every error by fixed rules (`classify`, first rule that applies):

- wrong concept: the span is exact but its concept is not among the gold ids;
- abbreviation: a short form ("SJS", "TD") is involved, on either side;
- composite: the gold mention coordinates diseases ("breast and ovarian cancer",
  type CompositeMention or several ids);
- boundary: a prediction overlaps the gold mention with other bounds;
- missed synonym: nothing overlaps the gold mention and the vocabulary does not know its
  string (exact or word-order key);
- missed, known name: nothing overlaps it although the vocabulary knows the string (the
  stop-list, the model's veto or the merge dropped it);
- spurious span: a prediction overlaps no gold mention.

One error per unmatched gold mention (with the predictions overlapping it) and one per
prediction overlapping none. The configured rule was chosen on these dev documents, so the
errors are in-sample for the rule (rules.md gives the cross-validated figure).
Writes reports/diseases/audit.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from core.settings import PROJECT_ROOT
from eval.disease_data import CORPORA, candidates, read_corpus
from eval.diseases import gold_ids, in_gold_offsets
from tools.diseases import configured_rule, resolve
from tools.diseases.lexicon import load_vocabulary

CLASSES = ("wrong concept", "abbreviation", "composite", "boundary", "missed synonym",
           "missed, known name", "spurious span")
_COORDINATION = re.compile(r"\b(?:and|or|nor)\b|/|,", re.I)


@dataclass(frozen=True)
class GoldSpan:
    start: int
    end: int
    kind: str = "Disease"
    ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PredSpan:
    start: int
    end: int
    concept: str


@dataclass(frozen=True)
class AuditError:
    kind: str  # one of CLASSES
    gold: str | None  # gold mention text
    pred: str | None  # predicted text(s), " | "-joined
    start: int  # into the document text, of the gold mention (else the prediction)
    end: int
    gold_ids: tuple[str, ...] = ()
    pred_concept: str | None = None


def is_short_form(surface: str) -> bool:
    """"SJS", "G6PD", "CPIs": one token, at most 8 characters, two capitals or more."""
    s = surface.strip()
    return (" " not in s and 2 <= len(s) <= 8 and sum(c.isupper() for c in s) >= 2
            and not s.isdigit())


def _composite(text: str, gold: GoldSpan) -> bool:
    return (gold.kind == "CompositeMention" or len(gold.ids) > 1
            or _COORDINATION.search(text[gold.start:gold.end]) is not None)


def classify(text: str, gold: list[GoldSpan], pred: list[PredSpan],
             known: Callable[[str], bool]) -> list[AuditError]:
    """Every error of one document, each in exactly one class (see the module doc)."""
    by_span = {(g.start, g.end): g for g in gold}
    exact = {(p.start, p.end) for p in pred} & set(by_span)
    errors = [
        AuditError("wrong concept", text[p.start:p.end], text[p.start:p.end], p.start, p.end,
                   tuple(sorted(by_span[(p.start, p.end)].ids)), p.concept)
        for p in pred if (p.start, p.end) in exact and by_span[(p.start, p.end)].ids
        and p.concept not in by_span[(p.start, p.end)].ids
    ]
    open_gold = [g for g in gold if (g.start, g.end) not in exact]
    open_pred = [p for p in pred if (p.start, p.end) not in exact]
    used: set[PredSpan] = set()
    for g in open_gold:
        over = [p for p in open_pred if p.start < g.end and g.start < p.end]
        used.update(over)
        surface = text[g.start:g.end]
        pred_text = " | ".join(text[p.start:p.end] for p in over) or None
        if is_short_form(surface) or any(is_short_form(text[p.start:p.end]) for p in over):
            kind = "abbreviation"
        elif _composite(text, g):
            kind = "composite"
        elif over:
            kind = "boundary"
        else:
            kind = "missed, known name" if known(surface) else "missed synonym"
        errors.append(AuditError(kind, surface, pred_text, g.start, g.end, tuple(sorted(g.ids)),
                                 over[0].concept if over else None))
    for p in open_pred:
        if p in used:
            continue
        surface = text[p.start:p.end]
        overlaps_gold = any(p.start < g.end and g.start < p.end for g in gold)
        kind = ("abbreviation" if is_short_form(surface)
                else "boundary" if overlaps_gold else "spurious span")
        errors.append(AuditError(kind, None, surface, p.start, p.end, (), p.concept))
    return errors


def _context(text: str, start: int, end: int, width: int = 50) -> str:
    left = text[max(0, start - width):start].replace("\n", " ")
    right = text[end:end + width].replace("\n", " ")
    return f"…{left}[[{text[start:end]}]]{right}…"


def audit(limit: int | None = None, examples: int = 6) -> dict:
    vocab = load_vocabulary()
    rule = configured_rule()
    report: dict = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "limit": limit, "corpora": {}}
    for corpus in CORPORA:
        docs = read_corpus(corpus, limit)
        preds = in_gold_offsets(docs, [resolve(c, rule) for c in candidates(docs)])
        counts: Counter[str] = Counter()
        shown: dict[str, list[dict]] = {k: [] for k in CLASSES}
        n_gold = sum(len(d.mentions) for d in docs)
        for doc, pred in zip(docs, preds, strict=True):
            gold = [GoldSpan(m.start, m.end, m.kind, frozenset(gold_ids(vocab, m.concept)))
                    for m in doc.mentions]
            for err in classify(doc.text, gold, [PredSpan(*p[:3]) for p in pred],
                                lambda s: vocab.lookup(s) is not None):
                counts[err.kind] += 1
                if len(shown[err.kind]) < examples:
                    shown[err.kind].append({**asdict(err), "pmid": doc.pmid,
                                            "context": _context(doc.text, err.start, err.end),
                                            "gold_names": [vocab.concepts[i].name
                                                           for i in err.gold_ids
                                                           if i in vocab.concepts],
                                            "pred_name": (vocab.concepts[err.pred_concept].name
                                                          if err.pred_concept in vocab.concepts
                                                          else None)})
        total = sum(counts.values())
        report["corpora"][corpus] = {
            "docs": len(docs), "gold_mentions": n_gold, "errors": total,
            "counts": {k: counts[k] for k in CLASSES},
            "share": {k: round(counts[k] / total, 3) if total else 0.0 for k in CLASSES},
            "examples": shown,
        }
        print(f"{corpus}: {total} errors " + ", ".join(f"{k} {counts[k]}" for k in CLASSES),
              flush=True)
    return report


def _markdown(report: dict) -> str:
    corpora = list(report["corpora"])
    lines = [
        "# Disease route: error audit (NCBI Disease dev, BC5CDR dev)",
        "",
        f"Generated by `python -m eval.disease_audit` on {report['when']}; default route "
        "(dictionary + model) under the merge rule of configs/default.yaml. Each error is one "
        "unmatched gold mention (with the predictions overlapping it) or one prediction "
        "overlapping no gold mention; fixed rules sort it (first that applies, see "
        "`eval/disease_audit.py`). `wrong concept` counts exact spans with a concept outside "
        "the gold ids (a normalisation error, not a span error).",
        "",
        "| class | " + " | ".join(corpora) + " |",
        "|---|" + "---|" * len(corpora),
        *(f"| {k} | " + " | ".join(
            f"{report['corpora'][c]['counts'][k]} ({report['corpora'][c]['share'][k]:.0%})"
            for c in corpora) + " |" for k in CLASSES),
        "| **all errors** | " + " | ".join(
            f"{report['corpora'][c]['errors']} "
            f"(gold mentions {report['corpora'][c]['gold_mentions']})"
            for c in corpora) + " |",
        "",
    ]
    for c in corpora:
        lines += [f"## {c}: examples", ""]
        for k in CLASSES:
            ex = report["corpora"][c]["examples"][k]
            if not ex:
                continue
            lines.append(f"**{k}**")
            lines.append("")
            for e in ex:
                what = f"gold `{e['gold']}`" if e["gold"] else "no gold"
                if e["pred"]:
                    what += f", predicted `{e['pred']}`"
                if k == "wrong concept":
                    what += f" as {e['pred_name']} (gold: {', '.join(e['gold_names'])})"
                lines.append(f"- {e['pmid']}: {what} — {e['context']}")
            lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="first N docs per corpus (smoke runs)")
    ap.add_argument("--examples", type=int, default=6, help="examples kept per class and corpus")
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "reports" / "diseases")
    args = ap.parse_args(argv)
    report = audit(args.limit, args.examples)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "audit.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "audit.md").write_text(_markdown(report))
    print(f"wrote {args.out}/audit.{{json,md}}")


if __name__ == "__main__":
    main()
