"""Audit the default classifier's test-split errors against evidence in the text itself.

    python -m eval.error_audit [--model qwen2.5-1.5b]

Reads cached predictions only (eval.compare's predictions/, version-checked against the
adapters; calibrated as compare reports them) and runs no classifier. For every test
abstract it measures what the text offers: the cancer keywords
(tools.classifier.classical.KEYWORD_PATTERN) and the cancer concepts the dictionary disease
route finds, and whether any of them survives PromptEncoder.clip, the clipping (head, or
head + tail) that turns the text into the classifier's input. Fixed rules (RULES) then sort
each error into a label conflict, evidence cut by the clipping or a plain model error, so a
reader can tell how much of the remaining error any classifier faithful to the text would
share. Writes
reports/classification/audit.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from bisect import bisect_right
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.metrics import THRESHOLD
from core.schema import DiseaseMention
from core.settings import ConfigError, available_models, load_model_config, load_settings
from eval.compare import REPORT_DIR, predict
from finetune.data import load_corpus, read_split
from tools.classifier.classical import KEYWORD_PATTERN
from tools.classifier.label_words import PromptEncoder
from tools.diseases import SEPARATOR, extract_batch, joined_text
from tools.preprocess import Preprocessed, model_text, preprocess

SPLIT = "test"
# key -> (label, rule); the first three are checked in this order, the last is the rest
RULES = {
    "no_evidence": (
        "Cancer label, no neoplasm keyword or concept anywhere",
        "gold Cancer; no keyword match in the title or abstract and no cancer concept "
        "(dictionary route, is_cancer) in either"),
    "cut_by_clipping": (
        "Cancer label, cancer evidence only in the part of the text the classifier cuts",
        "gold Cancer; a keyword or cancer concept occurs in the title or abstract, but the "
        "input the classifier sees (the model text after PromptEncoder.clip) holds no keyword "
        "match and none of the cancer mentions' surface text"),
    "title_concept": (
        "Non-Cancer label, a neoplasm concept in the title",
        "gold Non-Cancer; the dictionary route finds a cancer concept in the title"),
    "model_error": (
        "model error (evidence in the classifier's input)",
        "a misclassified abstract that no rule above matches"),
}
LABEL_CONFLICTS = ("no_evidence", "title_concept")  # the gold label disagrees with the text


@dataclass(frozen=True)
class Evidence:
    """What one abstract's text offers a classifier, measured without any classifier."""

    keyword_hits: int  # keyword matches in the title and abstract
    first_keyword_token: int | None  # token position of the first match in the model text
    cancer_concepts: list[str]  # readable names, first mention first
    title_concepts: list[str]  # those of them that occur in the title
    first_concept_token: int | None  # None also when no cancer concept is in the model text
    tokens: int  # length of the model text in tokens
    budget: int  # PromptEncoder.budget: tokens over which the classifier clips the model text
    # a keyword match or a cancer mention's surface text in PromptEncoder.clip(model text),
    # the text the classifier actually reads
    evidence_in_input: bool

    @property
    def concept_in_title(self) -> bool:
        return bool(self.title_concepts)


def categorise(gold: bool, ev: Evidence) -> str | None:
    """The first rule of RULES that matches (gold True = Cancer); None when none does."""
    if gold and ev.keyword_hits == 0 and not ev.cancer_concepts:
        return "no_evidence"
    if gold and not ev.evidence_in_input:  # evidence exists (the rule above) but was cut
        return "cut_by_clipping"
    if not gold and ev.concept_in_title:
        return "title_concept"
    return None


def _model_text_span(doc: Preprocessed, mention: DiseaseMention) -> tuple[int, int] | None:
    """Where a mention lies in the classifier's text, which for an abstract with status ok
    is joined_text (title + SEPARATOR + abstract), else the title alone."""
    if mention.field == "title":
        return doc.title.to_clean(mention.start), doc.title.to_clean(mention.end)
    if doc.status != "ok":
        return None
    offset = len(doc.title.text) + len(SEPARATOR)
    return (offset + doc.abstract.to_clean(mention.start),
            offset + doc.abstract.to_clean(mention.end))


