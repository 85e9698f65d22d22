"""The citation chat model on torch vs the CTranslate2 int8 engine, interleaved in one run.

    python -m eval.citations_engines [--n 8] [--threads 2]

Sample: the first `--n` abstracts with citations (eval.citations_llm.samples) that are not in
the corpus's test split (BC5CDR / NCBI Disease train, corpus train/val), spread over the
sources. Both engines load the configured `citations.llm_model` (its plain base) and answer
through the real `analyse_citations` path with the configured per-abstract budget; on each
abstract they take turns going first, so a change in machine load hits both.
The adoption rule (ADOPTION below, also in docs/preprocessing.md) was written before the
first measurement. Writes reports/citations/engines.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from pathlib import Path

import torch
from sklearn.metrics import cohen_kappa_score

from core.settings import PROJECT_ROOT, load_settings
from eval.citations_llm import Warnings, load_avg, samples
from tools.chat_model import build_chat_model, model_label
from tools.citations import analyse_citations

REPORT_DIR = PROJECT_ROOT / "reports" / "citations"
ENGINES = ("torch", "ctranslate2")
# written down before the first measurement; int8 becomes the default `chat.backend` only
# when every line holds on the sample
ADOPTION = {
    "parses_at_least_as_often": "int8 answers (no fallback to the rules) on at least as many "
                                "abstracts as torch",
    # int8's per-citation agreement with the rules >= torch's minus this
    "rules_agreement_margin": 0.10,
    # int8 gives torch's function to at least this share of the citations both answered
    "torch_agreement_floor": 0.50,
    "min_speedup": 1.2,  # torch seconds / int8 seconds over the sample, same run
}


def pick(found: list, n: int, test_ids: set[str]) -> list:
    """`n` abstracts not in the corpus test split, taken round-robin over the sources."""
    by_source: dict[str, list] = {}
    for row in found:
        if not (row[0] == "corpus" and row[1] in test_ids):
            by_source.setdefault(row[0], []).append(row)
    queues = [list(v) for _, v in sorted(by_source.items())]
    chosen: list = []
    while len(chosen) < n and any(queues):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    return chosen


def agreement(a: list[str], b: list[str]) -> dict:
    return {"citations": len(a),
            "agreement": round(sum(x == y for x, y in zip(a, b, strict=True)) / len(a), 3)
            if a else None,
            "cohen_kappa": round(float(cohen_kappa_score(a, b)), 3) if len(set(a + b)) > 1
            else None}


def summarise(rows: list[dict]) -> dict:
    """Per engine: answers used, seconds, agreement with the rules; int8 vs torch."""
    out: dict = {"engines": {}}
    for engine in ENGINES:
        answered = [r for r in rows if r[engine]["answered"]]
        secs = [r[engine]["seconds"] for r in rows]
        out["engines"][engine] = {
            "answered": len(answered), "abstracts": len(rows),
            "seconds_total": round(sum(secs), 1), "median_s": round(statistics.median(secs), 2),
            "s_per_citation": round(sum(secs) / sum(r["n_citations"] for r in rows), 2),
            "vs_rules": agreement([f for r in answered for f in r["rules"]],
                                  [f for r in answered for f in r[engine]["functions"]]),
            "fallbacks": [f"{r['source']}:{r['id']}: {r[engine]['fallback'][:200]}"
                          for r in rows if not r[engine]["answered"]],
        }
    both = [r for r in rows if r["torch"]["answered"] and r["ctranslate2"]["answered"]]
    out["int8_vs_torch"] = agreement([f for r in both for f in r["torch"]["functions"]],
                                     [f for r in both for f in r["ctranslate2"]["functions"]])
    out["int8_vs_torch"]["abstracts"] = len(both)
    out["int8_vs_torch"]["same_summary"] = sum(r["torch"]["summary"] == r["ctranslate2"]["summary"]
                                               for r in both)
    t, c = out["engines"]["torch"], out["engines"]["ctranslate2"]
    out["speedup"] = round(t["seconds_total"] / c["seconds_total"], 2)
    out["median_abstract_speedup"] = round(statistics.median(
        r["torch"]["seconds"] / r["ctranslate2"]["seconds"] for r in rows), 2)
    return out


def verdict(summary: dict) -> dict:
    t, c = summary["engines"]["torch"], summary["engines"]["ctranslate2"]
    rt, rc = t["vs_rules"]["agreement"], c["vs_rules"]["agreement"]
    vs_torch = summary["int8_vs_torch"]["agreement"]
    checks = {
        "parses_at_least_as_often": c["answered"] >= t["answered"],
        "rules_agreement_margin": rt is None or (rc is not None
                                                 and rc >= rt - ADOPTION["rules_agreement_margin"]),
        "torch_agreement_floor": vs_torch is not None
        and vs_torch >= ADOPTION["torch_agreement_floor"],
        "min_speedup": summary["speedup"] >= ADOPTION["min_speedup"],
    }
    return {"checks": checks, "adopt_int8": all(checks.values())}


def warm_up(chats: dict) -> dict[str, float]:
    """One short untimed call each: a first call pays one-off set-up (torch's first
    `generate` took 105 s vs 14-22 s after it in the first run of this report)."""
    seconds = {}
    for engine, chat in chats.items():
        start = time.perf_counter()
        chat.invoke("Reply with OK.", max_new_tokens=4)
        seconds[engine] = round(time.perf_counter() - start, 2)
    return seconds


def run(chats: dict, chosen: list, cap: int) -> list[dict]:
    handler = Warnings()
    tool_log = logging.getLogger("tools.citations")
    tool_log.setLevel(logging.WARNING)
    tool_log.addHandler(handler)
    rows = []
    for i, (source, ident, doc) in enumerate(chosen):
        row: dict = {"source": source, "id": ident, "n_citations": len(doc.citations),
                     "rules": [c.function for c in analyse_citations(doc).citations]}
        for engine in ENGINES if i % 2 == 0 else ENGINES[::-1]:  # take turns going first
            handler.messages.clear()
            start = time.perf_counter()
            result = analyse_citations(doc, llm=chats[engine], max_new_tokens=cap)
            row[engine] = {"seconds": round(time.perf_counter() - start, 2),
                           "answered": result.analyser != "rules",
                           "functions": [c.function for c in result.citations],
                           "summary": result.summary, "fallback": "; ".join(handler.messages)}
        rows.append(row)
        print(f"{source}:{ident} {len(doc.citations)} citations: torch "
              f"{row['torch']['seconds']}s, int8 {row['ctranslate2']['seconds']}s", flush=True)
    tool_log.removeHandler(handler)
    return rows


def same_functions(row: dict) -> str:
    """Whether both engines' answers gave the same functions ("-" when one fell back)."""
    if not (row["torch"]["answered"] and row["ctranslate2"]["answered"]):
        return "-"
    return str(row["torch"]["functions"] == row["ctranslate2"]["functions"])


