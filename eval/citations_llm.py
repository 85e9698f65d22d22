"""The citation LLM against the rules: agreement, fallbacks and cost per abstract with citations.

    python -m eval.citations_llm [--model qwen2.5-1.5b] [--limit N] [--chat classifier-base]

Sample: every abstract of the shared corpus and of the BC5CDR / NCBI Disease TRAIN sets in
which `tools.preprocess` finds a citation (the dev sets are left for tuning nothing here).
The chat model is the one a default run uses (`tools.chat_model.chat_model_for`: the
classifier's base when it lends it, else `citations.llm_model` on `chat.backend`), through
the real `analyse_citations` path, greedy, with the configured per-abstract token budget.

With `--chat classifier-base` it loads the classifier on torch with its LoRA adapter
unmerged and chats on its base (adapter off), and in the same process, on the same loaded
weights, also measures what keeping the adapter unmerged costs the classifier (scoring with
the LoRA layers live vs with the adapter off, the cost of merged weights), and checks that
the chat calls leave the classifier's scores unchanged.
Answers are cached per abstract (outputs/citations_llm/), so an interrupted run resumes.
Writes reports/citations/llm.{json,md}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import statistics
import time
from pathlib import Path

import torch
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from core.io import read_folder
from core.settings import PROJECT_ROOT, load_model_config, load_settings
from tools.chat_model import chat_model_for, model_label, shared_chat_model
from tools.citations import (
    ANSWER_BASE_TOKENS,
    ANSWER_TOKENS_PER_CITATION,
    FUNCTIONS,
    HUMAN_PROMPT,
    SYSTEM_PROMPT,
    analyse_citations,
    format_instructions,
)
from tools.diseases.corpus import read_pubtator
from tools.preprocess import Preprocessed, model_text, preprocess

REPORT_DIR = PROJECT_ROOT / "reports" / "citations"
CACHE_DIR = PROJECT_ROOT / "outputs" / "citations_llm"
TRAIN_SETS = {
    "bc5cdr_train": "bc5cdr/CDR_TrainingSet.PubTator.txt",
    "ncbi_train": "ncbi_disease/NCBItrainset_corpus.txt",
}


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def samples(data: Path) -> list[tuple[str, str, Preprocessed]]:
    """(source, id, preprocessed) of every abstract with at least one citation."""
    rows = [("corpus", r.abstract_id, r.title, r.abstract) for r in read_folder(data / "abstracts")]
    for source, path in TRAIN_SETS.items():
        rows += [(source, d.pmid, d.title, d.abstract) for d in read_pubtator(data / path)]
    found = []
    for source, ident, title, abstract in rows:
        doc = preprocess(title, abstract)
        if doc.citations:
            found.append((source, ident, doc))
    return found


class Warnings(logging.Handler):
    """Collects the citation tool's fallback reasons."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def timed_scores(scorer, texts: list[str]) -> tuple[float, list[float]]:
    start = time.perf_counter()
    p = scorer.predict_proba(texts)
    return time.perf_counter() - start, [float(x) for x in p]


