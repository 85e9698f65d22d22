"""How the int8 NER engine is scheduled: one window per call on every thread, or windows at once.

    python -m eval.disease_speed [--speed-docs 60] [--repeats 3] [--limit N]

Schedules (`Ct2TokenClassifier(threads, workers)`, threads = torch's, 2 here): `1x2` one
window per forward call on 2 intra-op threads (the schedule before `diseases.ner_workers`),
`2x1` two windows at once on one thread each, `2x1-b4` the same with 4 length-sorted
windows per call. Quality: every NCBI Disease dev and BC5CDR dev document's token scores
from each schedule (uncached), their agreement with `1x2`'s and the default route's exact F1
under the configured merge rule. Speed: the default route's steps as `extract_batch` runs
them (preprocess, windows, encoder, dictionary, spans, merge) on the first `--speed-docs`
documents of each corpus, uncached, the schedules interleaved `--repeats` times (order
rotating), abstracts/s wall-clock and per CPU-second of this process, the load average
before each timing; once as one batch ("batch") and once a document per call ("single",
the API's lone request). The encoder's own seconds are recorded to show what the rest costs.
The adoption rule (docs/diseases.md) is applied and its verdict written with the figures.
Writes reports/diseases/speed.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.settings import PROJECT_ROOT, MergeRule, load_settings
from eval.disease_data import CORPORA, read_corpus
from eval.disease_engines import agreement
from eval.diseases import in_gold_offsets, score
from tools.diseases import find_candidates, joined_text, resolve
from tools.diseases.corpus import GoldDoc
from tools.diseases.lexicon import load_vocabulary
from tools.diseases.ner import MAX_LENGTH, TokenScores, combine, sorted_windows
from tools.preprocess import preprocess

OUT = PROJECT_ROOT / "reports" / "diseases"
REFERENCE = "1x2"
# the adoption rule (docs/diseases.md), written before the committed measurement
MAX_F1_CHANGE = 0.002
MIN_TOKEN_AGREEMENT = 0.99
MAX_CPU_RATE_LOSS = 0.10


@dataclass(frozen=True)
class Schedule:
    workers: int  # windows computed at once
    batch: int  # windows per forward call


SCHEDULES = {"1x2": Schedule(1, 1), "2x1": Schedule(2, 1), "2x1-b4": Schedule(2, 4)}


def engines(threads: int) -> dict[str, tuple[Any, Any]]:
    """name -> (engine, tokenizer) for every schedule, the threads split among its workers."""
    from tools.diseases.ct2_ner import Ct2TokenClassifier
    from tools.diseases.model import load_ct2_ner

    reference, tokenizer = load_ct2_ner()
    folder = reference.folder
    return {name: (Ct2TokenClassifier(folder, threads=threads, workers=s.workers), tokenizer)
            for name, s in SCHEDULES.items()}


def scores(engine, tokenizer, texts: list[str], batch: int) -> tuple[list[TokenScores], float]:
    """Token scores per text as `model_scores` computes them, and the encoder's seconds."""
    wins = sorted_windows(tokenizer, texts)
    start = time.perf_counter()
    probs = engine.window_probs(wins, batch)
    return combine(wins, probs, len(texts)), time.perf_counter() - start


def timed_route(docs: list[GoldDoc], engine, tokenizer, batch: int, routes: tuple[str, ...],
                rule: MergeRule, per_doc: bool) -> dict:
    """The default route's steps, uncached, on all `docs` at once or one per call: abstracts
    per wall-clock second, per CPU-second of this process, and the encoder's share of the
    wall-clock."""
    start, cpu, encoder = time.perf_counter(), time.process_time(), 0.0
    for group in ([d] for d in docs) if per_doc else [docs]:
        pre = [preprocess(d.title, d.abstract) for d in group]
        found, seconds = scores(engine, tokenizer, [joined_text(p) for p in pre], batch)
        encoder += seconds
        [resolve(c, rule) for c in find_candidates(pre, routes, token_scores=found)]
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"wall": len(docs) / wall, "cpu": len(docs) / cpu, "encoder_share": encoder / wall}


def window_stats(tokenizer, docs: list[GoldDoc]) -> dict:
    """What the encoder gets per abstract: windows, tokens, and how many windows are full."""
    wins = sorted_windows(tokenizer, [joined_text(preprocess(d.title, d.abstract))
                                      for d in docs])
    return {"docs": len(docs), "windows": len(wins),
            "tokens_per_doc": round(sum(len(w.input_ids) for w in wins) / len(docs), 1),
            "full_windows": sum(len(w.input_ids) == MAX_LENGTH for w in wins)}