def write_markdown(report: dict, path: Path) -> None:
    s, v = report["summary"], report["verdict"]
    t, c = s["engines"]["torch"], s["engines"]["ctranslate2"]
    lines = [
        "# Citation chat model: torch vs CTranslate2 int8",
        "",
        f"`make citations-engines` on {report['when']}: `{report['model']}` (plain base), "
        f"torch in {report['torch_dtype']} vs `{report['int8_label']}`, greedy, answer budget "
        f"at most {report['max_new_tokens']} tokens, {report['threads']} threads each on "
        f"{os.cpu_count()} CPUs, interleaved per abstract (alternating which goes first) "
        f"after one untimed warm-up call each ({report['warm_up_s']} s); "
        f"load average (1, 5, 15 min) {report['load_before']} before, {report['load_after']} "
        "after. Seconds are only comparable within this run.",
        "",
        f"Sample: {len(report['rows'])} abstracts with citations, none from the corpus test "
        f"split ({', '.join(f'{k}: {n}' for k, n in report['sources'].items())}), "
        f"{sum(r['n_citations'] for r in report['rows'])} citations.",
        "",
        "## Adoption rule (written before measuring)",
        "",
        "int8 becomes the default `chat.backend` when, on this sample, all of:",
        "",
        f"- it parses at least as often: {ADOPTION['parses_at_least_as_often']};",
        "- its per-citation agreement with the rules is at most "
        f"{ADOPTION['rules_agreement_margin']} below torch's;",
        f"- it gives torch's function to at least {ADOPTION['torch_agreement_floor']} of the "
        "citations of the abstracts both answered;",
        f"- torch seconds / int8 seconds over the sample >= {ADOPTION['min_speedup']}.",
        "",
        "| check | holds |",
        "|---|---|",
        *[f"| {k} | {'yes' if ok else 'NO'} |" for k, ok in v["checks"].items()],
        "",
        f"**Verdict: {'adopt int8' if v['adopt_int8'] else 'keep torch'}.**",
        "",
        "## Figures",
        "",
        "| engine | answers used | seconds (sample) | median s / abstract | s / citation | "
        "agreement with rules | kappa |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in (("torch", t), ("ctranslate2 int8", c)):
        lines.append(f"| {name} | {e['answered']} of {e['abstracts']} | {e['seconds_total']} | "
                     f"{e['median_s']} | {e['s_per_citation']} | {e['vs_rules']['agreement']} "
                     f"({e['vs_rules']['citations']} citations) | {e['vs_rules']['cohen_kappa']} |")
    iv = s["int8_vs_torch"]
    lines += [
        "",
        f"Speed-up (torch / int8 seconds over the sample): **{s['speedup']}x**; median of the "
        f"per-abstract ratios {s['median_abstract_speedup']}x. int8 vs torch on the "
        f"{iv['abstracts']} abstracts both answered: the same function for **{iv['agreement']}** "
        f"of {iv['citations']} citations (kappa {iv['cohen_kappa']}); identical summary in "
        f"{iv['same_summary']} of {iv['abstracts']}. There is no gold citation function: "
        "agreement is consistency, not accuracy.",
        "",
        "## Per abstract",
        "",
        "| abstract | citations | torch s | int8 s | torch answered | int8 answered | "
        "same functions |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(f"| {r['source']}:{r['id']} | {r['n_citations']} | {r['torch']['seconds']} | "
                     f"{r['ctranslate2']['seconds']} | {r['torch']['answered']} | "
                     f"{r['ctranslate2']['answered']} | "
                     f"{same_functions(r)} |")
    lines += ["", "## Fallbacks", ""]
    for name, e in (("torch", t), ("int8", c)):
        lines += [f"- {name}: {f}" for f in e["fallbacks"]] or [f"- {name}: none"]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="abstracts with citations")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPORT_DIR)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.ERROR)
    from finetune.data import read_split
    from tools.chat_ct2 import build_ct2_chat
    from tools.compute import compute_dtype
    from tools.weights import prepare

    settings = load_settings()
    load_before = load_avg()
    chosen = pick(samples(settings.data_path()), args.n, set(read_split("test")))
    name, cap = settings.citations.llm_model, settings.citations.max_new_tokens
    path = prepare(name)
    chats = {"torch": build_chat_model(path, name=name),
             "ctranslate2": build_ct2_chat(path, name=name, threads=args.threads)}
    warm = warm_up(chats)
    rows = run(chats, chosen, cap)
    summary = summarise(rows)
    sources: dict[str, int] = {}
    for r in rows:
        sources[r["source"]] = sources.get(r["source"], 0) + 1
    report = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "model": name,
        "torch_dtype": str(compute_dtype()).removeprefix("torch."),
        "int8_label": model_label(chats["ctranslate2"]), "max_new_tokens": cap,
        "threads": args.threads, "load_before": load_before, "load_after": load_avg(),
        "warm_up_s": warm,
        "sources": sources, "adoption_rule": ADOPTION, "summary": summary,
        "verdict": verdict(summary), "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "engines.json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, args.out / "engines.md")
    print(f"wrote {args.out}/engines.json and engines.md; adopt int8: "
          f"{report['verdict']['adopt_int8']}", flush=True)


if __name__ == "__main__":
    main()