def cache_key(model: str, budget_cap: int, doc: Preprocessed) -> str:
    """Changes with the prompt, the budget, the model and the abstract's text."""
    parts = [SYSTEM_PROMPT, HUMAN_PROMPT, format_instructions(2), str(ANSWER_BASE_TOKENS),
             str(ANSWER_TOKENS_PER_CITATION), str(budget_cap), model, doc.title.text,
             "|".join(f"{c.normalised} {c.sentence}" for c in doc.citations)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def run_llm(chat, found, budget_cap: int, limit: int | None, cache: Path,
            max_minutes: float | None = None) -> tuple[list, int]:
    """One row per abstract: rules and LLM analyses, seconds, fallback reason; LLM calls made.
    After `max_minutes` no new call starts (the report then says how many were left)."""
    cached = {}
    if cache.exists():
        cached = {r["key"]: r for r in map(json.loads, cache.read_text().splitlines())}
    handler = Warnings()
    tool_log = logging.getLogger("tools.citations")
    tool_log.setLevel(logging.WARNING)  # its fallback reasons, whatever the root level
    tool_log.addHandler(handler)
    rows, calls = [], 0
    stop_at = None if max_minutes is None else time.monotonic() + 60 * max_minutes
    with cache.open("a") as out:
        for source, ident, doc in found[:limit]:
            key = cache_key(model_label(chat), budget_cap, doc)
            if key in cached:
                rows.append(cached[key])
                continue
            if stop_at is not None and time.monotonic() > stop_at:
                continue
            rules = analyse_citations(doc)
            handler.messages.clear()
            start = time.perf_counter()
            llm = analyse_citations(doc, llm=chat, max_new_tokens=budget_cap)
            seconds = time.perf_counter() - start
            calls += 1
            row = {"key": key, "source": source, "id": ident, "seconds": round(seconds, 2),
                   "n_citations": len(doc.citations), "rules": rules.model_dump(),
                   "llm": llm.model_dump(), "fallback_reason": "; ".join(handler.messages)}
            out.write(json.dumps(row) + "\n")
            out.flush()
            rows.append(row)
            print(f"{source}:{ident} {len(doc.citations)} citations {seconds:.1f}s "
                  f"{llm.analyser}", flush=True)
    tool_log.removeHandler(handler)
    return rows, calls


def agreement(rows: list[dict]) -> dict:
    """Rules vs LLM function labels over the citations of the abstracts the LLM answered."""
    answered = [r for r in rows if r["llm"]["analyser"] != "rules"]
    ref = [c["function"] for r in answered for c in r["rules"]["citations"]]
    got = [c["function"] for r in answered for c in r["llm"]["citations"]]
    per_function = {}
    for f in FUNCTIONS:
        idx = [i for i, x in enumerate(ref) if x == f]
        per_function[f] = {
            "rules": len(idx), "llm": sum(x == f for x in got),
            "llm_agrees": sum(got[i] == f for i in idx),
            "agreement": round(sum(got[i] == f for i in idx) / len(idx), 3) if idx else None,
        }
    facts = ("count", "by_kind", "identifiers")
    same_facts = sum(all(r["llm"][k] == r["rules"][k] for k in facts) for r in answered)
    both = sorted(set(ref) | set(got), key=FUNCTIONS.index)
    return {
        "abstracts_answered": len(answered),
        "citations_compared": len(ref),
        "agreement": round(sum(a == b for a, b in zip(ref, got, strict=True)) / len(ref), 3)
        if ref else None,
        "cohen_kappa": round(float(cohen_kappa_score(ref, got)), 3) if len(set(ref + got)) > 1
        else None,
        "per_function": per_function,
        "confusion": {"labels": both,
                      "matrix": confusion_matrix(ref, got, labels=both).tolist() if ref else []},
        "facts_identical": {"abstracts": same_facts, "of": len(answered), "fields": list(facts)},
    }


def cost(rows: list[dict], adapter: dict) -> dict:
    secs = sorted(r["seconds"] for r in rows)
    if not secs:
        return {}
    per_class = (adapter or {}).get("unmerged_s_per_abstract")
    median = statistics.median(secs)
    return {
        "abstracts": len(secs), "median_s": round(median, 2),
        "mean_s": round(statistics.fmean(secs), 2),
        "p90_s": secs[min(len(secs) - 1, int(0.9 * len(secs)))], "max_s": secs[-1],
        "s_per_citation": round(sum(secs) / sum(r["n_citations"] for r in rows), 2),
        "median_vs_one_classification": round(median / per_class, 1) if per_class else None,
    }


def adapter_cost(scorer, texts: list[str], rounds: int) -> tuple[dict, list[float]]:
    """Seconds per abstract with the LoRA layers live (as a default run scores) vs with the
    adapter off, alternating on the same loaded model. Adapter off runs exactly the shapes
    and FLOPs of merged weights, without merging in place (a bf16 merge and unmerge would
    round the base). Also returns the first adapter-on scores (the restore check's before)."""
    times: dict[str, list[float]] = {"unmerged": [], "adapter_off": []}
    before: list[float] = []
    for _ in range(rounds):
        seconds, p = timed_scores(scorer, texts)
        times["unmerged"].append(seconds / len(texts))
        before = before or p
        with scorer.model.disable_adapter():
            seconds, _ = timed_scores(scorer, texts)
        times["adapter_off"].append(seconds / len(texts))
    return summarise_adapter(times, len(texts), rounds), before


def summarise_adapter(times: dict[str, list[float]], texts: int, rounds: int) -> dict:
    """Best pass of each state (contention only ever adds time) and their ratio."""
    unmerged, merged = min(times["unmerged"]), min(times["adapter_off"])
    return {
        "texts": texts, "rounds": rounds,
        "s_per_abstract": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "unmerged_s_per_abstract": round(unmerged, 3), "merged_s_per_abstract": round(merged, 3),
        "unmerged_over_merged": round(unmerged / merged, 3),
    }


def write_markdown(report: dict, path: Path) -> None:
    a, c, ad, chk = report["agreement"], report["cost"], report["adapter"], report["restore_check"]
    source = report.get("chat_source", "the classifier's base, LoRA adapter off")
    lines = [
        "# Citation analysis: LLM vs rules",
        "",
        f"`make citations-llm` on {report['when']}: chat model `{report['chat_model']}` "
        f"({source}), greedy, "
        "answer budget "
        f"{ANSWER_BASE_TOKENS} + {ANSWER_TOKENS_PER_CITATION} tokens per citation, at most "
        f"{report['max_new_tokens']}; {report['torch_threads']} torch threads on "
        f"{os.cpu_count()} CPUs; load average (1, 5, 15 min) {report['load_before']} before, "
        f"{report['load_after']} after. Seconds are only comparable within this run.",
        "",
        "## Sample",
        "",
        "Abstracts in which the preprocessing finds a citation. There are no gold citation "
        "functions for these texts: agreement with the rules is a consistency figure, not "
        "accuracy.",
        "",
        "| source | abstracts | citations |",
        "|---|---:|---:|",
    ]
    for source, n in report["sample"].items():
        lines.append(f"| {source} | {n['abstracts']} | {n['citations']} |")
    fallback = report["fallbacks"]
    if report["abstracts"] < report["abstracts_with_citations_found"]:
        lines += ["", f"Analysed {report['abstracts']} of the "
                  f"{report['abstracts_with_citations_found']} abstracts with citations "
                  "(the run's time budget, `--max-minutes`, ended first)."]
    lines += [
        "",
        f"LLM answers used: **{a['abstracts_answered']} of {report['abstracts']}** abstracts; "
        f"{fallback['count']} fell back to the rules (reasons below). "
        f"LLM calls made in this run: {report['llm_calls_this_run']} (the rest came from the "
        "answer cache).",
        "",
        "## Agreement with the rules (citations of the abstracts the LLM answered)",
        "",
        f"Overall: **{a['agreement']}** of {a['citations_compared']} citations; Cohen's kappa "
        f"{a['cohen_kappa']}. Count, kinds and identifiers: identical in "
        f"{a['facts_identical']['abstracts']} of {a['facts_identical']['of']} abstracts (by "
        "design the LLM relabels functions and writes the summary; the facts stay the "
        "parser's).",
        "",
        "| function | rules | LLM | LLM agrees on the rules' ones | agreement |",
        "|---|---:|---:|---:|---:|",
    ]
    for f, row in a["per_function"].items():
        lines.append(f"| {f} | {row['rules']} | {row['llm']} | {row['llm_agrees']} | "
                     f"{'-' if row['agreement'] is None else row['agreement']} |")
    labels = a["confusion"]["labels"]
    if labels:
        lines += ["", "Confusion (rows: rules, columns: LLM):", "",
                  "| rules \\ LLM | " + " | ".join(labels) + " |",
                  "|---" * (len(labels) + 1) + "|"]
        for label, row in zip(labels, a["confusion"]["matrix"], strict=True):
            lines.append(f"| {label} | " + " | ".join(str(x) for x in row) + " |")
    lines += [
        "",
        "## Cost",
        "",
        f"Per abstract with citations (n = {c.get('abstracts')}): "
        f"median **{c.get('median_s')} s**, "
        f"mean {c.get('mean_s')} s, p90 {c.get('p90_s')} s, max {c.get('max_s')} s; "
        f"{c.get('s_per_citation')} s per citation."
        + (f" The median is {c['median_vs_one_classification']}x one classification of an "
           "abstract (same run, same weights)." if c.get("median_vs_one_classification") else ""),
        "",
    ]
    if ad:
        lines += [
            f"Keeping the adapter unmerged so the base can serve the chat: classification "
            f"{ad['unmerged_s_per_abstract']} s per abstract with the LoRA layers live vs "
            f"{ad['merged_s_per_abstract']} s with the adapter off, which runs the shapes and "
            f"FLOPs of merged weights (best pass of each; {ad['rounds']} alternating round(s) "
            f"and one more adapter-on pass after the chat calls, on the {ad['texts']} shortest "
            f"abstract(s); all passes {ad['s_per_abstract']}): "
            f"**{ad['unmerged_over_merged']}x**.",
            "",
            f"Adapter restored after the chat calls: max |P(Cancer) after - before| = "
            f"{chk['max_abs_dp']} on {chk['texts']} abstracts, around {chk['llm_calls']} LLM "
            "calls.",
            "",
        ]
    lines += [
        "## Fallbacks",
        "",
    ]
    lines += [f"- {r}" for r in fallback["reasons"]] or ["- none"]
    lines += ["", "## Examples (LLM summaries)", ""]
    lines += [f"- {e['source']}:{e['id']} ({e['n_citations']} citations, {e['functions']}): "
              f"{e['summary']}" for e in report["examples"]]
    path.write_text("\n".join(lines) + "\n")


def classifier_base_run(args: argparse.Namespace, name: str, found: list, cap: int):
    """The chat on the classifier's torch base (adapter unmerged, off for the chat), with the
    adapter's cost and the restore check measured on the same loaded weights."""
    from tools.classifier.label_words import LabelWordClassifier

    cfg = load_model_config(name).model_copy(update={"merge_adapter": False,
                                                     "backend": "torch"})
    scorer = LabelWordClassifier(cfg)
    chat = shared_chat_model(cfg, scorer)
    # the shortest texts: on a busy 2-core machine every classification pass is minutes
    texts = sorted((model_text(doc) for _, _, doc in found), key=len)[: args.adapter_texts]
    adapter, before = adapter_cost(scorer, texts, args.rounds)
    rows, calls = run_llm(chat, found, cap, args.limit,
                          CACHE_DIR / f"{model_label(chat).replace(':', '_')}.jsonl",
                          args.max_minutes)
    seconds, after = timed_scores(scorer, texts)  # one more adapter-on pass for the timing
    passes = adapter["s_per_abstract"]
    adapter = summarise_adapter({"unmerged": [*passes["unmerged"], seconds / len(texts)],
                                 "adapter_off": passes["adapter_off"]},
                                len(texts), args.rounds)
    restore = {"texts": len(texts), "llm_calls": calls,
               "max_abs_dp": round(max(abs(a - b) for a, b in zip(before, after, strict=True)),
                                   6)}
    return chat, rows, calls, adapter, restore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="classifier (default: the configured one)")
    parser.add_argument("--limit", type=int, default=None, help="first N abstracts only")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="start no new LLM call after this long (cached answers still count)")
    parser.add_argument("--chat", choices=["run", "classifier-base"], default="run",
                        help="the default run's chat model, or the classifier's torch base "
                             "(adapter unmerged, off for the chat; also times the adapter)")
    parser.add_argument("--adapter-texts", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPORT_DIR)
    parser.add_argument("--render", action="store_true",
                        help="rewrite llm.md (and the adapter summary) from the saved llm.json")
    args = parser.parse_args()
    if args.render:
        report = json.loads((args.out / "llm.json").read_text())
        if ad := report["adapter"]:
            report["adapter"] = summarise_adapter(ad["s_per_abstract"], ad["texts"], ad["rounds"])
            if report["cost"]:
                report["cost"]["median_vs_one_classification"] = round(
                    report["cost"]["median_s"] / report["adapter"]["unmerged_s_per_abstract"], 1)
        (args.out / "llm.json").write_text(json.dumps(report, indent=2) + "\n")
        write_markdown(report, args.out / "llm.md")
        return
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.ERROR)
    settings = load_settings()
    name = args.model or settings.classifier.model
    load_before = load_avg()
    found = samples(settings.data_path())
    print(f"{len(found)} abstracts with citations", flush=True)
    cap = settings.citations.max_new_tokens
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    if args.chat == "run":
        chat = chat_model_for(name, settings.citations.llm_model, settings.chat.backend)
        rows, calls = run_llm(chat, found, cap, args.limit,
                              CACHE_DIR / f"{model_label(chat).replace(':', '_')}.jsonl",
                              args.max_minutes)
        source = f"the chat model a default run with classifier {name} uses"
        adapter, restore = {}, {}
    else:
        chat, rows, calls, adapter, restore = classifier_base_run(args, name, found, cap)
        source = "the classifier's base, LoRA adapter off"

    sample: dict[str, dict[str, int]] = {}
    for r in rows:
        s = sample.setdefault(r["source"], {"abstracts": 0, "citations": 0})
        s["abstracts"] += 1
        s["citations"] += r["n_citations"]
    fell_back = [r for r in rows if r["llm"]["analyser"] == "rules"]
    answered = [r for r in rows if r["llm"]["analyser"] != "rules"]
    report = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "classifier": name, "chat_model": model_label(chat), "chat_source": source,
        "max_new_tokens": cap,
        "torch_threads": args.threads, "load_before": load_before, "load_after": load_avg(),
        "abstracts": len(rows), "abstracts_with_citations_found": len(found),
        "sample": sample, "llm_calls_this_run": calls,
        "agreement": agreement(rows),
        "fallbacks": {"count": len(fell_back),
                      "reasons": [f"{r['source']}:{r['id']}: "
                                  f"{r['fallback_reason'][:300] or '(reason not recorded)'}"
                                  for r in fell_back]},
        "cost": cost([r for r in rows], adapter),
        "adapter": adapter,
        "restore_check": restore,
        "examples": [{"source": r["source"], "id": r["id"], "n_citations": r["n_citations"],
                      "functions": [c["function"] for c in r["llm"]["citations"]],
                      "summary": r["llm"]["summary"]} for r in answered[:5]],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "llm.json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, args.out / "llm.md")
    print(f"wrote {args.out}/llm.json and llm.md", flush=True)


if __name__ == "__main__":
    main()