def measure(doc: Preprocessed, mentions: list[DiseaseMention], encoder: PromptEncoder) -> Evidence:
    """Evidence of one preprocessed abstract: whether it survives the classifier's clipping
    (PromptEncoder.clip of tools.preprocess.model_text), and keyword and concept positions
    in tokens of the same tokenizer and text, kept as information."""
    text = model_text(doc)
    clipped = encoder.clip(text)
    ends = [end for _, end in encoder.tokenizer(
        text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]]
    first_kw = KEYWORD_PATTERN.search(text)
    cancer = [m for m in mentions if m.is_cancer]
    spans = [span for m in cancer if (span := _model_text_span(doc, m)) is not None]
    starts = [start for start, _ in spans]
    # A mention counts as seen when its surface text (as it reads in the model text, i.e.
    # DiseaseMention.text after preprocessing) occurs in the clipped text: a case-sensitive
    # substring test, so the same words elsewhere in the kept part also count.
    surfaces = {text[start:end] for start, end in spans if end > start}
    in_input = (KEYWORD_PATTERN.search(clipped) is not None
                or any(surface in clipped for surface in surfaces))
    return Evidence(
        keyword_hits=len(KEYWORD_PATTERN.findall(joined_text(doc))),
        first_keyword_token=bisect_right(ends, first_kw.start()) if first_kw else None,
        cancer_concepts=list(dict.fromkeys(m.name for m in cancer)),
        title_concepts=list(dict.fromkeys(m.name for m in cancer if m.field == "title")),
        first_concept_token=bisect_right(ends, min(starts)) if starts else None,
        tokens=len(ends), budget=encoder.budget, evidence_in_input=in_input,
    )