def verdict(results: dict) -> dict:
    """The adoption rule applied to every schedule against the reference; the pick is the
    passing schedule with the highest mean wall-clock speed-up (else the reference)."""
    checks: dict = {}
    for name in SCHEDULES:
        if name == REFERENCE:
            continue
        per_corpus = {}
        for corpus, r in results.items():
            q, s = r["quality"], r["speed"]["batch"]
            ref_f1 = q[REFERENCE]["exact"]["f1"]
            wall = s[name]["median"] / s[REFERENCE]["median"]
            cpu = s[name]["per_cpu_s_median"] / s[REFERENCE]["per_cpu_s_median"]
            per_corpus[corpus] = {
                "f1_change": round(q[name]["exact"]["f1"] - ref_f1, 4),
                "label_agreement": q[name]["agreement"]["label_agreement"],
                "speedup": round(wall, 3), "cpu_rate_ratio": round(cpu, 3),
                "ok": (abs(q[name]["exact"]["f1"] - ref_f1) <= MAX_F1_CHANGE
                       and q[name]["agreement"]["label_agreement"] >= MIN_TOKEN_AGREEMENT
                       and wall > 1.0 and cpu >= 1.0 - MAX_CPU_RATE_LOSS),
            }
        checks[name] = {"corpora": per_corpus, "passes": all(c["ok"] for c in per_corpus.values()),
                        "mean_speedup": round(statistics.mean(
                            c["speedup"] for c in per_corpus.values()), 3)}
    passing = [n for n, c in checks.items() if c["passes"]]
    pick = max(passing, key=lambda n: checks[n]["mean_speedup"]) if passing else REFERENCE
    return {"checks": checks, "pick": pick, "ner_workers": SCHEDULES[pick].workers}


def _markdown(report: dict) -> str:
    v = report["verdict"]
    lines = [
        "# Scheduling the int8 NER engine of the default disease route",
        "",
        f"Generated by `python -m eval.disease_speed` on {report['when']} (ctranslate2 "
        f"{report['ctranslate2']}, int8, {report['threads']} threads between a schedule's "
        f"workers; `diseases.ner_workers` configured: {report['configured_workers']}). "
        "Schedules: `1x2` one window per forward call on 2 intra-op threads (the schedule "
        "before), `2x1` two windows at once on one thread each, `2x1-b4` the same with 4 "
        "length-sorted windows per call. Speed: the default route's steps, uncached, on the "
        f"first {report['speed_docs']} documents of each corpus, schedules interleaved "
        f"{report['repeats']} times; load average {report['load_at_start']} at start, "
        f"{report['load_at_end']} at end (2 shared cores: compare within this run). Per CPU-s: "
        "abstracts per CPU-second of this process. Encoder share: the encoder's part of the "
        "wall-clock.",
        "",
        f"Adoption rule (docs/diseases.md, written before measuring): against `{REFERENCE}`, "
        f"on both dev sets token labels agree on >= {MIN_TOKEN_AGREEMENT:.0%}, exact F1 "
        f"changes by <= {MAX_F1_CHANGE}, batch abstracts/s higher, per CPU-second at most "
        f"{MAX_CPU_RATE_LOSS:.0%} lower; of the passing schedules the fastest. Verdict: "
        f"**{v['pick']}** (`diseases.ner_workers: {v['ner_workers']}`).",
        "",
        "| corpus | schedule | mode | abstracts/s (median) | runs | per CPU-s (median) "
        "| encoder share | load before runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for corpus, r in report["results"].items():
        for mode in ("batch", "single"):
            for name, s in r["speed"][mode].items():
                lines.append(
                    f"| {corpus} | {name} | {mode} | **{s['median']:.1f}** "
                    f"| {', '.join(f'{x:.1f}' for x in s['runs'])} "
                    f"| {s['per_cpu_s_median']:.1f} | {s['encoder_share']:.0%} "
                    f"| {', '.join(str(x) for x in s['load'])} |")
    lines += ["", "| corpus | schedule | exact F1 | token labels agreeing with 1x2 "
              "| docs with identical mentions | speed-up (batch) | per CPU-s ratio | passes |",
              "|---|---|---|---|---|---|---|---|"]
    for corpus, r in report["results"].items():
        for name, q in r["quality"].items():
            c = v["checks"].get(name, {}).get("corpora", {}).get(corpus)
            versus = (f"{c['speedup']:.2f}x | {c['cpu_rate_ratio']:.2f} | "
                      f"{'yes' if c['ok'] else 'no'}") if c else "- | - | reference"
            lines.append(
                f"| {corpus} | {name} | {q['exact']['f1']:.4f} "
                f"| {q['agreement']['label_agreement']:.4%} "
                f"| {q['identical_docs']}/{q['docs']} | {versus} |")
    lines += ["", "| corpus | documents | windows | tokens per abstract | windows of 512 tokens |",
              "|---|---|---|---|---|"]
    for corpus, r in report["results"].items():
        w = r["windows"]
        lines.append(f"| {corpus} | {w['docs']} | {w['windows']} | {w['tokens_per_doc']} "
                     f"| {w['full_windows']} |")
    return "\n".join(lines) + "\n"


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpora = list(report["results"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    width = 0.8 / len(SCHEDULES)
    for ax, key, label in ((axes[0], "median", "abstracts/s (wall-clock)"),
                           (axes[1], "per_cpu_s_median", "abstracts per CPU-second")):
        for j, name in enumerate(SCHEDULES):
            xs = [i + j * width for i in range(len(corpora))]
            ax.bar(xs, [report["results"][c]["speed"]["batch"][name][key] for c in corpora],
                   width, label=name)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(corpora))], corpora)
        ax.set_ylabel(label)
    axes[0].axhline(20, color="k", linestyle="--", linewidth=1, label="target (issue 20)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"int8 NER schedules, default route, one run "
                 f"(load {report['load_at_start']}-{report['load_at_end']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _speed(docs, pairs, routes, rule, repeats: int, per_doc: bool) -> dict:
    runs: dict[str, list[dict]] = {n: [] for n in SCHEDULES}
    load: dict[str, list[float]] = {n: [] for n in SCHEDULES}
    names = list(SCHEDULES)
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            engine, tokenizer = pairs[name]
            load[name].append(round(os.getloadavg()[0], 2))
            runs[name].append(timed_route(docs, engine, tokenizer, SCHEDULES[name].batch,
                                          routes, rule, per_doc))
    return {n: {"runs": [round(x["wall"], 2) for x in runs[n]], "load": load[n],
                "median": statistics.median(x["wall"] for x in runs[n]),
                "per_cpu_s": [round(x["cpu"], 2) for x in runs[n]],
                "per_cpu_s_median": statistics.median(x["cpu"] for x in runs[n]),
                "encoder_share": round(statistics.median(x["encoder_share"] for x in runs[n]), 3)}
            for n in SCHEDULES}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speed-docs", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit", type=int, default=None, help="first N docs per corpus (smoke)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    import ctranslate2
    import torch

    settings = load_settings().diseases
    routes, rule = tuple(settings.routes), settings.merge_rule()
    load_vocabulary()
    pairs = engines(torch.get_num_threads())
    report: dict = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_at_start": round(os.getloadavg()[0], 2), "threads": torch.get_num_threads(),
        "ctranslate2": ctranslate2.__version__, "configured_workers": settings.ner_workers,
        "schedules": {n: vars(s) for n, s in SCHEDULES.items()}, "routes": list(routes),
        "speed_docs": args.speed_docs, "repeats": args.repeats, "results": {},
    }
    for corpus in CORPORA:
        docs = read_corpus(corpus, args.limit)
        pre = [preprocess(d.title, d.abstract) for d in docs]
        texts = [joined_text(p) for p in pre]
        found = {n: scores(pairs[n][0], pairs[n][1], texts, s.batch)[0]
                 for n, s in SCHEDULES.items()}
        preds = {n: in_gold_offsets(docs, [resolve(c, rule) for c in find_candidates(
            pre, routes, token_scores=found[n])]) for n in SCHEDULES}
        quality = {}
        for n in SCHEDULES:
            s = score(docs, preds[n])
            quality[n] = {"exact": s["exact"], "mention_concept": s["mention_concept"],
                          "agreement": agreement(found[REFERENCE], found[n]), "docs": len(docs),
                          "identical_docs": sum(sorted(p) == sorted(q) for p, q in zip(
                              preds[REFERENCE], preds[n], strict=True))}
        speed_docs = docs[: args.speed_docs]
        for n in SCHEDULES:  # first calls (thread pools, caches) outside the timings
            timed_route(speed_docs[:2], pairs[n][0], pairs[n][1], SCHEDULES[n].batch, routes,
                        rule, False)
        report["results"][corpus] = {
            "windows": window_stats(pairs[REFERENCE][1], speed_docs), "quality": quality,
            "speed": {mode: _speed(speed_docs, pairs, routes, rule, args.repeats, mode == "single")
                      for mode in ("batch", "single")},
        }
        print(corpus, json.dumps({n: (quality[n]["exact"]["f1"],
                                      report["results"][corpus]["speed"]["batch"][n]["median"])
                                  for n in SCHEDULES}), flush=True)
    report["load_at_end"] = round(os.getloadavg()[0], 2)
    report["verdict"] = verdict(report["results"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "speed.md").write_text(_markdown(report))
    _plot(report, args.out / "speed.png")
    print(f"wrote {args.out}/speed.*; verdict {report['verdict']['pick']}")
    return report


if __name__ == "__main__":
    main()