def load_predictions(models: list[str], out: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Calibrated P(Cancer) per model with a current cache, and why any other was left out."""
    probs, skipped = {}, {}
    for model in models:
        try:
            probs[model] = predict(model, "finetuned", SPLIT, out, refresh=False,
                                   cached_only=True)["p"]
        except FileNotFoundError as exc:
            skipped[model] = str(exc)
            print(f"skip {model}: {exc}", file=sys.stderr)
    return probs, skipped


def _model_summary(wrong: np.ndarray, categories: list[str]) -> dict:
    """One model's errors by category; its label-conflict errors bound its accuracy."""
    counts = Counter(c for c, w in zip(categories, wrong, strict=True) if w)
    conflicts = sum(counts[c] for c in LABEL_CONFLICTS)
    n = len(wrong)
    return {
        "accuracy": round(1 - wrong.sum() / n, 4),
        "errors": int(wrong.sum()),
        "categories": {k: counts[k] for k in RULES},
        "upper_bound_accuracy": round((n - conflicts) / n, 4),
    }


def build_report(ids: list[str], titles: list[str], gold: np.ndarray,
                 probs: dict[str, np.ndarray], evidence: list[Evidence], model: str,
                 tail_share: float = 0.0) -> dict:
    """Audit rows (the model's errors) and per-model and split-wide category counts;
    tail_share is the audited classifier's (PromptEncoder.tail_share), for the record."""
    wrong = {m: (p >= THRESHOLD) != gold for m, p in probs.items()}
    n_wrong = sum(w.astype(int) for w in wrong.values())
    matched = [categorise(bool(g), e) for g, e in zip(gold, evidence, strict=True)]
    categories = [c or "model_error" for c in matched]
    rows = [
        {"abstract_id": ids[k], "title": titles[k], "gold": "Cancer" if gold[k] else "Non-Cancer",
         "p_cancer": {m: round(float(p[k]), 3) for m, p in probs.items()},
         "n_wrong": int(n_wrong[k]), "wrong_by_all": bool(n_wrong[k] == len(probs)),
         **asdict(evidence[k]), "concept_in_title": evidence[k].concept_in_title,
         "category": categories[k]}
        for k in np.flatnonzero(wrong[model])
    ]
    in_split = Counter(c for c in matched if c)
    behind = Counter(name for c, e in zip(matched, evidence, strict=True)
                     if c == "title_concept" for name in e.title_concepts)
    return {
        "model": model, "split": SPLIT, "n": len(ids), "threshold": THRESHOLD,
        "budget": evidence[0].budget if evidence else None, "tail_share": tail_share,
        "clipped": sum(e.tokens > e.budget for e in evidence),
        "models": {m: _model_summary(w, categories) for m, w in wrong.items()},
        "split_counts": {k: in_split[k] for k in RULES if k != "model_error"},
        "title_concepts_of_non_cancer": dict(behind.most_common()),
        "rows": rows,
    }


def audit(model: str, out: Path) -> dict:
    """The whole report: cached predictions, test abstracts, their evidence, the rules."""
    from transformers import AutoTokenizer

    from tools.classifier.label_words import resolve_base_path

    cfg = load_model_config(model)
    if cfg.kind != "causal-lm-label-words":
        raise ConfigError(f"{model} is a {cfg.kind}; the clipping audit needs a "
                          "causal-lm-label-words model")
    probs, skipped = load_predictions([model, *(m for m in available_models() if m != model)],
                                      out)
    if model not in probs:
        raise FileNotFoundError(skipped[model])
    corpus = {r.abstract_id: r for r in load_corpus(load_settings())}
    ids = read_split(SPLIT)
    docs = [preprocess(corpus[i].title, corpus[i].abstract) for i in ids]
    # the tokenizer alone: no weights are loaded
    encoder = PromptEncoder(AutoTokenizer.from_pretrained(resolve_base_path(cfg)),
                            cfg.max_length, cfg.tail_share)
    evidence = [measure(d, found, encoder)
                for d, found in zip(docs, extract_batch(docs, ("dictionary",)), strict=True)]
    gold = np.array([corpus[i].label == "Cancer" for i in ids])
    report = build_report(ids, [d.title.text for d in docs], gold, probs, evidence, model,
                          encoder.tail_share)
    versions = {m: load_model_config(m).adapter_version() for m in probs}
    return {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "adapter_versions": versions, "skipped": skipped, **report}


def clipping(budget: int, tail_share: float) -> str:
    """How PromptEncoder.clip cuts a text over `budget` tokens, in words."""
    head, tail = PromptEncoder.kept(budget, tail_share)
    if tail == 0:
        return f"head only: it keeps the first {head} tokens"
    return (f"head + tail: it keeps the first {head} and the last {tail} tokens "
            f'(tail_share {tail_share:g} of the {budget}-token budget), joined by " ... "')


def _row_line(row: dict, models: list[str]) -> str:
    def at(token: int | None) -> str:
        return "-" if token is None else str(token)

    concepts = ", ".join(f"{c} (title)" if c in row["title_concepts"] else c
                         for c in row["cancer_concepts"]) or "-"
    probs = " | ".join(f"{row['p_cancer'][m]:.2f}" for m in models)
    title = row["title"] if len(row["title"]) <= 70 else row["title"][:67] + "..."
    return (f"| {row['abstract_id']} | {title} | {row['gold']} | {probs} | {row['n_wrong']} | "
            f"{row['keyword_hits']} | {at(row['first_keyword_token'])} | "
            f"{at(row['first_concept_token'])} | {row['tokens']} | "
            f"{'yes' if row['evidence_in_input'] else 'no'} | {concepts} | "
            f"{RULES[row['category']][0]} |")


def _markdown(report: dict) -> str:
    models, n, audited = list(report["models"]), report["n"], report["model"]
    rules = "\n".join(f"{i}. **{label}**: {rule}." for i, (label, rule) in
                      enumerate(RULES.values(), 1))
    summary = "\n".join(
        f"| {m} | {s['accuracy']:.3f} | {s['errors']} | "
        + " | ".join(str(s["categories"][k]) for k in RULES)
        + f" | {s['upper_bound_accuracy']:.3f} |" for m, s in report["models"].items())
    split_counts = "\n".join(
        f"| {RULES[k][0]} | {'yes' if k in LABEL_CONFLICTS else 'no'} | {c} |"
        for k, c in report["split_counts"].items())
    rows = "\n".join(_row_line(r, models) for r in report["rows"])
    behind = ", ".join(f"{c} ({k})" for c, k in report["title_concepts_of_non_cancer"].items())
    all_wrong = sum(r["wrong_by_all"] for r in report["rows"])
    skipped = "".join(f" Not audited: {m} ({why.splitlines()[0]})." for m, why in
                      report["skipped"].items())
    versions = ", ".join(f"{m} {v}" for m, v in report["adapter_versions"].items() if v)
    clips = clipping(report["budget"], report["tail_share"])
    return f"""# Classifier error audit ({report['split']} split)

Generated by `python -m eval.error_audit` on {report['when']} from the cached predictions of
`python -m eval.compare` (reports/classification/predictions/; adapter versions {versions});
no classifier ran. Threshold P(Cancer) >= {report['threshold']} on the calibrated
probability, as in comparison.md.{skipped}

Evidence is computed, never judged by hand: keyword = a match of
`tools.classifier.classical.KEYWORD_PATTERN` (literal: "tumor necrosis factor" counts);
cancer concept = a MEDIC concept under MeSH Neoplasms from the dictionary disease route.
Token positions are in the `{audited}` tokenizer over the text the classifier sees
(title, newline, abstract, preprocessed). A text longer than the budget of
{report['budget']} tokens (`PromptEncoder.budget`) is clipped by `PromptEncoder.clip`,
{clips}; {report['clipped']} of the {n} abstracts are longer than the budget. Evidence is
"in the input" when the clipped text holds a keyword match or the surface text of one of
the abstract's cancer mentions (case-sensitive substring).

## Rules

Each abstract gets the first rule that matches:

{rules}

Label conflicts (the gold label disagrees with the text under these rules):
{' and '.join(f'"{RULES[k][0]}"' for k in LABEL_CONFLICTS)}.

## Errors by category

| model | accuracy | errors | {' | '.join(k for k in RULES)} | upper bound |
|---|---|---|{'---|' * len(RULES)}---|
{summary}

Upper bound: the accuracy a model would have if every abstract outside a label-conflict
category were right and its label-conflict errors stayed wrong. It is a bound under the
stated rules, not a measurement. Categories belong to the abstract and are measured with
the `{audited}` tokenizer, budget and clipping: for a model with another input (the keyword
rule and TF-IDF read the whole text) a cut_by_clipping error is not a clipping miss.

Over the whole split ({n} abstracts, whatever any model predicted):

| category | label conflict | abstracts |
|---|---|---|
{split_counts}

A classifier that follows the text would have to "get wrong" the label-conflict
abstracts; the cut_by_clipping ones are out of reach of any model that clips the text
the same way ({clips}). MeSH files hereditary tumour syndromes (neurofibromatosis,
tuberous sclerosis) under Neoplasms, so the title-concept rule also counts abstracts whose
Non-Cancer label follows that convention. The title concepts behind that count (abstracts
each): {behind or "none"}.

## The {audited} errors

{len(report['rows'])} misclassified abstracts, {all_wrong} of them misclassified by every
model listed (a subset by definition). P(Cancer) per model; token positions count from
the start of the classifier's text, before clipping (budget {report['budget']} tokens);
"in input": a keyword or cancer mention survives the clipping.

| id | title | gold | {' | '.join(models)} | models wrong | keywords | first keyword token | \
first concept token | tokens | in input | cancer concepts | category |
|---|---|---|{'---|' * len(models)}---|---|---|---|---|---|---|---|
{rows}

![errors by category per model](audit.png)
"""


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(report["models"])
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(models)), 3.8), dpi=120)
    bottom = np.zeros(len(models))
    for key in RULES:
        counts = np.array([report["models"][m]["categories"][key] for m in models])
        ax.bar(models, counts, bottom=bottom, label=key)
        bottom += counts
    ax.set_ylabel(f"misclassified ({report['split']}, n={report['n']})")
    ax.set_title("Errors by audit category")
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="the audited model (default: configured)")
    ap.add_argument("--out", type=Path, default=REPORT_DIR,
                    help="reads predictions/ under it, writes audit.* there")
    args = ap.parse_args(argv)
    try:
        report = audit(args.model or load_settings().classifier.model, args.out)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    (args.out / "audit.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "audit.md").write_text(_markdown(report))
    _plot(report, args.out / "audit.png")
    summary = report["models"][report["model"]]
    print(f"{report['model']}: {summary['errors']} errors {summary['categories']}; "
          f"upper bound {summary['upper_bound_accuracy']} -> {args.out / 'audit.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
